"""Interrupted pruning runs resume from the last finished block with a bitwise identical result."""

import json

import pytest
import torch

from helpers.interrupts import interrupt_after as interrupt_blocks
from helpers.tiny_models import random_windows, tiny_model
from polysparse.sparsify import PruneConfig, prune_model
from polysparse.sparsify.checkpointing import CorruptCheckpointError, ResumeMismatchError


class Interrupt(Exception):
    pass


def interrupt_after(monkeypatch, blocks_done: int):
    """Make the driver fail right after ``blocks_done`` blocks were checkpointed."""
    interrupt_blocks(monkeypatch, blocks_done, Interrupt)


@pytest.mark.parametrize(
    "method,setting",
    [("wanda", {"pattern": "2:4"}), ("sparsegpt", {"sparsity": 0.5}), ("magnitude", {"sparsity": 0.5})],
)
@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_resume_is_bitwise_identical(tmp_path, monkeypatch, arch, method, setting):
    config = PruneConfig(method=method, seqlen=16, **setting)
    windows = None if method == "magnitude" else random_windows(n=4, length=12, pad_last=2)
    reference = tiny_model(arch, seed=1)
    reference_report = prune_model(reference, config, windows, progress=False)

    interrupted = tiny_model(arch, seed=1)
    interrupt_after(monkeypatch, blocks_done=2)
    with pytest.raises(Interrupt):
        prune_model(interrupted, config, windows, progress=False, checkpoint_dir=tmp_path / "work")
    monkeypatch.undo()
    state = json.loads((tmp_path / "work" / "state.json").read_text())
    assert state["next_block"] == 2

    resumed = tiny_model(arch, seed=1)  # a fresh process would load the dense model again
    report = prune_model(resumed, config, windows, progress=False, checkpoint_dir=tmp_path / "work")
    for (name, a), (_, b) in zip(reference.named_parameters(), resumed.named_parameters()):
        assert torch.equal(a, b), name
    assert [entry["name"] for entry in report.layers] == [entry["name"] for entry in reference_report.layers]
    assert [entry["sparsity"] for entry in report.layers] == [e["sparsity"] for e in reference_report.layers]


def test_a_different_configuration_is_refused(tmp_path, monkeypatch):
    windows = random_windows(n=2, length=10)

    def run(model, config, windows):
        return prune_model(model, config, windows, progress=False, checkpoint_dir=tmp_path / "w")

    interrupt_after(monkeypatch, blocks_done=1)
    with pytest.raises(Interrupt):
        run(tiny_model("llama"), PruneConfig(sparsity=0.5, seqlen=16), windows)
    monkeypatch.undo()
    with pytest.raises(ResumeMismatchError, match="different model, configuration or calibration"):
        run(tiny_model("llama"), PruneConfig(sparsity=0.6, seqlen=16), windows)
    with pytest.raises(ResumeMismatchError):
        run(tiny_model("llama", seed=5), PruneConfig(sparsity=0.5, seqlen=16), windows)
    with pytest.raises(ResumeMismatchError):
        run(tiny_model("llama"), PruneConfig(sparsity=0.5, seqlen=16), random_windows(n=2, seed=9))


def test_a_damaged_working_folder_is_a_clear_error(tmp_path, monkeypatch):
    windows = random_windows(n=2, length=10)
    config = PruneConfig(sparsity=0.5, seqlen=16)
    interrupt_after(monkeypatch, blocks_done=2)
    with pytest.raises(Interrupt):
        prune_model(tiny_model("llama"), config, windows, progress=False, checkpoint_dir=tmp_path / "w")
    monkeypatch.undo()
    block = tmp_path / "w" / "block-0001.safetensors"
    block.write_bytes(block.read_bytes()[:100])
    with pytest.raises(CorruptCheckpointError, match="--overwrite"):
        prune_model(tiny_model("llama"), config, windows, progress=False, checkpoint_dir=tmp_path / "w")
    (tmp_path / "w" / "state.json").write_text("{not json")
    with pytest.raises(CorruptCheckpointError):
        prune_model(tiny_model("llama"), config, windows, progress=False, checkpoint_dir=tmp_path / "w")


def test_a_folder_written_by_an_older_format_is_refused_clearly(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "state.json").write_text(json.dumps({"fingerprint": "f", "next_block": 1, "report": {}}))
    with pytest.raises(ResumeMismatchError, match="another polysparse version"):
        prune_model(
            tiny_model("llama"),
            PruneConfig(sparsity=0.5, seqlen=16),
            random_windows(n=2, length=10),
            progress=False,
            checkpoint_dir=work,
        )


def test_the_work_folder_lock_is_exclusive_until_released(tmp_path):
    import os

    from polysparse.sparsify.checkpointing import WorkFolderLock, WorkFolderLockedError

    first = WorkFolderLock(tmp_path / "w").acquire()
    with pytest.raises(WorkFolderLockedError, match=f"pid {os.getpid()}"):
        WorkFolderLock(tmp_path / "w").acquire()  # flock conflicts across open files, even in one process
    first.release()
    with WorkFolderLock(tmp_path / "w"):
        pass
