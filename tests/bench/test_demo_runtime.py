"""The demo's runtime steps (swap, parity, timing, compressed save) on a tiny model and real handbook text."""

import json
import os
from pathlib import Path

import pytest

from polysparse.bench.demo import demo_job
from polysparse.bench.plans import DEMO_RECIPE, DemoRun
from polysparse.runtime.checkpoint import load_sparse, read_sparsity_config
from polysparse.runtime.swap import sparse_layers
from polysparse.sparsify.config import PruneConfig

HANDBOOK = Path("/usr/share/doc/debian-handbook/html")


@pytest.fixture
def handbook():
    if not (HANDBOOK.is_dir() and any(HANDBOOK.glob("de*"))):
        message = "the German Debian handbook is missing: install debian-handbook (make debian-packages)"
        if os.environ.get("POLYSPARSE_REQUIRE_DEBIAN_TEXT", "") not in ("", "0"):
            pytest.fail(message)
        pytest.skip(message)


def test_demo_swaps_checks_times_and_saves_compressed(handbook, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    run = DemoRun(
        model=str(tiny_model_dir), eval_windows=1, out=str(out), bench_batch="1", bench_prompt="6",
        bench_new_tokens=2, bench_repeats=1, quiet=False,
    )  # fmt: skip
    payload = demo_job(run, PruneConfig(**{**DEMO_RECIPE, "nsamples": 2, "seqlen": 32}))
    printed = capsys.readouterr().out
    assert [f"[{i}/7]" in printed for i in range(1, 8)] == [True] * 7
    runtime = payload["runtime"]
    assert runtime["swap"]["layers_swapped"] == 21
    assert runtime["parity"]["sparse_ppl"] == runtime["parity"]["pruned_dense_ppl"]
    assert runtime["parity"]["max_abs_logit_diff"] == 0.0
    assert {r["ran"] for r in runtime["backends_ran"]} == {"dense"}
    assert json.loads((out / "throughput.json").read_text())["rows"]
    report = (out / "report.md").read_text()
    assert "## Sparse runtime" in report and "## Throughput" in report
    block = read_sparsity_config(out / "compressed")
    assert block["method"] == "sparsegpt" and block["calibration"]["language"] == "de"
    assert len(sparse_layers(load_sparse(out / "compressed"))) == 21
    written = json.loads((out / "polysparse.json").read_text())
    assert written["runtime"]["checkpoint"]["safetensors_bytes"] > 0
    assert 0 < written["wall_seconds"] == payload["wall_seconds"]
    assert f"The whole demo took {payload['wall_seconds']:.0f} s" in report
