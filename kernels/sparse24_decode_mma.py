"""2:4 decode on tensor cores: ``y = x @ W^T (+ bias)`` for M <= 16, the weight as the ``mma`` A operand.

A ``tl.dot`` formulation with the expanded weight as the B operand (``x @ W^T``, what
:mod:`polysparse.kernels.sparse24_matmul` did before) makes Triton store the dense tile to shared memory and
read it back, and its expansion (about eight compares and selects per group of four) cost 183-316
warp-instructions per KB of weight on sm_90 with ``BLOCK_M = 16`` (the triton 3.9 report of commit
6ce5bb9), up to 1.4x what an H200 can issue at full bandwidth. Here the product is turned around,
``acc[BLOCK_N, 16] = W_tile @ x^T`` (x padded to 16 rows), so the expanded tile is the A operand, which
``mma.sync`` takes from registers; and each group of four is expanded with two byte permutes:

* a group's kept pair ``(v0, v1)`` is one 32-bit word ``P`` (bytes ``v0.lo v0.hi v1.lo v1.hi``);
* its dense columns ``(c0, c1)`` and ``(c2, c3)`` are ``prmt(P, 0, s_lo)`` and ``prmt(P, 0, s_hi)``, where
  the selectors pick ``v0``'s bytes (0, 1), ``v1``'s (2, 3) or zero bytes (4) per column;
* the selectors depend only on the group's 4-bit nibble: a table indexed by a whole metadata byte
  (:func:`prmt_byte_table`, 256 x 8 bytes: two groups' 32-bit selector words) gives those of two groups in
  one 8-byte load, so a group costs half a table load, a shift and two ``prmt`` instead of a dozen compares
  and selects. The 16-byte entries of the ``tl.dot`` kernel's table (:func:`prmt_selector_table`) went
  through ``cp.async.cg``, which bypasses L1: 16 KB requested from L2 per 9 KB of weight, 3.1 bytes from L2
  per byte of weight in all (the memory model, ``bench/results/kernels/compiled-triton-*.md``). The
  8-byte entries here are read through L1 (``cp.async.ca`` in Triton's pipeline with triton 3.6, an inline
  ``ld.global.ca`` outside it with 3.9: :data:`TABLE_PIPELINED`): 1.2 bytes from L2 per byte of weight,
  and the 36 bytes of valid nibble pairs lie in 6 lines, so a warp's 32 gathers cost 2 L1 cycles.

``prmt`` is PTX (``tl.inline_asm_elementwise``); under Triton's CPU interpreter, which cannot run PTX, the
same selectors drive :func:`_prmt_by_shifts`, plain integer ops equal to ``prmt`` for every selector the
table holds (tested against a byte-exact emulation of ``prmt``), so the interpreter tests run the kernel's
loads, table and indexing, and only the two ``prmt`` lines are left to the GPU tests.

The compiled code (``python -P -m polysparse.bench.kernels.compiled``, ``bench/results/kernels/``) is what the
choices here rest on: with two warps per program Triton keeps ``mma.sync`` (four warps on sm_90 give
``wgmma``, whose A operand it routes through shared memory); triton 3.6 (the GPU image) then keeps the
expanded tile in registers, 80-84 warp-instructions per KB on sm_90; triton 3.9 still stages it through
shared memory (``st.shared`` + ``ldmatrix``), 88-89. The x tile (16 rows) is loaded once per K step and
shared by the tile's 128 weight rows.

Values are read as int32 pairs and metadata as int32 words (eight groups each), both 16-byte vectors;
``K`` is a multiple of 64 (the wrapper's contract); columns past ``K`` load as zeros, rows past ``N`` read
row ``N - 1`` (no mask on the weight loads) and are not stored.
Split-K writes float32 partials that the caller reduces (:mod:`polysparse.kernels.sparse24_matmul`, which
uses the same expansion for M > 16).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from polysparse.kernels.dispatch import interpreter_enabled, launcher
from polysparse.kernels.sparse24 import kernel_operands

# ----------------------------------------------------------------------------------------------------------
# The selector table and its reference
# ----------------------------------------------------------------------------------------------------------

_ZERO_BYTE = 4  # prmt(P, 0, s): byte indices 4..7 select the second source, here the constant 0


def prmt_selectors(nibble: int) -> tuple[int, int]:
    """``(s_lo, s_hi)`` for a group whose kept values sit in columns ``nibble & 3`` and ``nibble >> 2``.

    Column ``j`` is ``v0`` (bytes 0, 1 of the pair word) where ``p0 == j``, ``v1`` (bytes 2, 3) where
    ``p1 == j`` and zero otherwise; ``s_lo`` builds columns 0 and 1, ``s_hi`` columns 2 and 3. A nibble with
    ``p0 == p1`` (never written by the compressor; zero padding) gives zeros in that column.
    """
    p0, p1 = nibble & 3, nibble >> 2
    nibbles = []
    for j in range(4):
        if j == p0 and j != p1:
            nibbles += [0, 1]
        elif j == p1 and j != p0:
            nibbles += [2, 3]
        else:
            nibbles += [_ZERO_BYTE, _ZERO_BYTE]
    s = sum(b << (4 * i) for i, b in enumerate(nibbles))
    return s & 0xFFFF, s >> 16


def prmt_reference(a: int, b: int, selector: int) -> int:
    """PTX ``prmt.b32 d, a, b, c`` (default mode): byte ``i`` of ``d`` is byte ``c[4i+2:4i]`` of ``{b, a}``,
    replicated sign bit when ``c[4i+3]`` is set."""
    source = (b & 0xFFFFFFFF) << 32 | (a & 0xFFFFFFFF)
    out = 0
    for i in range(4):
        sel = (selector >> (4 * i)) & 0xF
        byte = (source >> (8 * (sel & 7))) & 0xFF
        if sel & 8:
            byte = 0xFF if byte & 0x80 else 0
        out |= byte << (8 * i)
    return out


def prmt_selector_table(device: torch.device | str = "cpu") -> torch.Tensor:
    """``(256, 2)`` int64, indexed by a metadata byte (two groups): entry ``[byte, h]`` holds ``s_lo | s_hi <<
    32`` (:func:`prmt_selectors`) of group ``h``'s nibble ``(byte >> 4h) & 15``. 4 KB, read through L1."""
    return _cached_table(torch.device(device))


@functools.cache
def _cached_table(device: torch.device) -> torch.Tensor:
    per_nibble = [lo | hi << 32 for lo, hi in map(prmt_selectors, range(16))]
    rows = [[per_nibble[byte & 0xF], per_nibble[byte >> 4]] for byte in range(256)]
    return torch.tensor(rows, dtype=torch.int64, device=device)


def prmt_byte_table(device: torch.device | str = "cpu") -> torch.Tensor:
    """``(256,)`` int64, indexed by a metadata byte (two groups): the 32-bit word ``s_lo | s_hi << 16``
    (:func:`prmt_selectors`) of group ``h``'s nibble ``(byte >> 4h) & 15`` in bits ``32h .. 32h + 31``. 2 KB;
    the 36 bytes of valid nibble pairs lie in 6 of its 16 lines. The decode kernel's table."""
    return _cached_byte_table(torch.device(device))


@functools.cache
def _cached_byte_table(device: torch.device) -> torch.Tensor:
    words = [lo | hi << 16 for lo, hi in map(prmt_selectors, range(16))]
    entries = [words[byte & 0xF] | words[byte >> 4] << 32 for byte in range(256)]
    # int64 holds the bit pattern (entries with the top bit set are negative).
    return torch.tensor(
        [e - (1 << 64) if e >= 1 << 63 else e for e in entries], dtype=torch.int64, device=device
    )


# ----------------------------------------------------------------------------------------------------------
# Triton kernel
# ----------------------------------------------------------------------------------------------------------


@triton.jit
def _prmt_by_shifts(pair, selector):
    """``prmt(pair, 0, selector)`` for selectors whose byte pairs are (0, 1), (2, 3) or (4, 4) (the table's):
    each 16-bit half is the pair's half at byte ``selector`` nibble or zero. The interpreter's ``prmt``."""
    b0 = selector & 0xF
    b1 = (selector >> 8) & 0xF
    half0 = tl.where(b0 < 4, (pair >> (b0 & 3) * 8) & 0xFFFF, 0)
    half1 = tl.where(b1 < 4, (pair >> (b1 & 3) * 8) & 0xFFFF, 0)
    return half0 | (half1 << 16)


@triton.jit
def _halves(word, BF16: tl.constexpr):
    """The two 16-bit halves of int32 ``word`` as fp16 or bf16 (low half first)."""
    low = (word & 0xFFFF).to(tl.int16)
    high = (word >> 16).to(tl.int16)
    if BF16:
        low_h = low.to(tl.bfloat16, bitcast=True)
        high_h = high.to(tl.bfloat16, bitcast=True)
    else:
        low_h = low.to(tl.float16, bitcast=True)
        high_h = high.to(tl.float16, bitcast=True)
    return low_h, high_h


# Columns (c0, c1) = prmt(P, 0, s_lo) and (c2, c3) = prmt(P, 0, s_hi); $4 = P, $5 = s_lo | s_hi << 32.
_PRMT_PTX = tl.constexpr("""{
    .reg .b32 lo, hi, w;
    mov.b64 {lo, hi}, $5;
    prmt.b32 w, $4, 0, lo;
    mov.b32 {$0, $1}, w;
    prmt.b32 w, $4, 0, hi;
    mov.b32 {$2, $3}, w;
    }""")


# The same from a 32-bit selector word s_lo | s_hi << 16 (prmt reads the low 16 bits of its selector).
_PRMT_WORD_PTX = tl.constexpr("""{
    .reg .b32 w, hi;
    prmt.b32 w, $4, 0, $5;
    mov.b32 {$0, $1}, w;
    shr.b32 hi, $5, 16;
    prmt.b32 w, $4, 0, hi;
    mov.b32 {$2, $3}, w;
    }""")


@triton.jit
def _prmt_word_asm(pair, selector, BF16: tl.constexpr):
    """The four 16-bit columns of each group from its pair word and 32-bit selector word."""
    if BF16:
        d0, d1, d2, d3 = tl.inline_asm_elementwise(
            _PRMT_WORD_PTX,
            "=h,=h,=h,=h,r,r",
            [pair, selector],
            dtype=(tl.bfloat16,) * 4,
            is_pure=True,
            pack=1,
        )
    else:
        d0, d1, d2, d3 = tl.inline_asm_elementwise(
            _PRMT_WORD_PTX, "=h,=h,=h,=h,r,r", [pair, selector], dtype=(tl.float16,) * 4, is_pure=True, pack=1
        )
    return d0, d1, d2, d3


@triton.jit
def _prmt_asm(pair, selectors, BF16: tl.constexpr):
    """The four 16-bit columns of each group, from its pair word and selectors (two ``prmt``)."""
    if BF16:
        d0, d1, d2, d3 = tl.inline_asm_elementwise(
            _PRMT_PTX, "=h,=h,=h,=h,r,l", [pair, selectors], dtype=(tl.bfloat16,) * 4, is_pure=True, pack=1
        )
    else:
        d0, d1, d2, d3 = tl.inline_asm_elementwise(
            _PRMT_PTX, "=h,=h,=h,=h,r,l", [pair, selectors], dtype=(tl.float16,) * 4, is_pure=True, pack=1
        )
    return d0, d1, d2, d3


@triton.jit
def _expand_24_prmt(pair, words, table_ptr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BF16: tl.constexpr,
                    INTERPRET: tl.constexpr):  # fmt: skip
    """Pairs ``[BLOCK_N, BLOCK_K/4]``, words ``[BLOCK_N, BLOCK_K/32]`` (int32) -> ``[BLOCK_N, BLOCK_K]``."""
    G2: tl.constexpr = BLOCK_K // 8
    shifts = tl.arange(0, 4) * 8
    byte = tl.reshape((words[:, :, None] >> shifts[None, None, :]) & 0xFF, (BLOCK_N, G2))
    selectors = tl.load(table_ptr + byte[:, :, None] * 2 + tl.arange(0, 2)[None, None, :])  # [BN, G2, 2]
    pair = tl.reshape(pair, (BLOCK_N, G2, 2))
    if INTERPRET:
        d0, d1 = _halves(_prmt_by_shifts(pair, (selectors & 0xFFFF).to(tl.int32)), BF16)
        d2, d3 = _halves(_prmt_by_shifts(pair, (selectors >> 32).to(tl.int32)), BF16)
    else:
        d0, d1, d2, d3 = _prmt_asm(pair, selectors, BF16)
    # join(join(d0, d2), join(d1, d3))[n, g2, h, i, j] = d_{2i+j} of group 2 g2 + h, i.e. column
    # 8 g2 + 4h + 2i + j once flattened.
    return tl.reshape(tl.join(tl.join(d0, d2), tl.join(d1, d3)), (BLOCK_N, BLOCK_K))


# The selector words of two groups from the byte table, loaded through L1 (ld.global.ca) outside Triton's
# software pipeline: as a tl.load it would be staged through shared memory with cp.async every tile (16 KB
# written and read back per 9 KB of weight), and with 16-byte entries bypass L1 (cp.async.cg) and come from
# L2. The address is base + 8 byte (mad.wide; ptxas makes it LEA + LEA.HI.X).
_LOAD_CA_PTX = tl.constexpr("""{
    .reg .b64 address;
    mad.wide.u32 address, $1, 8, $2;
    ld.global.ca.b64 $0, [address];
    }""")


@triton.jit
def _table_entries(table_ptr, index, INTERPRET: tl.constexpr):
    """int64 ``table_ptr[index]`` by ``ld.global.ca`` (a ``tl.load`` under the interpreter). One source line
    for both, so that the memory model's address trace (interpreter) and the compiled load share it."""
    return tl.load(table_ptr + index) if INTERPRET else tl.inline_asm_elementwise(_LOAD_CA_PTX, "=l,r,l", [index, tl.full(index.shape, 0, tl.int64) + table_ptr.to(tl.int64, bitcast=True)], dtype=tl.int64, is_pure=True, pack=1)  # noqa: E501  # fmt: skip


@triton.jit
def _expand_24_bytes(pair, words, table_ptr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                     BF16: tl.constexpr, INTERPRET: tl.constexpr, TABLE_PIPELINED: tl.constexpr):  # fmt: skip
    """Pairs ``[BLOCK_N, BLOCK_K/4]``, words ``[BLOCK_N, BLOCK_K/32]`` (int32) -> ``[BLOCK_N, BLOCK_K]``, the
    selector words of each two groups gathered from :func:`prmt_byte_table` by their metadata byte."""
    G2: tl.constexpr = BLOCK_K // 8
    shifts = tl.arange(0, 4) * 8
    byte = tl.reshape((words[:, :, None] >> shifts[None, None, :]) & 0xFF, (BLOCK_N, G2))
    if TABLE_PIPELINED:  # a tl.load of the table read as int32: word h of the byte's 8-byte entry
        words_ptr = table_ptr.to(tl.pointer_type(tl.int32), bitcast=True)
        selector = tl.load(words_ptr + byte[:, :, None] * 2 + tl.arange(0, 2)[None, None, :])  # [BN, G2, 2]
    else:
        entry = _table_entries(table_ptr, byte, INTERPRET)  # [BN, G2]: group 2 g2 + h's word in bits 32 h
        selector = (entry[:, :, None] >> (tl.arange(0, 2) * 32)[None, None, :]).to(tl.int32)  # [BN, G2, 2]
    pair = tl.reshape(pair, (BLOCK_N, G2, 2))
    if INTERPRET:
        d0, d1 = _halves(_prmt_by_shifts(pair, selector & 0xFFFF), BF16)
        d2, d3 = _halves(_prmt_by_shifts(pair, (selector >> 16) & 0xFFFF), BF16)
    else:
        d0, d1, d2, d3 = _prmt_word_asm(pair, selector, BF16)
    # join(join(d0, d2), join(d1, d3))[n, g2, h, i, j] = d_{2i+j} of group 2 g2 + h: column
    # 8 g2 + 4h + 2i + j once flattened.
    return tl.reshape(tl.join(tl.join(d0, d2), tl.join(d1, d3)), (BLOCK_N, BLOCK_K))


@triton.jit
def _decode_tile(
    acc,
    x_rows,
    p_rows,
    e_rows,
    table_ptr,
    m_mask,
    kt,
    K,
    BLOCK_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BF16: tl.constexpr,
    INTERPRET: tl.constexpr,
    MASK_K: tl.constexpr,
    TABLE_PIPELINED: tl.constexpr,
):
    """``acc[n, m] += W[n, tile kt] @ x[m, tile kt]``; ``MASK_K``: the tile reaches past K (zeros there)."""
    k_cols = kt * BLOCK_K + tl.arange(0, BLOCK_K)
    g = kt * (BLOCK_K // 4) + tl.arange(0, BLOCK_K // 4)
    w_idx = kt * (BLOCK_K // 32) + tl.arange(0, BLOCK_K // 32)
    if MASK_K:
        x = tl.load(x_rows + k_cols[None, :], mask=m_mask[:, None] & (k_cols < K)[None, :], other=0.0)
        pair = tl.load(p_rows + g[None, :], mask=(g < K // 4)[None, :], other=0)
        # Whole 16-byte units of the padded metadata row (format version 2): a mask constant per vector.
        words = tl.load(e_rows + w_idx[None, :], mask=(w_idx < tl.cdiv(K, 128) * 4)[None, :], other=0)
    else:
        x = tl.load(x_rows + k_cols[None, :], mask=m_mask[:, None], other=0.0)
        pair = tl.load(p_rows + g[None, :])
        words = tl.load(e_rows + w_idx[None, :])
    w = _expand_24_bytes(pair, words, table_ptr, BLOCK_N, BLOCK_K, BF16, INTERPRET, TABLE_PIPELINED)
    if INTERPRET:
        return acc + tl.dot(w.to(tl.float32), tl.trans(x).to(tl.float32), input_precision="ieee")
    return acc + tl.dot(w, tl.trans(x))


@triton.jit
def _sparse24_decode_mma_kernel(
    x_ptr,
    p_ptr,  # values as int32: one (v0, v1) pair per group
    meta_ptr,  # metadata as int32: eight groups per word, rows 16-byte aligned (format version 2)
    table_ptr,  # prmt_byte_table: (256,) int64
    bias_ptr,
    y_ptr,
    M,
    N,
    K,
    stride_xm,
    stride_pn,  # in int32 pairs
    stride_en16,  # metadata row stride in 16-byte units
    stride_ys,
    stride_ym,
    HAS_BIAS: tl.constexpr,
    SPLIT_K: tl.constexpr,
    BF16: tl.constexpr,
    INTERPRET: tl.constexpr,  # the CPU interpreter: no PTX, bf16 dot upcast to fp32
    BLOCK_M: tl.constexpr,  # 16: x rows padded to the smallest mma tile
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    EVEN_N: tl.constexpr,  # N % BLOCK_N == 0: no row masks
    EVEN_K: tl.constexpr,  # K % BLOCK_K == 0: no K masks
    TABLE_PIPELINED: tl.constexpr,  # the selector table through Triton's cp.async pipeline (see CONFIGS)
):
    """Program (row tile, k-split): ``acc[n, m] = sum_k W[n, k] x[m, k]`` over its K range."""
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask = offs_m < M
    n_mask = offs_n < N
    # Rows past N read row N - 1 (their sums are never stored): the loads need no row mask.
    rows64 = (offs_n if EVEN_N else tl.minimum(offs_n, N - 1)).to(tl.int64)
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm
    p_rows = p_ptr + rows64[:, None] * stride_pn
    e_rows = meta_ptr + rows64[:, None] * (stride_en16 * 4)

    k_tiles = tl.cdiv(K, BLOCK_K)
    tiles_per_split = tl.cdiv(k_tiles, SPLIT_K)
    k_first = pid_k * tiles_per_split
    k_last = min(k_first + tiles_per_split, k_tiles)
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    if EVEN_K:
        for kt in range(k_first, k_last):
            acc = _decode_tile(acc, x_rows, p_rows, e_rows, table_ptr, m_mask, kt, K, BLOCK_K, BLOCK_N, BF16,
                               INTERPRET, False, TABLE_PIPELINED)  # fmt: skip
    else:
        # Whole tiles unmasked; the last tile of the row, partly past K, masked on its own.
        for kt in range(k_first, min(k_last, k_tiles - 1)):
            acc = _decode_tile(acc, x_rows, p_rows, e_rows, table_ptr, m_mask, kt, K, BLOCK_K, BLOCK_N, BF16,
                               INTERPRET, False, TABLE_PIPELINED)  # fmt: skip
        if (k_first < k_tiles) & (k_last == k_tiles):  # this split holds the tail (empty splits do not)
            acc = _decode_tile(acc, x_rows, p_rows, e_rows, table_ptr, m_mask, k_tiles - 1, K, BLOCK_K,
                               BLOCK_N, BF16, INTERPRET, True, TABLE_PIPELINED)  # fmt: skip

    y_ptrs = y_ptr + pid_k * stride_ys + offs_m.to(tl.int64)[None, :] * stride_ym + offs_n[:, None]
    y_mask = m_mask[None, :] & n_mask[:, None]
    if SPLIT_K == 1:
        if HAS_BIAS:
            acc += tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[:, None]
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=y_mask)
    else:
        tl.store(y_ptrs, acc, mask=y_mask)


# ----------------------------------------------------------------------------------------------------------
# Configurations and host wrapper
# ----------------------------------------------------------------------------------------------------------


def _config(bn: int, bk: int, warps: int, stages: int) -> triton.Config:
    return triton.Config({"BLOCK_M": 16, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=warps, num_stages=stages)


# Two warps: mma.sync on every target (with four, Triton picks wgmma on sm_90 and stages the register A
# operand through shared memory: ~120-128 warp-instructions per KB in exploratory compiles).
# 128 x 64 tiles: 64-row tiles reload x's fragments per row tile (91-106 warp-instructions per KB in
# exploratory compiles), 128 x 128 tiles spilled on 3.9 and, with the byte table, read 1.34 B from L2 per
# B of weight on 3.6 (x grows with the tile); stages as TABLE_PIPELINED says.
TABLE_PIPELINED = tuple(int(v) for v in triton.__version__.split(".")[:2]) < (3, 9)
"""Whether the selector table is a ``tl.load`` that Triton's software pipeline stages (``cp.async.ca``, 8
bytes: through L1) or an inline ``ld.global.ca`` outside it. Triton 3.6 keeps the expanded tile in
registers for the ``mma`` only with the pipelined load (with the inline load it stages the tile through
shared memory: 131 warp-instructions per KB), and with 2 stages issues 84 per KB; triton 3.9 issues 96 with
the pipelined load and 88 with the inline one and 4 stages (CI compiles; the committed
reports, ``bench/results/kernels/compiled-triton-*.md``, hold each version's choice)."""

CONFIGS = [_config(128, 64, 2, 2 if TABLE_PIPELINED else 4)]
_INTERPRETER = [_config(32, 128, 1, 1)]


EVEN_TILES = {
    "EVEN_N": lambda args: args["N"] % args["BLOCK_N"] == 0,
    "EVEN_K": lambda args: args["K"] % args["BLOCK_K"] == 0,
}
"""Triton heuristics: whether the tiles divide N and K, so the main loop needs no masks (the GEMV and the
``tl.dot`` kernel in :mod:`polysparse.kernels.sparse24_matmul` use them too)."""

_kernel_h = triton.heuristics(dict(EVEN_TILES, TABLE_PIPELINED=lambda args: TABLE_PIPELINED))(
    _sparse24_decode_mma_kernel
)
_kernel_tuned = triton.autotune(
    configs=_INTERPRETER if interpreter_enabled() else CONFIGS,
    key=["N", "K", "SPLIT_K"],
)(_kernel_h)

JIT_KERNELS = {"decode_mma": _sparse24_decode_mma_kernel}
"""This module's ``@triton.jit`` kernel (what ``bench/kernels/compiled.py`` compiles; configurations in
:data:`CONFIGS`)."""


def tuned_config() -> triton.Config | None:
    """The configuration the autotuner chose at its last tuning (None before)."""
    return getattr(_kernel_tuned, "best_config", None)


def sparse24_decode_mma_launch(
    x2d: torch.Tensor,
    values: torch.Tensor,
    meta: torch.Tensor,
    bias: torch.Tensor | None,
    target: torch.Tensor,
    split_k: int,
    *,
    config: triton.Config | None = None,
) -> torch.Tensor:
    """Launch into ``target``: ``(M, N)`` in x's dtype when ``split_k == 1`` (bias added), else ``(split_k, M,
    N)`` float32 partials for the caller to reduce. ``M <= 16``; ``config`` bypasses the autotuner."""
    m, k = x2d.shape
    n = values.shape[0]
    if m > 16:
        raise ValueError(f"the decode kernel takes at most 16 rows of x, got {m}")
    if x2d.stride(1) != 1:
        x2d = x2d.contiguous()
    values, pairs, words = kernel_operands(values, meta)
    table = prmt_byte_table(x2d.device)
    has_bias = bias is not None

    def grid(meta_args):
        return triton.cdiv(n, meta_args["BLOCK_N"]), split_k

    kernel, extra = launcher(_kernel_tuned, _kernel_h, config)
    kernel[grid](
        x2d,
        pairs,
        words,
        table,
        bias if has_bias else values,
        target,
        m,
        n,
        k,
        x2d.stride(0),
        pairs.stride(0),
        words.stride(0) // 4,
        target.stride(0) if split_k > 1 else 0,
        target.stride(-2),
        HAS_BIAS=has_bias and split_k == 1,
        SPLIT_K=split_k,
        BF16=x2d.dtype == torch.bfloat16,
        INTERPRET=interpreter_enabled(),
        **extra,
    )
    return target
