"""The memory model of the compiled-code evidence (``polysparse.bench.kernels.memory_model``), validated on
two tiny kernels of its own whose answer is known: a coalesced copy (each lane 16 contiguous bytes, a warp 512
bytes: 4 lines and 16 sectors per request, 4 L1 cycles) and a copy with one row per lane (32 rows 4 KB
apart, 16 bytes each: 32 lines and 32 sectors per request, 8 L1 cycles). Each is compiled for sm_80 and
sm_90 (TTGIR layout, PTX loop) and traced by Triton's interpreter, in child processes (a compile needs the
interpreter off, a trace needs it on). Then the layout arithmetic and the limits per GPU on their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import triton
import triton.language as tl

from polysparse.bench.kernels import address_trace, memory_model
from polysparse.bench.kernels.launch_configs import GPUS

THIS = str(Path(__file__).resolve())
ROWS_APART = 1024  # int32 elements between the rows of the row-per-lane copy (4 KB)


@triton.jit
def coalesced_copy_kernel(src, dst, tiles, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    for t in range(tiles):
        tl.store(dst + t * BLOCK + offs, tl.load(src + t * BLOCK + offs))


@triton.jit
def row_per_lane_kernel(src, dst, stride, tiles, ROWS: tl.constexpr, COLS: tl.constexpr):
    rows = tl.arange(0, ROWS)[:, None]
    cols = tl.arange(0, COLS)[None, :]
    for t in range(tiles):
        v = tl.load(src + rows * stride + t * COLS + cols)
        tl.store(dst + rows * COLS + cols, v)


def launch_coalesced():
    import torch

    src = torch.arange(4 * 128, dtype=torch.int32)
    coalesced_copy_kernel[(1,)](src, torch.empty_like(src), 4, BLOCK=128, num_warps=1)


def launch_row_per_lane():
    import torch

    src = torch.arange(32 * ROWS_APART, dtype=torch.int32)
    row_per_lane_kernel[(1,)](src, torch.empty(32 * 4, dtype=torch.int32), ROWS_APART, 4, ROWS=32, COLS=4,
                              num_warps=1)  # fmt: skip


CASES = {
    "coalesced": dict(
        fn="coalesced_copy_kernel", types={"src": "*i32", "dst": "*i32"}, constexprs={"BLOCK": 128},
        divisible=("src", "dst"), setup="launch_coalesced",
    ),
    "row_per_lane": dict(
        fn="row_per_lane_kernel", types={"src": "*i32", "dst": "*i32"}, constexprs={"ROWS": 32, "COLS": 4},
        divisible=("src", "dst", "stride"), setup="launch_row_per_lane",
    ),
}  # fmt: skip

_COMPILE = """
import json, sys
from polysparse.bench.kernels.compiled_code import _prepare_environment, compile_launch
from polysparse.bench.kernels.launch_configs import Launch
_prepare_environment()
cases, path = json.loads(sys.argv[1]), sys.argv[2]
out = {}
for name, c in cases.items():
    launch = Launch(family="test/" + name, label=name, kernel=path + ":" + c["fn"], types=c["types"],
                    constexprs=c["constexprs"], divisible=tuple(c["divisible"]), num_warps=1, num_stages=1,
                    weight_args=("src",))
    for arch in (80, 90):
        row = compile_launch(launch, arch)
        out[f"{name}/{arch}"] = {
            "ttgir": row["_ttgir"], "ptx_loop": row["_ptx_loop"], "name": row["_kernel_name"]
        }
print(json.dumps(out))
"""


def _nvidia_backend_available() -> bool:
    try:
        from triton.backends import backends

        return "nvidia" in backends
    except ImportError:
        return False


@pytest.fixture(scope="module")
def modeled():
    if not _nvidia_backend_available():
        pytest.skip("Triton's NVIDIA backend is absent")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    command = [sys.executable, "-P", "-c", _COMPILE, json.dumps(CASES), THIS]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    compiled = json.loads(proc.stdout.strip().splitlines()[-1])
    traces = address_trace.run({name: {"setup": f"{THIS}:{c['setup']}"} for name, c in CASES.items()})
    out = {}
    for key, code in compiled.items():
        name = key.split("/")[0]
        trace = traces[name][code["name"]]
        out[key] = memory_model.analyse(code["ttgir"], code["ptx_loop"], trace, 1, ("src",))
    return out


@pytest.mark.parametrize("arch", [80, 90])
def test_coalesced_16_byte_copy_is_4_lines_per_request(modeled, arch):
    m = modeled[f"coalesced/{arch}"]
    assert m["ptx_matches"] and not m["notes"], m
    (load,) = m["sites"]
    assert load["path"] == "ld.global" and load["width"] == 16
    assert load["requests_per_iteration"] == 1 and load["bytes_per_request"] == 512
    assert load["lines_per_request"] == 4 and load["sectors_per_request"] == 16
    assert load["l1_cycles_per_iteration"] == 4  # the data stage: 512 B at 128 B per cycle
    assert load["l2_bytes_per_iteration"] == 512
    assert m["l1_cycles_per_kb"] == 8 and m["l2_bytes_per_weight_byte"] == 1.0


@pytest.mark.parametrize("arch", [80, 90])
def test_one_row_per_lane_is_32_lines_per_request(modeled, arch):
    m = modeled[f"row_per_lane/{arch}"]
    assert m["ptx_matches"] and not m["notes"], m
    (load,) = m["sites"]
    assert load["path"] == "ld.global" and load["width"] == 16
    assert load["requests_per_iteration"] == 1 and load["bytes_per_request"] == 512
    assert load["lines_per_request"] == 32 and load["sectors_per_request"] == 32
    assert load["l1_cycles_per_iteration"] == 8  # the tag stage: 32 lines at 4 per cycle
    # Each 32-byte sector is half used per iteration, the other half hits L1 the next: 512 B from L2.
    assert load["l2_bytes_per_iteration"] == 512
    assert m["l1_cycles_per_kb"] == 16


def test_blocked_layout_as_linear_bases():
    # 4 x 64 tensor, 4 contiguous elements per thread, 16 lanes along columns, 2 along rows, 2 warps.
    layout = memory_model.blocked_layout([1, 4], [2, 16], [2, 1], [1, 0], [4, 64])
    assert layout.registers == 4 and layout.contiguous_registers() == 4
    assert layout.coordinates(0, 0).tolist() == [[0, 0], [0, 1], [0, 2], [0, 3]]
    assert layout.coordinates(0, 1)[0].tolist() == [0, 4]  # the next lane: the next 4 columns
    assert layout.coordinates(0, 16)[0].tolist() == [1, 0]  # lane 16: the next row
    assert layout.coordinates(1, 0)[0].tolist() == [2, 0]  # warp 1: rows 2 and 3
    # The same layout as Triton writes it in TTGIR.
    text = (
        "#ttg.blocked<{sizePerThread = [1, 4], threadsPerWarp = [2, 16], warpsPerCTA = [2, 1], "
        "order = [1, 0]}>"
    )
    assert memory_model.layout_for(text, [4, 64]) == layout


def test_request_arithmetic():
    layout = memory_model.blocked_layout([4], [32], [1], [0], [128])
    addresses = np.arange(128, dtype=np.int64) * 4
    mask = np.ones(128, dtype=bool)
    (req,) = memory_model.requests(addresses, mask, layout, 4, 16, 1)
    assert (req.lines, req.sectors, req.unique_bytes, req.l1_cycles) == (4, 16, 512, 4)
    mask[64:] = False  # half the lanes off: two lines, 2 cycles
    (half,) = memory_model.requests(addresses, mask, layout, 4, 16, 1)
    assert (half.lines, half.unique_bytes, half.l1_cycles) == (2, 256, 2)
    (none,) = memory_model.requests(addresses, np.zeros(128, dtype=bool), layout, 4, 16, 1)
    assert none.l1_cycles == 0 and none.sectors == 0


def test_limits_name_what_binds():
    h200 = next(g for g in GPUS if g.name == "H200")
    available = memory_model.l1_cycles_per_kb_available(h200)
    assert available == pytest.approx(132 * 1.98e9 / (4.8e12 / 1024))  # ~55.8 L1 cycles per KB
    memory = {"l1_cycles_per_kb": available * 0.5, "l2_bytes_per_weight_byte": 1.0, "shared_cycles_per_kb": 0}
    found = memory_model.limits(h200, 90, memory)
    assert found["shares"]["L1"] == 0.5 and found["dram_share_reachable"] == 1.0
    slow = memory_model.limits(h200, 300, memory)  # 300 warp-instructions per KB: issue binds
    assert slow["binds"] == "issue" and slow["dram_share_reachable"] == pytest.approx(
        1 / h200.issue_share(300), abs=1e-3
    )


def test_ptx_loop_reading():
    loop = """
    .loc 1 10 4
    ld.global.v4.b32 { %r1, %r2, %r3, %r4 }, [ %rd1 + 0 ];
    @%p1 cp.async.cg.shared.global [ %r5 + 0 ], [ %rd2 + 0 ], 0x10, %r6;
    cp.async.ca.shared.global [ %r7 + 0 ], [ %rd3 + 0 ], 8, %r8;
    ld.global.ca.b64 %rd9, [address];
    ldmatrix.sync.aligned.m8n8.x4.shared.b16 { %r1, %r2, %r3, %r4 }, [ %r9 + 0 ];
    st.shared.v4.b32 [ %r10 + 0 ], { %r1, %r2, %r3, %r4 };
    """
    found, shared = memory_model.ptx_loop_accesses(loop)
    assert found == {
        ("ld.global", 16): 1,
        ("cp.async.cg", 16): 1,
        ("cp.async.ca", 8): 1,
        ("ld.global.ca", 8): 1,
    }
    assert shared == {"bytes": 512 + 512, "instructions": 2}
