"""Post-mask recovery in the driver: the ADMM update, block-wise reconstruction and the OWL profile."""

import json

import pytest
import torch

from helpers.tiny_models import random_windows, tiny_model
from polysparse.sparsify import PruneConfig, find_decoder_stack, prune_model
from polysparse.sparsify import driver as driver_module
from polysparse.sparsify.calibration import TokenWindows
from polysparse.sparsify.config import ConfigError
from polysparse.sparsify.methods.owl import owl_sparsities
from polysparse.sparsify.model_graph import prunable_layers, weight_matrix
from polysparse.sparsify.profiles import language_token_masks
from polysparse.sparsify.reconstruction import masked_mse


def layer_weights(model):
    stack = find_decoder_stack(model)
    weights = {}
    for i, block in enumerate(stack.blocks):
        for name, layer in prunable_layers(block, stack.block_name(i)).items():
            weights[name] = weight_matrix(layer).detach().clone()
    return weights


def prune(arch, windows, seed=1, dtype=torch.float32, **settings):
    model = tiny_model(arch, seed=seed, dtype=dtype)
    report = prune_model(model, PruneConfig(seqlen=16, **settings), windows, progress=False)
    return model, report


def assert_pattern(weights, masks, nm=None):
    """Every weight the method pruned is zero, and N:M groups hold at least N zeros."""
    for name, keep in masks.items():
        w = weights[name]
        assert (w[~keep] == 0).all(), name
        if nm is not None:
            n, m = nm
            assert ((w == 0).reshape(w.shape[0], -1, m).sum(dim=2) >= n).all(), name


def record_admm(monkeypatch):
    """The method's keep-mask of every layer, as the driver hands it to the ADMM update."""
    masks = {}
    original = driver_module.admm_refine

    def spy(weight, pruned, stats, config):
        result = original(weight, pruned, stats, config)
        assert torch.equal(result.keep, pruned.keep)
        masks[len(masks)] = pruned.keep.clone()
        return result

    monkeypatch.setattr(driver_module, "admm_refine", spy)
    return masks


def record_reconstruction(monkeypatch):
    """The keep-masks handed to block-wise reconstruction, checked against the weights after every call."""
    masks = {}
    original = driver_module.reconstruct_block

    def spy(block, hidden, arguments, token_masks, targets, keeps, settings):
        before = {layer: weight_matrix(layer).detach().clone() for layer in keeps}
        info = original(block, hidden, arguments, token_masks, targets, keeps, settings)
        for layer, keep in keeps.items():
            after = weight_matrix(layer)
            assert (after[~keep] == 0).all()
            assert not torch.equal(after, before[layer])  # kept weights did move
            masks[len(masks)] = keep.clone()
        return info

    monkeypatch.setattr(driver_module, "reconstruct_block", spy)
    return masks


def by_name(model, masks):
    return dict(zip(layer_weights(model), masks.values()))


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("setting", [{"sparsity": 0.5}, {"pattern": "2:4"}])
def test_admm_update_keeps_the_masks_and_lowers_every_layer_error(monkeypatch, method, setting):
    windows = random_windows(n=4, length=12, pad_last=3)
    plain, plain_report = prune("llama", windows, method=method, **setting)
    masks = record_admm(monkeypatch)
    recovered, report = prune("llama", windows, method=method, update="admm", **setting)
    nm = (2, 4) if "pattern" in setting else None
    masks = by_name(recovered, masks)
    assert_pattern(layer_weights(recovered), masks, nm)
    # Block 0 sees the same inputs in both runs: the same masks as the plain method.
    for name, w in layer_weights(plain).items():
        if ".layers.0." in name:
            assert torch.equal(w == 0, ~masks[name]), name
    assert [e["pruned"] for e in report.layers][:7] == [e["pruned"] for e in plain_report.layers][:7]
    for entry in report.layers:
        assert entry["admm"]["error_after"] < entry["admm"]["error_before"], entry["name"]


@pytest.mark.parametrize(
    "arch,target,setting",
    [
        ("llama", "dense", {"sparsity": 0.5}),
        ("gemma3", "prefix", {"pattern": "2:4"}),
        ("gemma3", "dense", {"pattern": "2:4"}),
        ("gpt2", "dense", {"pattern": "2:4"}),
        ("gpt2", "prefix", {"sparsity": 0.5}),
    ],
)
def test_reconstruction_keeps_the_masks_and_lowers_the_block_error(monkeypatch, arch, target, setting):
    windows = random_windows(n=4, length=12, pad_last=3)
    masks = record_reconstruction(monkeypatch)
    recovered, report = prune(
        arch,
        windows,
        method="wanda",
        reconstruct="blockwise",
        reconstruct_target=target,
        reconstruct_steps=12,
        reconstruct_lr=1e-3,
        **setting,
    )
    nm = (2, 4) if "pattern" in setting else None
    assert len(masks) == len(report.layers)
    assert_pattern(layer_weights(recovered), by_name(recovered, masks), nm)
    assert report.sparsity == pytest.approx(0.5, abs=0.02)
    for block in report.blocks:
        info = block["reconstruction"]
        assert info["steps"] == 12
        assert info["error_after"] < info["error_before"], block["name"]


def test_reconstruction_in_bfloat16_trains_float32_masters_and_keeps_the_dtype(monkeypatch):
    windows = random_windows(n=4, length=12)
    masks = record_reconstruction(monkeypatch)
    settings = dict(method="wanda", pattern="2:4", reconstruct="blockwise", reconstruct_steps=8)
    model, report = prune("llama", windows, dtype=torch.bfloat16, reconstruct_lr=1e-3, **settings)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    assert_pattern(layer_weights(model), by_name(model, masks), (2, 4))
    for block in report.blocks:
        assert block["reconstruction"]["error_after"] < block["reconstruction"]["error_before"]


def test_masked_mse_ignores_padding():
    out, target = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    garbage = target.clone()
    garbage[0, 3:] = 1e6
    expected = ((out - target) ** 2)[mask].mean()
    torch.testing.assert_close(masked_mse(out, garbage, mask), expected)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("target,offload", [("dense", "disk"), ("prefix", "none")])
def test_resume_with_reconstruction_is_bitwise_identical(tmp_path, monkeypatch, target, offload):
    config = PruneConfig(
        method="wanda",
        pattern="2:4",
        seqlen=16,
        reconstruct="blockwise",
        reconstruct_target=target,
        reconstruct_steps=6,
        reconstruct_lr=1e-3,
        offload=offload,
    )
    windows = random_windows(n=4, length=12, pad_last=2)
    reference = tiny_model("gemma3", seed=1)
    reference_report = prune_model(reference, config, windows, progress=False)

    original = driver_module.PruneCheckpoint.save
    seen = []

    def save(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(args[0])
        if len(seen) == 2:
            raise Interrupt

    monkeypatch.setattr(driver_module.PruneCheckpoint, "save", save)
    interrupted = tiny_model("gemma3", seed=1)
    with pytest.raises(Interrupt):
        prune_model(interrupted, config, windows, progress=False, checkpoint_dir=tmp_path / "work")
    monkeypatch.undo()
    state = json.loads((tmp_path / "work" / "state.json").read_text())
    assert state["next_block"] == 2
    assert state.get("streams", []) == (["dense"] if target == "dense" else [])

    resumed = tiny_model("gemma3", seed=1)
    report = prune_model(resumed, config, windows, progress=False, checkpoint_dir=tmp_path / "work")
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert [b["reconstruction"]["last_loss"] for b in report.blocks] == [
        b["reconstruction"]["last_loss"] for b in reference_report.blocks
    ]


def test_owl_profile_prunes_each_block_to_its_sparsity():
    windows = random_windows(n=4, length=12, pad_last=3)
    model, report = prune("llama", windows, method="wanda", sparsity=0.5, sparsity_profile="owl")
    profile = report.to_dict()["sparsity_profile"]
    blocks = profile["block_sparsity"]
    assert len(blocks) == len(find_decoder_stack(model).blocks)
    assert sum(blocks) / len(blocks) == pytest.approx(0.5)
    assert len(set(blocks)) > 1
    for entry in report.layers:
        block = int(entry["name"].split(".")[2])
        in_features = entry["shape"][1]
        assert entry["pruned"] == int(blocks[block] * in_features) * entry["shape"][0], entry["name"]


def labelled(windows, languages):
    return TokenWindows(windows.input_ids, windows.attention_mask, "labelled", languages=tuple(languages))


def rows(windows, indices):
    return TokenWindows(windows.input_ids[indices], windows.attention_mask[indices], "subset")


@pytest.mark.parametrize("languages", [None, ("de",) * 4])
def test_language_aware_owl_with_one_language_is_plain_owl(languages, caplog):
    windows = random_windows(n=4, length=12, pad_last=3)
    plain_model, plain = prune("llama", windows, method="wanda", sparsity=0.5, sparsity_profile="owl")
    one = windows if languages is None else labelled(windows, languages)
    lang_model, lang = prune("llama", one, method="wanda", sparsity=0.5, sparsity_profile="owl-lang")
    assert lang.profile["block_sparsity"] == plain.profile["block_sparsity"]
    assert lang.profile["outlier_ratio"] == plain.profile["outlier_ratio"]
    assert len(set(plain.profile["block_sparsity"])) > 1  # a real profile, not the uniform fallback
    assert lang.profile["name"] == "owl-lang" and len(lang.profile["outlier_ratio_by_language"]) == 1
    assert "one language" in caplog.text and "plain OWL" in caplog.text
    for name, weight in layer_weights(plain_model).items():
        assert torch.equal(layer_weights(lang_model)[name], weight), name


@pytest.mark.parametrize("batch_size", [1, 3])
def test_language_aware_owl_takes_each_languages_ratio_and_keeps_the_largest(batch_size):
    """Per language the ratios equal plain OWL on that language's windows alone; the profile is their max.

    Languages alternate so that batches of 3 mix them (each batch's mask is split by window).
    """
    windows = random_windows(n=6, length=12, pad_last=4)
    g = torch.Generator().manual_seed(5)
    de = torch.randint(3, 200, (3, 11), generator=g)  # a narrower vocabulary: other outlier features
    windows.input_ids[0::2, 1:] = de
    languages = ["de", "ja"] * 3
    settings = {"method": "wanda", "sparsity": 0.5, "owl_lambda": 0.1, "batch_size": batch_size}
    model, report = prune("llama", labelled(windows, languages), sparsity_profile="owl-lang", **settings)
    profile = report.profile
    by_language = profile["outlier_ratio_by_language"]
    assert sorted(by_language) == ["de", "ja"] and profile["windows_by_language"] == {"de": 3, "ja": 3}
    for lang, indices in (("de", [0, 2, 4]), ("ja", [1, 3, 5])):
        _, alone = prune("llama", rows(windows, indices), sparsity_profile="owl", **settings)
        assert by_language[lang] == pytest.approx(alone.profile["outlier_ratio"], abs=1e-9), lang
    assert profile["outlier_ratio"] == [max(a, b) for a, b in zip(by_language["de"], by_language["ja"])]
    assert by_language["de"] != by_language["ja"]
    blocks = profile["block_sparsity"]
    assert sum(blocks) / len(blocks) == pytest.approx(0.5, abs=1e-12)
    assert all(0.5 - 2 * 0.1 - 1e-12 <= s <= 0.5 + 2 * 0.1 + 1e-12 for s in blocks)
    assert blocks == pytest.approx(owl_sparsities(profile["outlier_ratio"], 0.5, 0.1))
    for entry in report.layers:
        block = int(entry["name"].split(".")[2])
        assert entry["pruned"] == int(blocks[block] * entry["shape"][1]) * entry["shape"][0], entry["name"]


def test_language_token_masks_split_every_batch_by_window():
    masks = [
        torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool),
        torch.tensor([[1, 0, 0]], dtype=torch.bool),
    ]
    split = language_token_masks(masks, ["en", "de", "en"], ["de", "en"])
    assert [m.tolist() for m in split["en"]] == [[[1, 1, 0], [0, 0, 0]], [[1, 0, 0]]]
    assert [m.tolist() for m in split["de"]] == [[[0, 0, 0], [1, 1, 1]], [[0, 0, 0]]]
    with pytest.raises(ValueError, match="2 window languages for 3 windows"):
        language_token_masks(masks, ["en", "de"], ["de", "en"])


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"reconstruct_steps": -1}, "reconstruct_steps must be a positive whole number"),
        ({"reconstruct_steps": 0}, "reconstruct_steps must be a positive whole number"),
        ({"reconstruct_lr": 0.0}, "reconstruct_lr"),
        ({"reconstruct": "global"}, "reconstruct must be one of none, blockwise"),
        ({"reconstruct_target": "teacher"}, "reconstruct_target must be one of dense, prefix"),
        ({"update": "lstsq"}, "update must be one of none, admm"),
        ({"admm_iterations": 0}, "admm_iterations must be a positive whole number"),
        ({"owl_lambda": 1.5}, "owl_lambda must lie strictly between 0 and 1"),
        ({"owl_lambda": 0.0}, "owl_lambda must lie strictly between 0 and 1"),
        ({"owl_lambda": -0.1}, "owl_lambda must lie strictly between 0 and 1"),
        ({"owl_m": 0}, "owl_m"),
        ({"sparsity_profile": "owl", "owl_lambda": 0.3}, "outside \\(0, 1\\); choose owl_lambda < 0.25"),
        ({"sparsity_profile": "owl", "sparsity": None, "pattern": "2:4"}, "needs unstructured sparsity"),
        ({"sparsity_profile": "owl-lang", "sparsity": None, "pattern": "2:4"}, "needs unstructured sparsity"),
        ({"sparsity_profile": "owl-lang", "owl_lambda": 0.3}, "choose owl_lambda < 0.25"),
        ({"sparsity_profile": "linear"}, "sparsity_profile must be one of uniform, owl"),
    ],
)
def test_bad_recovery_settings_are_refused(settings, message):
    base = {"method": "wanda", "sparsity": 0.5}
    with pytest.raises(ConfigError, match=message):
        PruneConfig(**{**base, **settings})


def test_magnitude_with_a_calibrated_step_needs_windows():
    model = tiny_model("llama")
    with pytest.raises(ConfigError, match="update=admm need calibration windows"):
        prune_model(model, PruneConfig(method="magnitude", sparsity=0.5, update="admm"), None, progress=False)


def test_dense_target_is_the_dense_models_own_block_output_even_past_a_dense_block(monkeypatch):
    """Target ``dense`` = the unpruned model's hidden states after that block, also when a block before it
    has nothing to prune (``ignore`` leaves block 1 dense, so the stream must still advance through it)."""
    windows = random_windows(n=2, length=10)
    dense = tiny_model("llama", seed=3)
    with torch.no_grad():
        hidden = dense(
            input_ids=windows.input_ids, attention_mask=windows.attention_mask, output_hidden_states=True
        ).hidden_states
    seen = {}
    original = driver_module.reconstruct_block

    def spy(block, hidden_in, arguments, token_masks, targets, keeps, settings):
        seen[len(seen)] = [t.clone() for t in targets]
        return original(block, hidden_in, arguments, token_masks, targets, keeps, settings)

    monkeypatch.setattr(driver_module, "reconstruct_block", spy)
    config = PruneConfig(
        method="wanda", sparsity=0.5, seqlen=16, reconstruct="blockwise", reconstruct_steps=2,
        reconstruct_lr=1e-3, ignore=(r"layers\.1\.",),
    )  # fmt: skip
    prune_model(tiny_model("llama", seed=3), config, windows, progress=False)
    assert len(seen) == 2  # blocks 0 and 2 (block 1 has nothing to prune)
    torch.testing.assert_close(torch.cat(seen[0]), hidden[1], rtol=1e-5, atol=1e-5)
    # hidden_states holds the last block's output after the final norm: run the dense block 2 by hand
    # on the dense model's inputs of block 2 instead.
    stack = find_decoder_stack(dense)
    x = hidden[2]
    with torch.no_grad():
        from polysparse.sparsify.walk import capture_block_inputs

        captured = capture_block_inputs(dense, stack, windows, batch_size=1)
        outs = []
        for i in range(2):
            args = captured.arguments[2][captured.argument_index[2][i]]
            out = stack.blocks[2](x[i : i + 1], *args.args, **args.kwargs)
            outs.append(out[0] if isinstance(out, tuple) else out)
    torch.testing.assert_close(torch.cat(seen[1]), torch.cat(outs), rtol=1e-5, atol=1e-5)
