"""The kernel benchmarks run end to end (``--smoke``: tiny shapes through the interpreter on CPU)."""

from __future__ import annotations

import json

import pytest

from polysparse.bench.kernels import _common
from polysparse.bench.kernels import sparsegpt_solve as bench_sparsegpt
from polysparse.bench.kernels import topk_mask as bench_topk
from polysparse.kernels import dispatch
from polysparse.kernels import topk_mask as tm

# Kernel benchmarks are kernel tests: they run the Triton path (interpreter on CPU).
pytestmark = pytest.mark.triton_kernels


def _load(path):
    data = json.loads(path.read_text())
    assert data["mode"] == "smoke"
    assert {"device", "versions", "commit", "command", "date"} <= set(data["environment"])
    return data


def test_topk_mask_smoke(tmp_path):
    bench_topk.main(["--smoke", "--out", str(tmp_path)])
    data = _load(tmp_path / "topk_mask-smoke.json")
    assert data["benchmark"] == "topk_mask"
    results = data["results"]
    assert {(r["op"], tuple(r["shape"])) for r in results} == {
        (op, shape) for op in ("unstructured", "2:4") for shape in bench_topk.SMOKE_SHAPES
    }
    for r in results:
        assert r["mask_matches_reference"] is True
        assert set(r["ms"]) >= {"triton", r["baseline"]} and all(ms > 0 for ms in r["ms"].values())
        assert r["speedup"] == pytest.approx(r["ms"][r["baseline"]] / r["ms"]["triton"])


def test_sparsegpt_solve_smoke(tmp_path):
    bench_sparsegpt.main(["--smoke", "--reps", "1", "--out", str(tmp_path)])
    data = _load(tmp_path / "sparsegpt_solve-smoke.json")
    results = data["results"]
    assert len(results) == len(bench_sparsegpt.SMOKE_SHAPES) * len(bench_sparsegpt.PATTERNS)
    for r in results:
        assert r["ms"]["triton"] > 0 and r["ms"]["pytorch loop"] > 0
        assert abs(r["error_ratio"] - 1) <= bench_sparsegpt.ERROR_TOLERANCE
        if r["op"] == "2:4":
            assert r["masks_equal"] is True


def test_benchmark_refuses_numbers_from_the_reference(tmp_path, monkeypatch):
    """If the Triton path falls back, the benchmark raises instead of reporting the reference's time."""
    monkeypatch.setattr(tm, "_unsupported", lambda weight, scale: "pretend the kernel cannot run")
    with pytest.raises(RuntimeError, match="fell back to the reference"):
        bench_topk.main(["--smoke", "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())


def test_no_fallback_guard():
    with _common.no_fallback(["nm_mask"]):
        dispatch.note_fallback("unstructured_mask", "another op does not count")
    with pytest.raises(RuntimeError, match="nm_mask"), _common.no_fallback(["nm_mask"]):
        dispatch.note_fallback("nm_mask", "test")
