"""Issue 14, items 1-4: no silently wrong weights and no lost work when `polysparse prune` is interrupted.

Two runs into one output, a working folder changed on disk, a model edited in place after a kill, and a
kill during the final save: each through the command line, as a user meets it.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file, save_file

from helpers.interrupts import interrupt_after
from polysparse.bench.cli import main

# A prune that sleeps where the test wants to kill it: after each checkpointed block, or inside the final
# save (after the model is written into the temporary folder, before the rename).
SLOW_PRUNE = """
import sys, time
import polysparse.sparsify.checkpointing as checkpointing
import polysparse.sparsify.output as output
where = sys.argv[1]
if where == "block":
    original = checkpointing.PruneCheckpoint.save
    def slow_save(*args, **kwargs):
        original(*args, **kwargs)
        time.sleep(3)
    checkpointing.PruneCheckpoint.save = slow_save
else:
    original_report = output.write_report
    def slow_report(*args, **kwargs):
        original_report(*args, **kwargs)
        time.sleep(60)
    output.write_report = slow_report
from polysparse.bench.cli import main
sys.exit(main(sys.argv[2:]))
"""


def prune_args(model, text, *extra):
    return [
        "prune",
        "--model",
        str(model),
        "--method",
        "wanda",
        "--calib",
        f"text:{text}:de",
        "--nsamples",
        "4",
        "--seqlen",
        "32",
        "--quiet",
        *[str(e) for e in extra],
    ]


def start_slow(args, where="block"):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-P", "-c", SLOW_PRUNE, where, *args], env=env)


def wait_for(process, condition, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline and process.poll() is None:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("the run finished (or hung) before it reached the point to interrupt it")


def next_block(state_file):
    try:
        return json.loads(state_file.read_text())["next_block"]
    except (OSError, ValueError, KeyError):
        return -1


def identical(folder_a, folder_b):
    a = {}
    b = {}
    for path in folder_a.glob("*.safetensors"):
        a.update(load_file(str(path)))
    for path in folder_b.glob("*.safetensors"):
        b.update(load_file(str(path)))
    return a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


class Stop(Exception):
    pass


def stop_after_block(monkeypatch, blocks_done):
    """Make `polysparse prune` in this process stop like a Ctrl-C right after ``blocks_done`` blocks."""
    interrupt_after(monkeypatch, blocks_done, KeyboardInterrupt)


# --- 1. two runs into one output ---------------------------------------------------------------------------


def test_a_second_run_into_the_same_output_is_refused_while_the_first_lives(
    tiny_model_dir, german_text, tmp_path, capsys
):
    out = tmp_path / "pruned"
    state = tmp_path / ".pruned.work" / "state.json"
    first = start_slow(prune_args(tiny_model_dir, german_text, "--sparsity", 0.6, "--out", out))
    try:
        wait_for(first, lambda: next_block(state) >= 1)
        before = state.read_text()
        for sparsity in (0.6, 0.5):  # the same command, and another configuration
            assert main(prune_args(tiny_model_dir, german_text, "--sparsity", sparsity, "--out", out)) == 2
            message = capsys.readouterr().err
            assert "another polysparse process" in message and f"pid {first.pid}" in message
        assert json.loads(state.read_text())["fingerprint"] == json.loads(before)["fingerprint"]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The kernel dropped the dead run's lock: the same command resumes and finishes.
    assert main(prune_args(tiny_model_dir, german_text, "--sparsity", 0.6, "--out", out)) == 0
    report = json.loads((out / "polysparse.json").read_text())
    assert all(layer["sparsity"] == pytest.approx(0.6, abs=0.02) for layer in report["layers"])
    assert not (tmp_path / ".pruned.work").exists()


def test_overwrite_does_not_remove_a_live_runs_folder(tiny_model_dir, german_text, tmp_path, capsys):
    out = tmp_path / "pruned"
    state = tmp_path / ".pruned.work" / "state.json"
    first = start_slow(prune_args(tiny_model_dir, german_text, "--sparsity", 0.5, "--out", out))
    try:
        wait_for(first, lambda: next_block(state) >= 1)
        args = prune_args(tiny_model_dir, german_text, "--sparsity", 0.5, "--out", out, "--overwrite")
        assert main(args) == 2
        assert "another polysparse process" in capsys.readouterr().err
        assert state.exists()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


# --- 2. checksums of the working folder -------------------------------------------------------------------


@pytest.mark.parametrize("damaged", ["block-0000.safetensors", "hidden-0001.safetensors"])
def test_a_flipped_byte_in_the_working_folder_is_refused(
    tiny_model_dir, german_text, tmp_path, monkeypatch, capsys, damaged
):
    out = tmp_path / "pruned"
    args = prune_args(tiny_model_dir, german_text, "--pattern", "2:4", "--out", out)
    stop_after_block(monkeypatch, 1)
    assert main(args) == 130
    monkeypatch.undo()
    path = tmp_path / ".pruned.work" / damaged
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x7F  # a byte of tensor data near the end: the header still parses
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(args) == 2
    message = capsys.readouterr().err
    assert damaged in message and "SHA-256" in message and "--overwrite" in message
    assert not out.exists()
    assert main([*args, "--overwrite"]) == 0


# --- 3. the model edited in place after a kill ------------------------------------------------------------


def test_a_model_edited_in_place_is_not_resumed(tiny_model_dir, german_text, tmp_path, monkeypatch, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    out = tmp_path / "pruned"
    args = prune_args(model, german_text, "--pattern", "2:4", "--out", out)
    stop_after_block(monkeypatch, 2)
    assert main(args) == 130
    monkeypatch.undo()
    weights = load_file(str(model / "model.safetensors"))
    for name, tensor in weights.items():
        if name.startswith("model.layers.0.") and tensor.dim() == 2:
            tensor[:, 1:] *= 0.5  # every weight of block 0 but one column: no sampled probe sees it
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    capsys.readouterr()
    assert main(args) == 2
    assert "different model, configuration or calibration" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert main(prune_args(model, german_text, "--pattern", "2:4", "--out", tmp_path / "fresh")) == 0
    assert identical(out, tmp_path / "fresh")


# --- 4. killed during the final save ----------------------------------------------------------------------


@pytest.mark.parametrize("stream", ["off", "on"])
def test_a_run_killed_while_saving_finishes_the_save_and_cleans_up(
    tiny_model_dir, german_text, tmp_path, stream
):
    args = prune_args(tiny_model_dir, german_text, "--pattern", "2:4", "--stream", stream)
    assert main([*args, "--out", str(tmp_path / "reference")]) == 0
    out = tmp_path / "pruned"
    process = start_slow([*args, "--out", str(out)], where="save")
    try:
        wait_for(
            process, lambda: any((p / "polysparse.json").exists() for p in tmp_path.glob(".pruned.partial-*"))
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert list(tmp_path.glob(".pruned.partial-*")) and not out.exists()
    assert next_block(tmp_path / ".pruned.work" / "state.json") == 3  # every block was done

    assert main([*args, "--out", str(out)]) == 0
    assert identical(tmp_path / "reference", out)
    assert not list(tmp_path.glob(".pruned.*"))  # no partial copy, no working folder
