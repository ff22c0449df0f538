"""The compiled-code evidence (``polysparse.bench.kernels.compiled``) on a representative subset, no GPU.

Compiles in a subprocess with the interpreter off (``ptxas`` ships in the triton wheel) for sm_80 and sm_90,
and fails on what must not ship: a compile error, spills in a decode configuration, shared memory over the
target's limit; and checks the decode budgets for every kernel the op dispatches a decode batch (M = 1..16)
to, the GEMV (M = 1) and the tensor-core decode kernel (M = 2..16): <= 90 warp-instructions per KB of weight
on sm_90, no spills, 16-byte loads of values and metadata, and from the memory model (address traces laid
over the compiled layouts, ``polysparse.bench.kernels.memory_model``) <= 1.3 bytes requested from L2 per
byte of weight on sm_80 and sm_90 and L1 demand at full DRAM bandwidth <= 40% of H100's and H200's cycles.
The full set of configurations is the bench module's job (``python -P -m polysparse.bench.kernels.compiled``,
~20 min on two cores); the committed report for the installed triton must cover every configuration the
autotuners hold today, and every committed report must meet the decode budgets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polysparse.bench.kernels import compiled

COMMITTED = Path(__file__).resolve().parents[2] / compiled.RESULTS_DIR  # the repository's reports


def _nvidia_backend_available() -> bool:
    try:
        from triton.backends import backends

        return "nvidia" in backends
    except ImportError:
        return False


pytestmark = pytest.mark.skipif(not _nvidia_backend_available(), reason="Triton's NVIDIA backend is absent")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(out / "cache")  # compile for real, not from an earlier run's binaries
    # The decode kernels, where a spill or a scalar load costs most; the tl.dot tiles are compiled by the
    # bench module (`make`-free: the committed report is checked below).
    families = ",".join(family for _, family in compiled.DECODE_PATHS)
    cmd = [sys.executable, "-P", "-m", "polysparse.bench.kernels.compiled", "--subset", "ci",
           "--family", families, "--out", str(out), "--name", "decode"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    path = out / "decode.json"
    if not path.exists():
        pytest.fail(f"the compile report was not written:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(path.read_text())


def test_no_compile_errors_spills_or_shared_memory_overflow(report):
    assert report["problems"] == []
    assert {r["arch"] for r in report["results"]} == {80, 90}


def test_decode_paths_name_the_dispatch():
    from polysparse.kernels import sparse24_matmul as sm

    # DECODE_PATHS (what the report and the checks below cover) is the op's dispatch for M = 1..16.
    assert sm.GEMV_MAX_M == 1 and sm.DECODE_MAX_M == 16
    assert [m for m, _ in compiled.DECODE_PATHS] == ["1", f"{sm.GEMV_MAX_M + 1}-{sm.DECODE_MAX_M}"]


@pytest.mark.parametrize("m,family", compiled.DECODE_PATHS)
def test_every_decode_batch_size_meets_every_budget(report, m, family):
    rows = [r for r in report["results"] if r["family"] == family]
    assert {r["arch"] for r in rows} == {80, 90}
    for r in rows:
        assert r["spill_store_bytes"] == 0 and r["spill_load_bytes"] == 0, r
        assert r["shared_bytes"] <= r["shared_limit"], r
        assert r["loads_b16"] == 0, r  # no value or metadata word loaded 16 bits at a time
        # GEMV: eight 16-byte value loads and one metadata load per thread and step; the decode kernel stages
        # values, metadata and x with 16-byte cp.async.
        assert r["loads_16B"] >= 9, r
        if r["arch"] == 90:
            assert r["warp_instructions_per_kb"] <= compiled.ISSUE_GOAL_PER_KB, r
        memory = r["memory"]
        assert memory["ptx_matches"] and not memory["notes"], memory  # every loop load modeled
        assert memory["l2_bytes_per_weight_byte"] <= compiled.L2_GOAL_PER_WEIGHT_BYTE, memory
        gpus = {"H100", "H200"} if r["arch"] == 90 else {"A100"}
        assert set(r["limits"]) == gpus
        for gpu in gpus & {"H100", "H200"}:
            assert r["limits"][gpu]["shares"]["L1"] <= compiled.L1_GOAL_SHARE, (gpu, r["limits"])
    (line,) = [line for line in compiled.decode_by_m_lines(rows) if line.startswith(f"| {m} |")]
    assert line.endswith("| yes |"), line


def test_problems_flags_what_must_not_ship():
    base = {"family": "f", "label": "l", "arch": 80, "regime": "decode", "spill_store_bytes": 0,
            "spill_load_bytes": 0, "shared_bytes": 1000, "shared_limit": 166_912}  # fmt: skip
    assert compiled.problems([base]) == []
    assert compiled.problems([base | {"spill_store_bytes": 8}])
    assert not compiled.problems([base | {"spill_store_bytes": 8, "regime": "prefill"}])
    assert compiled.problems([base | {"shared_bytes": 172_032}])
    assert compiled.problems([{"family": "f", "label": "l", "arch": 90, "regime": "other", "error": "x"}])


def test_peak_issue_arithmetic():
    h200 = next(g for g in compiled.GPUS if g.name == "H200")
    assert h200.peak_issue == pytest.approx(132 * 4 * 1.98e9)
    # 90 warp-instructions per KB at 4.8 TB/s: ~40% of an H200's issue (the issue's budget).
    assert h200.issue_share(90) == pytest.approx(0.404, abs=0.002)


def test_sass_loop_detection():
    sass = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   LDG.E.128 R4, desc[UR4][R2.64] ;
        /*0020*/                   FFMA R8, R4, R5, R8 ;
        /*0030*/               @P0 BRA 0x10 ;
        /*0040*/                   EXIT ;
    """
    loop = compiled.sass_main_loop(sass)
    assert [compiled._opcode(t) for t in loop] == ["LDG", "FFMA", "BRA"]


@pytest.mark.parametrize("path", sorted(COMMITTED.glob("compiled-triton-*.json")), ids=lambda p: p.stem)
def test_committed_reports_meet_every_decode_budget(path):
    # Every committed report (triton 3.9 here, 3.6 from its own environment, README.md): each decode batch
    # size's kernel within all budgets, on sm_80 and sm_90, over every variant compiled.
    data = json.loads(path.read_text())
    assert data["problems"] == []
    for m, family in compiled.DECODE_PATHS:
        rows = [r for r in data["results"] if r["family"] == family]
        assert {r["arch"] for r in rows} == {80, 90} and all(r.get("memory") for r in rows), family
        (line,) = [line for line in compiled.decode_by_m_lines(rows) if line.startswith(f"| {m} |")]
        assert line.endswith("| yes |"), line


def test_committed_report_covers_every_configuration():
    import triton

    path = COMMITTED / f"compiled-triton-{triton.__version__}.json"
    if not path.exists():
        pytest.skip(f"no committed report for triton {triton.__version__} ({path.name})")
    data = json.loads(Path(path).read_text())
    done = {(r["family"], r["label"], r["arch"]) for r in data["results"]}
    wanted = {(la.family, la.label, arch) for la in compiled.launches("all") for arch in (80, 90)}
    missing = sorted(wanted - done)
    assert not missing, f"re-run python -P -m polysparse.bench.kernels.compiled: {missing[:5]}"
    assert data["problems"] == []
