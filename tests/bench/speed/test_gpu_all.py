"""bench/scripts/gpu_all.sh rehearsed on a CPU: it refuses at once without CUDA, lists its steps, every
module and flag they would run exists, and its summary reads what the steps write."""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from polysparse.bench.speed import gpu_summary

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "bench" / "scripts" / "gpu_all.sh"


def _run(**env):
    return subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHON": sys.executable} | env,
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_fails_fast_and_clearly_without_cuda():
    before = set((ROOT / "bench" / "results" / "gpu").glob("*"))
    proc = _run(CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == 2
    assert "sees no CUDA device" in proc.stderr and "nothing to do without one" in proc.stderr
    assert "started" not in proc.stdout  # no step ran, not even the install
    assert set((ROOT / "bench" / "results" / "gpu").glob("*")) == before  # nothing written


def _help(module: str, command: list[str]) -> str:
    """The ``--help`` text of ``python -m module command...``, from its ``main(argv)`` in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main([*command, "--help"])
    assert exit_info.value.code == 0, (module, command)
    return out.getvalue()


def test_dry_run_lists_every_step_and_the_modules_and_flags_it_runs_exist():
    """What would fail only on the GPU machine (a renamed module or flag) fails here."""
    proc = _run(DRY_RUN="1")
    assert proc.returncode == 0, proc.stderr
    listed = dict(re.findall(r"^  (\S+)\s+(\d+) s$", proc.stdout, re.M))
    assert set(listed) == {
        "install", "tests", "compiled", "matmul", "topk", "sparsegpt",
        "e2e-llama-3-8b", "e2e-qwen2.5-7b", "e2e-gemma-3-270m",
    }  # fmt: skip
    for step in listed:
        assert f"[{step}] would run:" in proc.stdout
    assert "POLYSPARSE_TEST_GPU=1" in proc.stdout and "-m gpu" in proc.stdout
    commands = re.findall(r"-m (polysparse\.[\w.]+)((?:[ \t]+[^\s\\&]+)*)", proc.stdout)
    assert {module for module, _ in commands} == {
        "polysparse.bench.kernels.compiled", "polysparse.bench.kernels.sparse24_matmul",
        "polysparse.bench.kernels.topk_mask", "polysparse.bench.kernels.sparsegpt_solve",
        "polysparse.bench.speed.shape_models", "polysparse.bench.cli",
    }  # fmt: skip
    for module, arguments in commands:
        words = arguments.split()
        command = list(itertools.takewhile(lambda word: not word.startswith("-"), words))
        help_text = _help(module, command)
        flags = [word for word in words if word.startswith("--")]
        unknown = [flag for flag in flags if not re.search(rf"(?<![\w-]){flag}(?![\w-])", help_text)]
        assert not unknown, f"{module} {' '.join(command)} has no {unknown}"


def test_unknown_step_is_refused():
    proc = _run(STEPS="tests benchmark-everything")
    assert proc.returncode == 2 and "unknown step 'benchmark-everything'" in proc.stderr


def test_summary_reads_what_the_steps_write(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "steps.tsv").write_text("tests\tok\t95\t100\nmatmul\tfailed(1)\t12\t120\n")
    (run / "gpu-tests.xml").write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
        '<testcase classname="t" name="a"/><testcase classname="t" name="b"><failure/></testcase>'
        '<testcase classname="t" name="c"><skipped/></testcase></testsuite></testsuites>'
    )
    matmul = tmp_path / "sparse24_matmul_bf16.json"
    matmul.write_text(json.dumps({
        "benchmark": "sparse24_matmul", "dtype": "bf16", "environment": {"device": "NVIDIA H200"},
        "measurements": [
            {"model": "llama-3-8b", "layer": "down_proj", "m": 1, "provider": "dense", "ms": 0.030},
            {"model": "llama-3-8b", "layer": "down_proj", "m": 1, "provider": "triton", "ms": 0.020},
            {"model": "llama-3-8b", "layer": "down_proj", "m": 1, "provider": "torch-cutlass", "ms": 0.025},
        ],
    }))  # fmt: skip
    throughput = tmp_path / "throughput_x_cuda.json"
    throughput.write_text(json.dumps({
        "model_name": "llama-3-8b-4blocks-random24",
        "rows": [
            {"variant": "dense", "batch": 1, "prompt": 2048, "decode_tokens_per_s": {"median": 100.0}},
            {"variant": "sparse", "batch": 1, "prompt": 2048, "decode_tokens_per_s": {"median": 150.0}},
        ],
        "speedups": [
            {"batch": 1, "prompt": 2048, "decode": 1.5, "prefill": 0.9, "greedy_tokens_equal": True}
        ],
        "backends_ran": [{"ran": "triton"}],
    }))  # fmt: skip
    (run / "files.txt").write_text(f"{matmul}\n{throughput}\n{tmp_path / 'absent.json'}\n")
    text = gpu_summary.summarize(run)
    assert "matmul                failed(1) 12 (120)" in text
    assert "GPU tests: 1 passed, 1 failed, 1 skipped" in text and "FAILED t::b" in text
    assert "1.50x (1.20)" in text  # dense / triton, and dense / best torch sparse
    assert "100.0 ->    150.0 tok/s (1.50x), prefill 0.90x" in text
    assert "missing result:" in text
    assert (run / "summary.md").read_text().startswith("```")
