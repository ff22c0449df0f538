"""The swapped model in use: generate(), HF's static cache, torch.compile, the Triton backend end to end."""

import copy
import os

import pytest
import torch

from helpers.sparse_models import sparse_tiny_model, token_ids
from polysparse.runtime.linear import backend_runs, reset_backend_runs
from polysparse.runtime.swap import set_backend, sparse_layers, sparsify_model
from polysparse.runtime.timing import time_generation

PROMPTS = [token_ids(1, 5, seed=s) for s in range(3)]


def pair(arch, dtype=torch.float32, backend="dense"):
    model = sparse_tiny_model(arch, dtype=dtype)
    reference = copy.deepcopy(model)
    sparsify_model(model, backend=backend)
    return reference, model


def greedy(model, ids, n=8, **kwargs):
    return model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=0, **kwargs)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3", "gpt2"])
def test_greedy_generations_equal_the_dense_with_zeros_model(arch):
    reference, model = pair(arch)
    for prompt in PROMPTS:
        assert torch.equal(greedy(model, prompt), greedy(reference, prompt))


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_static_cache(arch):
    reference, model = pair(arch)
    for prompt in PROMPTS[:2]:
        expected = greedy(reference, prompt)
        assert torch.equal(greedy(model, prompt, cache_implementation="static"), expected)
        # the benchmark's hand-written loop through a StaticCache generates the same tokens
        timed = time_generation(model, prompt, 8, cache="static")
        assert torch.equal(timed.tokens, expected[:, prompt.shape[1] :])


def test_triton_backend_in_a_whole_model():
    # hidden 64 / MLP 128: the Triton layers run through the interpreter; k/v (64 -> 32) fall back to dense.
    # (bf16 is covered layer by layer in test_linear; the interpreter is slow, one dtype end to end.)
    reference, model = pair("llama", dtype=torch.float16, backend="triton")
    reset_backend_runs()
    ids = token_ids(2, 6)
    with torch.no_grad():
        a = reference(input_ids=ids).logits.float()
        b = model(input_ids=ids).logits.float()
    torch.testing.assert_close(b, a, atol=3e-2, rtol=3e-2)
    runs = {(r["ran"], r["fallback_reason"] is None) for r in backend_runs()}
    assert runs == {("triton", True), ("dense", False)}
    assert torch.equal(greedy(model, PROMPTS[0], n=3), greedy(reference, PROMPTS[0], n=3))


@pytest.mark.parametrize("backend", ["dense", "triton", "auto"])
def test_layer_compiles_without_graph_breaks(backend):
    # fullgraph=True fails on any graph break; aot_eager traces like inductor without compiling C++.
    torch._dynamo.reset()
    _, model = pair("llama", dtype=torch.float16, backend=backend)
    layer = sparse_layers(model)["model.layers.0.mlp.up_proj"]
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    x = torch.randn(3, 5, 64, dtype=torch.float16)
    torch.testing.assert_close(compiled(x), layer(x))


def test_whole_model_under_torch_compile_aot_eager():
    torch._dynamo.reset()
    reference, model = pair("gemma3")
    compiled = torch.compile(model, backend="aot_eager")
    ids = token_ids()
    with torch.no_grad():
        torch.testing.assert_close(compiled(input_ids=ids).logits, reference(input_ids=ids).logits)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("POLYSPARSE_SLOW_TESTS", "") in ("", "0"),
    reason="inductor compiles C++ for every graph: 25 s on 2 CPUs (make test sets POLYSPARSE_SLOW_TESTS)",
)
def test_whole_model_under_torch_compile_inductor():
    torch._dynamo.reset()
    reference, model = pair("llama")
    set_backend(model, "dense")
    compiled = torch.compile(model)
    ids = token_ids()
    with torch.no_grad():
        torch.testing.assert_close(
            compiled(input_ids=ids).logits, reference(input_ids=ids).logits, atol=1e-5, rtol=1e-5
        )
