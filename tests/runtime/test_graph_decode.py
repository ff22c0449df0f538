"""Decode without launch overhead: the sparse op inside a compiled decode step (CPU, Triton's interpreter),
and the CUDA-graph timing loop (its refusal here, its tokens on a GPU)."""

from __future__ import annotations

import copy

import pytest
import torch

from helpers.sparse_models import sparse_tiny_model, token_ids
from polysparse.kernels import sparse24_linear_unsupported
from polysparse.runtime.graph_decode import graph_decode_reason, time_generation_graphed
from polysparse.runtime.swap import sparse_layers, sparsify_model
from polysparse.runtime.timing import _cache_keyword, time_generation

OP = torch.ops.polysparse.sparse24_linear.default


def _sparse_pair(backend: str, dtype=torch.float16, device="cpu"):
    reference = sparse_tiny_model("llama", dtype=dtype).to(device).eval()
    model = copy.deepcopy(reference)
    sparsify_model(model, backend=backend)
    return reference, model


def _prefilled(model, ids):
    from transformers import StaticCache

    cache = StaticCache(config=model.config, max_cache_len=ids.shape[1] + 4)
    keyword = _cache_keyword(model)
    positions = torch.arange(ids.shape[1])
    out = model(input_ids=ids, **{keyword: cache}, cache_position=positions, use_cache=True)
    return cache, out.logits[:, -1:].argmax(-1), keyword


@torch.inference_mode()
def test_compiled_decode_step_calls_the_custom_op_and_matches_eager():
    # One decode step through a static cache, the way the CUDA-graph loop runs it, traced whole
    # (fullgraph: no graph break) by a backend that keeps the graph: the 2:4 layers must stay the
    # polysparse op (not be decomposed, not fall back), and the compiled step must give eager's logits.
    torch._dynamo.reset()
    _, model = _sparse_pair("triton")
    ids = token_ids(1, 6)
    graphs = []

    def keep_graph(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    def step(token, cache, position, keyword):
        return model(input_ids=token, **{keyword: cache}, cache_position=position, use_cache=True).logits

    eager_cache, token, keyword = _prefilled(model, ids)
    compiled_cache, _, _ = _prefilled(model, ids)
    position = torch.tensor([ids.shape[1]])
    expected = step(token, eager_cache, position, keyword)
    compiled = torch.compile(step, backend=keep_graph, fullgraph=True)
    got = compiled(token, compiled_cache, position, keyword)
    torch.testing.assert_close(got, expected)
    calls = [
        n
        for gm in graphs
        for n in gm.graph.nodes
        if n.op == "call_function" and "sparse24_linear" in str(n.target)
    ]
    assert calls, "the compiled decode step does not call polysparse::sparse24_linear"
    # once per swapped layer whose shape the kernel takes (the others run dense)
    kernel_layers = [
        layer for layer in sparse_layers(model).values()
        if sparse24_linear_unsupported(layer.values.dtype, layer.out_features, layer.in_features) is None
    ]  # fmt: skip
    assert len(calls) == len(kernel_layers) > 0


@torch.inference_mode()
def test_aot_eager_decode_step_matches_eager():
    # aot_eager runs the op's fake implementation to trace shapes, as inductor does.
    torch._dynamo.reset()
    _, model = _sparse_pair("triton")
    ids = token_ids(1, 6)

    def step(token, cache, position, keyword):
        return model(input_ids=token, **{keyword: cache}, cache_position=position, use_cache=True).logits

    eager_cache, token, keyword = _prefilled(model, ids)
    compiled_cache, _, _ = _prefilled(model, ids)
    position = torch.tensor([ids.shape[1]])
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(
        compiled(token, compiled_cache, position, keyword), step(token, eager_cache, position, keyword)
    )


def test_graph_decode_is_refused_without_cuda():
    assert "CUDA" in graph_decode_reason("cpu")
    _, model = _sparse_pair("dense", dtype=torch.float32)
    with pytest.raises(RuntimeError, match="CUDA graphs need a CUDA device"):
        time_generation_graphed(model, token_ids(1, 4), 3)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["triton", "dense"])
def test_graph_decode_generates_the_eager_tokens(backend):
    _, model = _sparse_pair(backend, device="cuda")
    ids = token_ids(2, 7).cuda()
    eager = time_generation(model, ids, 6, cache="static")
    graphed = time_generation_graphed(model, ids, 6)
    assert graphed.decode_steps == 5 and torch.equal(graphed.tokens, eager.tokens)
    again = time_generation_graphed(model, ids, 6)  # a fresh cache and graph: the same tokens
    assert torch.equal(again.tokens, eager.tokens)
