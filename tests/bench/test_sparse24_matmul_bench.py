"""The 2:4 matmul benchmark runs end to end (``--smoke``: tiny shapes, CPU interpreter) and refuses to report
numbers when the Triton provider could not run."""

from __future__ import annotations

import json

import pytest

from polysparse.bench.kernels import sparse24_matmul as bench
from polysparse.kernels import dispatch

# Kernel benchmarks are kernel tests: they run the Triton path (interpreter on CPU).
pytestmark = pytest.mark.triton_kernels


def test_smoke_run_writes_results(tmp_path):
    assert bench.main(["--smoke", "--out", str(tmp_path), "--m", "1,3"]) == 0
    payload = json.loads((tmp_path / "sparse24_matmul_smoke.json").read_text())
    assert payload["smoke"] is True and payload["dtype"] == "fp16"
    assert payload["environment"]["device"] and payload["environment"]["versions"]["triton"]
    rows = payload["measurements"]
    shapes = [(k, n) for _, k, n in bench.SMOKE_MODELS["smoke"]]
    assert len(rows) == len(shapes) * 2 * len(bench.PROVIDERS)
    for row in rows:
        if row["provider"] in ("dense", "triton"):
            assert row["ms"] > 0 and row["gbps"] > 0 and row["error"] is None
            assert row["max_abs_err_vs_dense"] is not None
        if row["provider"] == "dense":
            assert row["speedup_vs_dense"] == pytest.approx(1.0)
    bounds = {(r["in_features"], r["out_features"], r["m"]): r["bandwidth_bound"] for r in rows}
    assert bounds[(64, 64, 1)] == pytest.approx(bench.dense_bytes(1, 64, 64) / bench.sparse_bytes(1, 64, 64))
    table = payload["dispatch_table"]
    assert {(c["in_features"], c["out_features"], c["m_bucket"]) for c in table} == {
        (k, n, b) for k, n in shapes for b in (0, 2)
    }
    assert all(c["best"] in c["ms"] and set(c["ms"]) >= {"dense", "triton"} for c in table)
    assert all(c["best"] == min(c["ms"], key=c["ms"].get) for c in table)
    assert sorted({m for c in table for m in c["m"]}) == [1, 3]
    md = (tmp_path / "sparse24_matmul_smoke.md").read_text()
    assert "| model | layer |" in md and "Dispatch" in md


def test_bandwidth_bound_tends_to_1_78():
    assert bench.dense_bytes(1, 4096, 4096) / bench.sparse_bytes(1, 4096, 4096) == pytest.approx(
        2 / 1.125, rel=1e-3
    )


def test_refuses_to_report_when_triton_cannot_run(tmp_path, monkeypatch):
    monkeypatch.setattr(dispatch, "triton_reason", lambda *tensors: "forced by the test")
    with pytest.raises(RuntimeError, match="forced by the test"):
        bench.run(tmp_path, ms=[1], smoke=True)
    assert not list(tmp_path.iterdir())
