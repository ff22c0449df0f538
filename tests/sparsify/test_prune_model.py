"""prune_model end to end on tiny models of every supported architecture."""

import pytest
import torch
from torch import nn

from helpers.tiny_models import ARCHITECTURES, random_windows, tiny_model
from polysparse.sparsify import NoDecoderBlocksError, PruneConfig, find_decoder_stack, prune_model
from polysparse.sparsify.config import ConfigError
from polysparse.sparsify.driver import IndivisibleLayerError
from polysparse.sparsify.model_graph import prunable_layers, weight_matrix


def block_layers(model):
    stack = find_decoder_stack(model)
    layers = {}
    for i, block in enumerate(stack.blocks):
        layers.update(prunable_layers(block, stack.block_name(i)))
    return layers


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
def test_every_block_layer_is_pruned_exactly(arch, method):
    model = tiny_model(arch)
    embeddings_before = model.get_input_embeddings().weight.clone()
    head_before = model.get_output_embeddings().weight.clone()
    windows = random_windows(n=4, length=10, pad_last=3)
    report = prune_model(model, PruneConfig(method=method, sparsity=0.5, seqlen=16), windows, progress=False)
    layers = block_layers(model)
    assert {entry["name"] for entry in report.layers} == set(layers)
    for name, layer in layers.items():
        w = weight_matrix(layer)
        zeros_per_row = (w == 0).sum(dim=1)
        if method == "sparsegpt":  # one threshold per block of columns: exact in total, not per row
            assert (w == 0).sum().item() >= int(0.5 * w.shape[1]) * w.shape[0] - w.shape[1], name
        else:
            assert (zeros_per_row >= w.shape[1] // 2).all(), name
    assert torch.equal(model.get_input_embeddings().weight, embeddings_before)
    assert torch.equal(model.get_output_embeddings().weight, head_before)
    assert report.sparsity == pytest.approx(0.5, abs=0.02)
    assert len(report.blocks) == len(find_decoder_stack(model).blocks)
    if method == "sparsegpt":
        assert all(entry["relative_error"] >= 0 for entry in report.layers)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_nm_pattern_holds_in_every_layer(arch):
    model = tiny_model(arch)
    prune_model(
        model, PruneConfig(method="wanda", pattern="2:4", seqlen=16), random_windows(), progress=False
    )
    for name, layer in block_layers(model).items():
        w = weight_matrix(layer)
        assert ((w.reshape(w.shape[0], -1, 4) == 0).sum(dim=2) >= 2).all(), name


def test_gpt2_conv1d_is_pruned_along_its_inputs():
    """Conv1D stores (in, out); per-row counts must be per *output* unit."""
    model = tiny_model("gpt2")
    prune_model(model, PruneConfig(method="magnitude", sparsity=0.25), None, progress=False)
    c_fc = model.transformer.h[0].mlp.c_fc  # weight (64 in, 256 out)
    assert ((c_fc.weight == 0).sum(dim=0) == 16).all()


def test_targets_and_ignore_select_layers():
    model = tiny_model("llama")
    config = PruneConfig(method="magnitude", sparsity=0.5, targets=(r"mlp\.",), ignore=(r"down_proj",))
    report = prune_model(model, config, None, progress=False)
    names = {entry["name"] for entry in report.layers}
    assert names and all(".mlp." in n and "down_proj" not in n for n in names)
    assert (model.model.layers[0].self_attn.q_proj.weight != 0).all()


def test_indivisible_layers_are_skipped_or_stop_the_run():
    model = tiny_model("llama", intermediate_size=90)  # down_proj has 90 inputs, not a multiple of 4
    before = model.model.layers[0].mlp.down_proj.weight.clone()
    report = prune_model(model, PruneConfig(method="magnitude", pattern="2:4"), None, progress=False)
    assert {s["name"].rsplit(".", 1)[-1] for s in report.skipped} == {"down_proj"}
    assert torch.equal(model.model.layers[0].mlp.down_proj.weight, before)
    fresh = tiny_model("llama", intermediate_size=90)
    untouched = fresh.model.layers[0].self_attn.q_proj.weight.clone()
    with pytest.raises(IndivisibleLayerError, match="down_proj"):
        prune_model(fresh, PruneConfig(method="magnitude", pattern="2:4", on_indivisible="error"), None)
    assert torch.equal(fresh.model.layers[0].self_attn.q_proj.weight, untouched)  # nothing pruned


def test_model_without_decoder_blocks_is_refused():
    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)

    with pytest.raises(NoDecoderBlocksError, match="no stack of decoder blocks"):
        prune_model(Flat(), PruneConfig(method="magnitude", sparsity=0.5), None)


def test_calibrated_methods_need_windows_and_windows_fit_seqlen():
    model = tiny_model("llama")
    with pytest.raises(ConfigError, match="calibration"):
        prune_model(model, PruneConfig(method="wanda", sparsity=0.5), None)
    with pytest.raises(ConfigError, match="seqlen"):
        prune_model(model, PruneConfig(method="wanda", sparsity=0.5, seqlen=4), random_windows(length=10))


def test_same_inputs_same_result():
    a, b = tiny_model("qwen2", seed=3), tiny_model("qwen2", seed=3)
    config = PruneConfig(method="sparsegpt", pattern="2:4", seqlen=16)
    prune_model(a, config, random_windows(seed=9), progress=False)
    prune_model(b, config, random_windows(seed=9), progress=False)
    for (name, x), (_, y) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(x, y), name


@pytest.mark.triton_kernels
@pytest.mark.parametrize(
    "method,setting",
    [
        ("wanda", {"sparsity": 0.5}),
        ("wanda", {"pattern": "2:4"}),
        ("sparsegpt", {"sparsity": 0.5}),
        ("sparsegpt", {"pattern": "2:4"}),
    ],
)
def test_triton_kernels_and_references_prune_alike(method, setting, monkeypatch):
    """The whole driver once through the Triton kernels (interpreter on CPU) and once through the
    references: identical masks, weights equal up to float rounding."""
    config = PruneConfig(method=method, seqlen=16, **setting)
    results = {}
    for impl in ("triton", "reference"):
        monkeypatch.setenv("POLYSPARSE_KERNELS", impl)
        model = tiny_model("llama", seed=2, num_hidden_layers=1)  # the interpreter is slow: one block
        prune_model(model, config, random_windows(n=2, length=12), progress=False)
        results[impl] = block_layers(model)
    for name, layer in results["triton"].items():
        a, b = weight_matrix(layer), weight_matrix(results["reference"][name])
        assert torch.equal(a == 0, b == 0), name
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_padding_content_never_reaches_the_statistics(method):
    """Right-padded windows (translation prompts): whatever token ids sit under the padding, the pruned
    model is the same, since padded positions are masked out of attention and of every statistic."""
    windows = random_windows(n=4, length=12, seed=8, pad_last=5)
    other = windows.input_ids.clone()
    other[windows.attention_mask == 0] = torch.randint(3, 300, (int((windows.attention_mask == 0).sum()),))
    from polysparse.sparsify.calibration import TokenWindows

    variants = [windows, TokenWindows(other, windows.attention_mask.clone())]
    models = []
    for w in variants:
        model = tiny_model("qwen2", seed=6)
        prune_model(
            model, PruneConfig(method=method, sparsity=0.5, seqlen=16, batch_size=2), w, progress=False
        )
        models.append(model)
    for (name, a), (_, b) in zip(models[0].named_parameters(), models[1].named_parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
