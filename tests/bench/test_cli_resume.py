"""`polysparse prune` killed with SIGKILL and started again finishes with a bitwise identical output."""

import json
import os
import signal
import subprocess
import sys
import time

from safetensors.torch import load_file

from polysparse.bench.cli import main

SLOW_PRUNE = """
import sys, time
import polysparse.sparsify.checkpointing as checkpointing
original = checkpointing.PruneCheckpoint.save
def slow_save(*args, **kwargs):
    original(*args, **kwargs)
    time.sleep(3)  # leave time to be killed between blocks
checkpointing.PruneCheckpoint.save = slow_save
from polysparse.bench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_then_same_command_gives_identical_output(tiny_model_dir, german_text, tmp_path):
    args = [
        "prune",
        "--model",
        str(tiny_model_dir),
        "--method",
        "sparsegpt",
        "--pattern",
        "2:4",
        "--calib",
        f"text:{german_text}:de",
        "--nsamples",
        "4",
        "--seqlen",
        "32",
        "--quiet",
    ]
    assert main([*args, "--out", str(tmp_path / "reference")]) == 0

    out = tmp_path / "resumed"
    state = tmp_path / ".resumed.work" / "state.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-P", "-c", SLOW_PRUNE, *args, "--out", str(out)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if state.exists() and json.loads(state.read_text())["next_block"] >= 1:
            break
        time.sleep(0.1)
    assert process.poll() is None, "the run finished before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()
    assert json.loads(state.read_text())["next_block"] in (1, 2)

    assert main([*args, "--out", str(out)]) == 0
    reference = load_file(str(tmp_path / "reference" / "model.safetensors"))
    resumed = load_file(str(out / "model.safetensors"))
    assert reference.keys() == resumed.keys()
    assert all(reference[k].equal(resumed[k]) for k in reference)
    assert not (tmp_path / ".resumed.work").exists()
