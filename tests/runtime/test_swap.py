"""sparsify_model on tiny models of every architecture: what is swapped, what is not and why, equivalence."""

import copy

import pytest
import torch
from torch import nn

from helpers.sparse_models import prune_24_, prune_unstructured_, sparse_tiny_model, token_ids
from helpers.tiny_models import ARCHITECTURES, tiny_model
from polysparse.runtime.linear import Sparse24Linear
from polysparse.runtime.swap import densify_model, is_24, set_backend, sparse_layers, sparsify_model


def logits(model, input_ids):
    with torch.no_grad():
        return model(input_ids=input_ids).logits.float()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_block_linear_is_swapped_and_outputs_match(arch):
    model = sparse_tiny_model(arch)
    reference = copy.deepcopy(model)
    pruned = set(prune_24_(reference))  # the names the helper pruned (idempotent on 2:4 weights)
    report = sparsify_model(model, backend="dense")
    assert {layer.name for layer in report.swapped} == pruned
    assert set(sparse_layers(model)) == pruned
    assert [s.name for s in report.skipped] == ["lm_head"]
    assert "lm_head" in report.skipped[0].reason
    if arch == "gpt2":
        assert {layer.layout for layer in report.swapped} == {"conv1d"}
    ids = token_ids()
    # GPT-2's Conv1D runs addmm in another summation order: equal within float32 rounding.
    torch.testing.assert_close(logits(model, ids), logits(reference, ids), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["gemma3", "gpt2"])
def test_tied_embeddings_stay_tied_and_untouched(arch):
    model = sparse_tiny_model(arch)
    embedding = model.get_input_embeddings().weight
    sparsify_model(model)
    assert model.get_output_embeddings().weight is embedding
    assert isinstance(model.get_output_embeddings(), nn.Linear)


def test_unstructured_and_dense_layers_stay_dense_with_reasons():
    model = tiny_model("llama")
    prune_24_(model, r"layers\.0\.")
    prune_unstructured_(model.model.layers[1].mlp.up_proj, 0.5)
    report = sparsify_model(model)
    reasons = {s.name: s.reason for s in report.skipped}
    assert len(report.swapped) == 7 and all(s.name.startswith("model.layers.0.") for s in report.swapped)
    assert "no speedup" in reasons["model.layers.1.mlp.up_proj"]
    assert (
        report.skipped[[s.name for s in report.skipped].index("model.layers.1.mlp.up_proj")].sparsity == 0.5
    )
    assert reasons["model.layers.2.mlp.down_proj"].startswith("dense (no zeros)")


def test_24_is_checked_not_assumed():
    model = sparse_tiny_model("llama")
    with torch.no_grad():
        model.model.layers[0].self_attn.q_proj.weight[5, 8:12] = 1.0  # one group of four nonzeros
    report = sparsify_model(model)
    names = {s.name for s in report.skipped}
    assert "model.layers.0.self_attn.q_proj" in names and len(report.swapped) == 20
    assert not is_24(model.model.layers[0].self_attn.q_proj.weight)


def test_targets_and_ignore():
    model = sparse_tiny_model("llama")
    report = sparsify_model(model, targets=[r"\.mlp\."], ignore=[r"down_proj"])
    assert {s.name.rsplit(".", 1)[1] for s in report.swapped} == {"gate_proj", "up_proj"}
    reasons = {s.name: s.reason for s in report.skipped}
    assert reasons["model.layers.0.self_attn.q_proj"] == "not matched by targets"
    assert reasons["model.layers.0.mlp.down_proj"].startswith("ignored")


def test_in_features_not_a_multiple_of_four_stays_dense():
    model = nn.Sequential(nn.Linear(6, 8, bias=False))
    with torch.no_grad():
        model[0].weight.zero_()
    report = sparsify_model(model)
    assert not report.swapped and "multiple of 4" in report.skipped[0].reason


def test_bytes_are_nine_sixteenths_for_half_precision():
    model = sparse_tiny_model("llama", dtype=torch.float16)  # llama: no biases in the blocks
    report = sparsify_model(model)
    assert report.layer_bytes_after / report.layer_bytes_before == pytest.approx(9 / 16)
    saved = report.layer_bytes_before - report.layer_bytes_after
    assert report.model_bytes_before - report.model_bytes_after == saved
    assert report.to_dict()["layers_swapped"] == 21


def test_densify_restores_the_dense_with_zeros_model():
    model = sparse_tiny_model("qwen2")
    reference = copy.deepcopy(model)
    sparsify_model(model)
    assert densify_model(model) == 21
    assert not any(isinstance(m, Sparse24Linear) for m in model.modules())
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name


def test_set_backend_reaches_every_layer():
    model = sparse_tiny_model("mistral")
    sparsify_model(model)
    assert set_backend(model, "triton") == 14
    assert {layer.backend for layer in sparse_layers(model).values()} == {"triton"}
    with pytest.raises(ValueError, match="backend"):
        set_backend(model, "cusparse")
