"""The 2:4 decode GEMV (M = 1) through the interpreter on CPU: the x pair table, the kernel against a float32
dense product (K tails, rows past N, split-K), unaligned operands, the split-K heuristic."""

from __future__ import annotations

import pytest
import torch
import triton

from helpers.sparse24_cases import DEVICE, TOL, expected, make_case, next_seed, unaligned_views
from polysparse.kernels import sparse24 as s24
from polysparse.kernels import sparse24_gemv as gemv
from polysparse.kernels import sparse24_splitk as splitk


@pytest.mark.parametrize("m,k", [(1, 64), (3, 192), (2, 960)])
def test_x_pair_table_matches_reference(m, k):
    gen = torch.Generator().manual_seed(next_seed())
    x = torch.randn(m, k, generator=gen).to(torch.bfloat16).to(DEVICE)
    table = gemv.x_pair_table(x)
    assert table.shape == (m, k // 4, 16) and table.dtype == torch.int64
    assert torch.equal(table, gemv.x_pair_table_reference(x))
    pairs = table.view(torch.float32).reshape(m, k // 4, 16, 2)
    # Nibble p0 | p1 << 2 = 0b1001 (p0 = 1, p1 = 2): columns 4g + 1 and 4g + 2.
    torch.testing.assert_close(pairs[:, :, 0b1001, 0], x.float()[:, 1::4], rtol=0, atol=0)
    torch.testing.assert_close(pairs[:, :, 0b1001, 1], x.float()[:, 2::4], rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "m,k,n,split_k,block_n",
    [
        (1, 64, 64, 1, 32),  # one tile, partly past K (K < 128 columns)
        (2, 192, 192, 2, 128),  # a K tail in the second split; rows past N (192 % 128)
        (1, 640, 64, 4, 64),  # Gemma 3's K: five whole tiles over four splits
        (3, 960, 128, 4, 32),  # K tail (960 % 128) and an empty split (8 tiles, 4 splits of 2)
        (1, 256, 320, 16, 128),  # more splits than tiles: the empty ones write zero partials
    ],
)
@pytest.mark.parametrize("bias", [False, True])
def test_gemv_matches_dense(m, k, n, split_k, block_n, dtype, bias):
    x, values, meta, b, dense = make_case((m,), k, n, dtype, bias)
    out = torch.full((m, n), float("nan"), dtype=dtype, device=DEVICE)
    config = triton.Config({"BLOCK_N": block_n, "BLOCK_K": 128}, num_warps=1, num_stages=1)
    gemv.sparse24_gemv_triton(x, values, meta, b, out, split_k=split_k, config=config)
    torch.testing.assert_close(out, expected(x, dense, b), **TOL[dtype])


def test_gemv_takes_unaligned_views():
    # Values and metadata as views starting 4 and 8 bytes into their storage: copied to aligned storage.
    x, values, meta, b, dense = make_case((1,), 128, 64, torch.float16, bias=True)
    odd_values, odd_meta = unaligned_views(values, meta)
    assert odd_values.storage_offset() == 2 and not s24.is_aligned_meta(odd_meta)
    out = torch.empty(1, 64, dtype=torch.float16, device=DEVICE)
    gemv.sparse24_gemv_triton(x, odd_values, odd_meta, b, out)
    torch.testing.assert_close(out, expected(x, dense, b), **TOL[torch.float16])


def test_gemv_split_heuristic(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(splitk, "num_sms", lambda device: 132)
    assert gemv.gemv_split_k(1, 4096, 4096, cpu) == 8  # 32 row tiles x 8 splits = 256 programs
    assert gemv.gemv_split_k(1, 14336, 4096, cpu) == 2  # 112 row tiles
    assert gemv.gemv_split_k(1, 640, 640, cpu) == 1  # too short a K to split
    assert gemv.gemv_split_k(2, 4096, 14336, cpu) == 4  # two x rows: twice the programs per split


@pytest.mark.parametrize("lanes_inner", [True, False])
def test_both_tile_orders_match_dense(monkeypatch, lanes_inner):
    # The tile's dimension order follows the installed triton (LANES_INNER); both orders compute the same.
    monkeypatch.setattr(gemv, "LANES_INNER", lanes_inner)
    x, values, meta, b, dense = make_case((1,), 960, 192, torch.float16, True)
    out = torch.full((1, 192), float("nan"), dtype=torch.float16, device=DEVICE)
    config = triton.Config({"BLOCK_N": 128, "BLOCK_K": 128}, num_warps=1, num_stages=1)
    gemv.sparse24_gemv_triton(x, values, meta, b, out, split_k=2, config=config)
    torch.testing.assert_close(out, expected(x, dense, b), **TOL[torch.float16])
