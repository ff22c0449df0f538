"""The tensor-core decode kernel (2 <= M <= 16): its ``prmt`` selector table against the 2:4 format, and the
kernel (through the interpreter on CPU) against a float32 dense product on odd shapes, K tails, rows past N,
split-K and empty splits."""

from __future__ import annotations

import random

import pytest
import torch
import triton

from helpers.sparse24_cases import DEVICE, TOL, expected, make_case, unaligned_views
from polysparse.kernels import sparse24_decode_mma as dm
from polysparse.kernels import sparse24_matmul as sm
from polysparse.kernels import sparse24_splitk as splitk

VALID_NIBBLES = [p0 | p1 << 2 for p1 in range(4) for p0 in range(p1)]  # p0 < p1: what the compressor writes


def _columns(pair_word: int, nibble: int) -> list[int]:
    """The dense 16-bit columns of one group, from the format's definition."""
    v0, v1 = pair_word & 0xFFFF, pair_word >> 16
    p0, p1 = nibble & 3, nibble >> 2
    return [v0 if j == p0 else v1 if j == p1 else 0 for j in range(4)]


def test_prmt_selectors_expand_every_group():
    rng = random.Random(0)
    assert len(VALID_NIBBLES) == 6
    for nibble in VALID_NIBBLES:
        s_lo, s_hi = dm.prmt_selectors(nibble)
        for _ in range(50):
            word = rng.getrandbits(32)
            lo, hi = dm.prmt_reference(word, 0, s_lo), dm.prmt_reference(word, 0, s_hi)
            assert [lo & 0xFFFF, lo >> 16, hi & 0xFFFF, hi >> 16] == _columns(word, nibble), hex(nibble)
    # Zero padding (nibble 0, values 0) expands to zeros.
    s_lo, s_hi = dm.prmt_selectors(0)
    assert dm.prmt_reference(0x12345678, 0, s_lo) == 0 and dm.prmt_reference(0x12345678, 0, s_hi) == 0


def test_prmt_reference_follows_ptx():
    # Byte selectors 0..7 over {b, a}; bit 3 replicates the selected byte's sign bit.
    assert dm.prmt_reference(0x44332211, 0x88776655, 0x3210) == 0x44332211
    assert dm.prmt_reference(0x44332211, 0x88776655, 0x7654) == 0x88776655
    assert dm.prmt_reference(0x44332211, 0x88776655, 0x0404) == 0x11551155
    assert dm.prmt_reference(0x000080FF, 0, 0x4449) == 0x000000FF


def test_selector_table_tensor():
    table = dm.prmt_selector_table("cpu")
    assert table.dtype == torch.int64 and table.shape == (256, 2)
    for byte in range(256):
        for h in range(2):
            s_lo, s_hi = dm.prmt_selectors((byte >> (4 * h)) & 0xF)
            assert int(table[byte, h]) == s_lo | s_hi << 32
    assert dm.prmt_selector_table("cpu") is table  # one table per device


def test_byte_table_tensor():
    table = dm.prmt_byte_table("cpu")
    assert table.dtype == torch.int64 and table.shape == (256,)  # 2 KB
    for byte in range(256):
        entry = int(table[byte]) & (1 << 64) - 1
        for h in range(2):
            s_lo, s_hi = dm.prmt_selectors((byte >> (4 * h)) & 0xF)
            assert (entry >> (32 * h)) & 0xFFFFFFFF == s_lo | s_hi << 16
    assert dm.prmt_byte_table("cpu") is table  # one table per device
    # The bytes of two valid nibbles (p0 < p1) lie in 6 of the table's 16 lines of 128 bytes.
    valid = [n for n in range(16) if (n & 3) < (n >> 2)]
    assert len({(lo | hi << 4) * 8 // 128 for lo in valid for hi in valid}) == 6


def _run(m, k, n, dtype, bias, split_k, block_n, block_k):
    x, values, meta, b, dense = make_case((m,), k, n, dtype, bias)
    out = torch.full((m, n), float("nan"), dtype=dtype, device=DEVICE)
    config = triton.Config({"BLOCK_M": 16, "BLOCK_N": block_n, "BLOCK_K": block_k}, num_warps=1, num_stages=1)
    sm._sparse24_decode_triton(x, values, meta, b, out, split_k=split_k, config=config)
    torch.testing.assert_close(out, expected(x, dense, b), **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "m,k,n,split_k,block_n,block_k",
    [
        (2, 64, 64, 1, 32, 128),  # one tile, partly past K (K < BLOCK_K)
        (3, 192, 192, 2, 128, 128),  # a K tail in the second split; rows past N (192 % 128)
        (16, 640, 64, 4, 64, 128),  # Gemma 3's K: five tiles over four splits; 16 rows (no padding)
        (4, 640, 128, 1, 128, 64),  # the GPU tile (128 x 64), ten K tiles
        (5, 960, 128, 4, 32, 256),  # K tail (960 % 256) and an empty split (4 tiles, 4 splits)
        (9, 256, 320, 16, 64, 128),  # more splits than tiles: the empty ones write zero partials
    ],
)
@pytest.mark.parametrize("bias", [False, True])
def test_decode_kernel_matches_dense(m, k, n, split_k, block_n, block_k, dtype, bias):
    _run(m, k, n, dtype, bias, split_k, block_n, block_k)


@pytest.mark.parametrize("pipelined", [True, False])
def test_both_table_paths_match_dense(monkeypatch, pipelined):
    # The selector table is a pipelined tl.load (triton < 3.9) or an inline ld.global.ca (3.9): the same
    # words either way (under the interpreter both are a load of the same table).
    monkeypatch.setattr(dm, "TABLE_PIPELINED", pipelined)
    _run(7, 320, 192, torch.bfloat16, True, 2, 128, 64)


def test_decode_kernel_takes_unaligned_views_and_strided_x():
    x, values, meta, b, dense = make_case((4,), 128, 64, torch.float16, bias=True)
    odd_values, odd_meta = unaligned_views(values, meta)
    xt = x.t().contiguous().t()  # column-major x
    out = torch.empty(4, 64, dtype=torch.float16, device=DEVICE)
    sm._sparse24_decode_triton(xt, odd_values, odd_meta, b, out)
    torch.testing.assert_close(out, expected(x, dense, b), **TOL[torch.float16])


def test_decode_kernel_refuses_more_than_16_rows():
    x, values, meta, b, _ = make_case((17,), 64, 64, torch.float16, bias=False)
    target = torch.empty(17, 64, dtype=torch.float16, device=DEVICE)
    with pytest.raises(ValueError, match="at most 16 rows"):
        dm.sparse24_decode_mma_launch(x, values, meta, None, target, 1)


def test_configs_fit_the_kernel():
    for config in dm.CONFIGS + dm._INTERPRETER:
        kw = config.kwargs
        assert kw["BLOCK_M"] == 16 and kw["BLOCK_N"] >= 16 and kw["BLOCK_K"] % 64 == 0
    # Two warps: mma.sync on sm_90 too (four warps would give wgmma; see the module docstring).
    assert {c.num_warps for c in dm.CONFIGS} == {2}


def test_decode_split_heuristic(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(splitk, "num_sms", lambda device: 132)
    assert sm.decode_split_k(4096, 4096, cpu) == 8  # 32 row tiles x 8 splits = 256 programs
    assert sm.decode_split_k(14336, 4096, cpu) == 2  # 112 row tiles
    assert sm.decode_split_k(640, 640, cpu) == 1  # too short a K to split
    assert sm.decode_split_k(1024, 14336, cpu) == 16


# ----------------------------------------------------------------------------------------------------------
# GPU (run with POLYSPARSE_TEST_GPU=1): the prmt asm itself, which the interpreter replaces
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("m,k,n", [(2, 4096, 1024), (5, 960, 192), (16, 640, 2048), (9, 14336, 4096)])
def test_compiled_decode_kernel_gpu(m, k, n, dtype):
    from polysparse.kernels import dispatch

    if dispatch.interpreter_enabled():
        pytest.skip("set POLYSPARSE_TEST_GPU=1 to compile the kernels instead of interpreting them")
    x, values, meta, b, dense = make_case((m,), k, n, dtype, bias=True)
    out = torch.full((m, n), float("nan"), dtype=dtype, device=DEVICE)
    sm._sparse24_decode_triton(x, values, meta, b, out)  # autotuned configuration, default K-splits
    torch.testing.assert_close(out, expected(x, dense, b), **TOL[dtype])
