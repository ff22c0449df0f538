"""Offloaded calibration activations: the store, and pruning runs that offload them."""

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers.tiny_models import random_windows, tiny_model
from polysparse.sparsify import PruneConfig, prune_model
from polysparse.sparsify import driver as driver_module
from polysparse.sparsify.activations import ActivationStore
from polysparse.sparsify.checkpointing import SavedBatches, _atomic_save_batches
from polysparse.sparsify.config import ConfigError


def batches(dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 5 + i, 8, generator=generator).to(dtype) for i in range(3)]


@pytest.mark.parametrize("offload", ["none", "cpu", "disk"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_store_gives_back_what_it_was_given(tmp_path, offload, dtype):
    store = ActivationStore("cpu", offload, root=tmp_path if offload == "disk" else None)
    given = batches(dtype)
    store.extend(given)
    assert len(store) == 3
    assert store.shapes() == [(t.shape, t.dtype) for t in given]
    for got, want in zip(store, given):
        assert got.dtype == want.dtype and torch.equal(got, want)
    if offload == "disk":
        assert len(list(tmp_path.rglob("*.safetensors"))) == 3
    store.close()
    assert len(store) == 0
    assert not list(tmp_path.rglob("*.safetensors"))


@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_half_precision_storage_rounds_and_casts_back(tmp_path, storage):
    given = batches(torch.float32)
    store = ActivationStore("cpu", "disk", dtype=storage, root=tmp_path).extend(given)
    narrow = getattr(torch, storage)
    for got, want in zip(store, given):
        assert got.dtype == torch.float32  # read back in the dtype the block produced
        assert torch.equal(got, want.to(narrow).float())
        assert not torch.equal(got, want)  # it was rounded: the storage dtype is really narrower
    stored = load_file(str(next(tmp_path.rglob("batch-00000.safetensors"))))["hidden"]
    assert stored.dtype == narrow


def test_successor_stores_are_independent(tmp_path):
    first = ActivationStore("cpu", "disk", root=tmp_path).extend(batches())
    second = first.successor().extend(batches(seed=1))
    first.close()
    assert len(second) == 3 and torch.equal(second[0], batches(seed=1)[0])
    assert len(list(tmp_path.rglob("*.safetensors"))) == 3


def test_store_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="offload must be one of"):
        ActivationStore("cpu", "gpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        ActivationStore("cpu", "cpu", dtype="int8")
    with pytest.raises(ValueError, match="needs a folder"):
        ActivationStore("cpu", "disk")


def test_config_validates_offload():
    with pytest.raises(ConfigError, match="offload must be"):
        PruneConfig(sparsity=0.5, offload="ram")
    with pytest.raises(ConfigError, match="offload_dtype"):
        PruneConfig(sparsity=0.5, offload="cpu", offload_dtype="float8")
    with pytest.raises(ConfigError, match="only used with offload='disk'"):
        PruneConfig(sparsity=0.5, offload="cpu", offload_dir="/tmp/x")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_checkpoint_batches_are_written_one_at_a_time_as_safetensors(tmp_path, dtype):
    given = batches(dtype)
    store = ActivationStore("cpu", "disk", root=tmp_path / "store").extend(given)
    path = tmp_path / "hidden.safetensors"
    _atomic_save_batches(store, path)
    loaded = load_file(str(path))  # the reference reader accepts the hand-written file
    assert [loaded[f"batch-{i:05d}"].dtype for i in range(3)] == [dtype] * 3
    assert all(torch.equal(loaded[f"batch-{i:05d}"], want) for i, want in enumerate(given))
    saved = SavedBatches(path)
    assert len(saved) == 3 and all(torch.equal(saved[i], want) for i, want in enumerate(given))
    with pytest.raises(IndexError):
        saved[3]


def _pruned_weights(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("offload", ["cpu", "disk"])
@pytest.mark.parametrize("method,setting", [("wanda", {"pattern": "2:4"}), ("sparsegpt", {"sparsity": 0.5})])
def test_offloading_does_not_change_the_result(tmp_path, offload, method, setting):
    windows = random_windows(n=5, length=12, pad_last=3)
    reference = tiny_model("gemma3", seed=3)
    prune_model(reference, PruneConfig(method=method, seqlen=16, **setting), windows, progress=False)
    offloaded = tiny_model("gemma3", seed=3)
    folder = tmp_path / "acts"
    config = PruneConfig(
        method=method,
        seqlen=16,
        offload=offload,
        offload_dir=str(folder) if offload == "disk" else None,
        **setting,
    )
    prune_model(offloaded, config, windows, progress=False)
    want, got = _pruned_weights(reference), _pruned_weights(offloaded)
    assert all(torch.equal(want[name], got[name]) for name in want)
    if offload == "disk":
        assert folder.is_dir() and not list(folder.rglob("*.safetensors"))  # cleaned up after the walk


def test_disk_offload_keeps_the_activations_on_disk_during_the_walk(tmp_path, monkeypatch):
    """While a block is pruned, its inputs are files (one per batch), not tensors held in memory."""
    windows = random_windows(n=4, length=10)
    seen = []
    original = driver_module.attach_statistics

    def spy(step, layers, method):
        seen.append((len(list((tmp_path / "acts").rglob("batch-*.safetensors"))), type(step.hidden)))
        return original(step, layers, method)

    monkeypatch.setattr(driver_module, "attach_statistics", spy)
    config = PruneConfig(
        method="wanda", sparsity=0.5, seqlen=16, offload="disk", offload_dir=str(tmp_path / "acts")
    )
    prune_model(tiny_model("llama"), config, windows, progress=False)
    assert seen and all(count == len(windows) and kind is ActivationStore for count, kind in seen)


def test_half_precision_offload_of_a_bfloat16_model_changes_nothing():
    windows = random_windows(n=3, length=12)
    reference = tiny_model("llama", seed=5, dtype=torch.bfloat16)
    prune_model(reference, PruneConfig(method="wanda", sparsity=0.5, seqlen=16), windows, progress=False)
    offloaded = tiny_model("llama", seed=5, dtype=torch.bfloat16)
    config = PruneConfig(method="wanda", sparsity=0.5, seqlen=16, offload="cpu", offload_dtype="bfloat16")
    prune_model(offloaded, config, windows, progress=False)
    want, got = _pruned_weights(reference), _pruned_weights(offloaded)
    assert all(torch.equal(want[name], got[name]) for name in want)


class Interrupt(Exception):
    pass


def test_resume_with_disk_offload_is_bitwise_identical(tmp_path, monkeypatch):
    windows = random_windows(n=4, length=12, pad_last=2)
    config = PruneConfig(method="sparsegpt", sparsity=0.5, seqlen=16, offload="disk")
    reference = tiny_model("qwen2", seed=2)
    prune_model(reference, config, windows, progress=False)

    original = driver_module.PruneCheckpoint.save

    def save_then_stop(self, index, block, next_hidden, report):
        original(self, index, block, next_hidden, report)
        raise Interrupt

    monkeypatch.setattr(driver_module.PruneCheckpoint, "save", save_then_stop)
    work = tmp_path / "work"
    with pytest.raises(Interrupt):
        prune_model(tiny_model("qwen2", seed=2), config, windows, progress=False, checkpoint_dir=work)
    monkeypatch.undo()
    assert json.loads((work / "state.json").read_text())["next_block"] == 1
    assert (work / "activations").is_dir()  # offloaded beside the checkpoints by default

    resumed = tiny_model("qwen2", seed=2)
    prune_model(resumed, config, windows, progress=False, checkpoint_dir=work)
    want, got = _pruned_weights(reference), _pruned_weights(resumed)
    assert all(torch.equal(want[name], got[name]) for name in want)
    assert not list((work / "activations").rglob("*.safetensors"))


def test_disk_offload_without_a_folder_uses_a_temporary_one_and_removes_it(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []
    original = driver_module.attach_statistics

    def spy(step, layers, method):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        return original(step, layers, method)

    monkeypatch.setattr(driver_module, "attach_statistics", spy)
    config = PruneConfig(method="wanda", sparsity=0.5, seqlen=16, offload="disk")
    prune_model(tiny_model("llama"), config, random_windows(n=2, length=10), progress=False)
    assert seen and all(len(names) == 1 and names[0].startswith("polysparse-activations-") for names in seen)
    assert not list(tmp_path.iterdir())
