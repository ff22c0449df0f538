"""2:4 sparse linear layer: ``y = x @ W^T (+ bias)`` with ``W`` held as ``(values, meta)``.

``x`` is ``(..., K)`` in fp16 or bf16, ``W`` is ``(N, K)`` in the 2:4 format of
:mod:`polysparse.kernels.sparse24` (``values`` ``(N, K/2)`` in x's dtype, ``meta`` ``(N, K/16)`` int16, one
4-bit nibble ``p0 | p1 << 2`` per group of four columns, four groups per word, lowest group in the lowest
nibble). Products accumulate in float32; the bias is added in float32; ``y`` is ``(..., N)`` in x's dtype.
(Under Triton's CPU interpreter, whose bf16 ``tl.dot`` is wrong, bf16 tiles are upcast to fp32 before the
dot; bf16 products are exact in fp32, so only the GPU tests exercise the bf16 tensor-core path itself.)

The kernel is a tiled GEMM (Triton tutorial 03) whose weight operand is never stored dense. Per ``BLOCK_K``
step a program loads, for its ``BLOCK_N`` output features, ``BLOCK_K / 4`` int32 value pairs and
``BLOCK_K / 32`` int32 metadata words per row, which is 9/16 of the bytes of the dense tile, and expands
them in registers with two byte permutes per group of four columns (``prmt``, selectors from a table indexed
by a metadata byte; :mod:`polysparse.kernels.sparse24_decode_mma` holds the expansion and its reference).
The product is computed as ``acc[BLOCK_N, BLOCK_M] = W_tile @ x_tile^T``: the expanded tile is the ``mma``
A operand, which ``mma.sync`` takes from registers (as the B operand it went through shared memory, and
triton 3.6 read it back without ``ldmatrix``); the compiled evidence is in ``bench/results/kernels/``.
Values and words are indexed and masked in their own units (and not masked along K at all when
``BLOCK_K`` divides K), so their loads are 16-byte vectors that Triton's software pipeliner stages with
``cp.async`` together with the x tile.

Decode (M = 1..16) is memory bound: the weight is read once and what counts is how many bytes are in flight
and how few instructions each byte costs. It does not use this kernel: one row of x goes to the GEMV of
:mod:`polysparse.kernels.sparse24_gemv` (``GEMV_MAX_M``), 2..16 rows to the tensor-core decode kernel of
:mod:`polysparse.kernels.sparse24_decode_mma` (``DECODE_MAX_M``), which issues less than half the
instructions per KB of weight of this kernel at ``BLOCK_M = 16`` (within the <= 90 budget on sm_90).
When the output has too few tiles to occupy every SM the K range is split over ``SPLIT_K`` programs that
write float32 partial sums, and a second small kernel adds them in a fixed order (so results are
deterministic), adds the bias and casts (:mod:`polysparse.kernels.sparse24_splitk`). Small batches
(M <= 128) use 32- and 64-row tiles; prefill (M in
the thousands) is compute bound and uses large square-ish tiles with grouped tile ordering for L2 reuse;
there the expansion is pure overhead over a dense GEMM, and the runtime should dispatch to cuBLAS or
cuSPARSELt where they measure faster.

Autotuning is keyed on ``M_BUCKET = ceil(log2(M))`` (so M = 65..128 share one tuned choice), N, K and
``SPLIT_K``; under ``TRITON_INTERPRET=1`` there is a single configuration. Tuning runs on the first call for
a new key: warm up before capturing a CUDA graph.

``K`` and ``N`` must be multiples of 64 for the kernel (other shapes fall back to the reference, logged by
:func:`polysparse.kernels.dispatch.choose_impl`). The op is registered as ``polysparse::sparse24_linear``
with a fake implementation, so it traces under ``torch.compile`` and can be captured in CUDA graphs. It has
no autograd formula (inference only).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from polysparse.kernels import sparse24_gemv as gemv
from polysparse.kernels import sparse24_splitk as splitk
from polysparse.kernels.dispatch import Impl, choose_impl, interpreter_enabled, launcher
from polysparse.kernels.sparse24 import check_compressed, decompress_24_reference, kernel_operands
from polysparse.kernels.sparse24_decode_mma import (
    EVEN_TILES,
    _expand_24_prmt,
    prmt_selector_table,
    sparse24_decode_mma_launch,
)

OP_NAME = "sparse24_linear"
_ALIGN = 64

# ----------------------------------------------------------------------------------------------------------
# PyTorch reference
# ----------------------------------------------------------------------------------------------------------


def sparse24_linear_reference(
    x: torch.Tensor, values: torch.Tensor, meta: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Decompress and ``F.linear``."""
    return F.linear(x, decompress_24_reference(values, meta), bias)


# ----------------------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------------------


@triton.jit(do_not_specialize=["M_BUCKET"])  # an autotuning key only: no compiled variant per value
def _sparse24_matmul_kernel(
    x_ptr,
    p_ptr,  # values as int32: one (v0, v1) pair per group
    meta_ptr,  # metadata as int32: eight groups per word
    table_ptr,  # the prmt selector table (polysparse.kernels.sparse24_decode_mma.prmt_selector_table)
    bias_ptr,
    y_ptr,
    M,
    N,
    K,
    K_WORDS16,  # ceil(K / 128): metadata row length in 16-byte units, padding included
    stride_xm,
    stride_xk,
    stride_pn,  # in int32 pairs
    stride_en16,  # metadata row stride in 16-byte units: rows are 16-byte aligned (format version 2)
    stride_ys,
    stride_ym,
    stride_yn,
    M_BUCKET,  # ceil(log2(M)): read only by the autotuner's key
    HAS_BIAS: tl.constexpr,
    SPLIT_K: tl.constexpr,
    BF16: tl.constexpr,
    INTERPRET: tl.constexpr,  # the CPU interpreter: no PTX, dot in fp32 (its bf16 dot is wrong)
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    EVEN_K: tl.constexpr,  # K % BLOCK_K == 0: no K masks (set by the heuristic below)
):
    """Program (tile, k-split): ``acc[n, m] = sum_k W[n, k] x[m, k]``; with ``SPLIT_K == 1`` writes ``y``
    (bias, cast), else fp32 partials."""
    pid = tl.program_id(0)
    pid_k = tl.program_id(1)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    # Grouped ordering: GROUP_M row-tiles share each weight column-tile while it is in L2.
    num_pid_in_group = GROUP_M * num_pid_n
    first_pid_m = (pid // num_pid_in_group) * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask = offs_m < M
    n_mask = offs_n < N
    # Rows past N read row N - 1 (their sums are never stored): the weight loads need no row mask.
    rows64 = tl.minimum(offs_n, N - 1).to(tl.int64)
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm
    p_rows = p_ptr + rows64[:, None] * stride_pn
    e_rows = meta_ptr + rows64[:, None] * (stride_en16 * 4)

    k_tiles = tl.cdiv(K, BLOCK_K)
    tiles_per_split = tl.cdiv(k_tiles, SPLIT_K)
    k_first = pid_k * tiles_per_split
    k_last = min(k_first + tiles_per_split, k_tiles)

    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for kt in range(k_first, k_last):
        k_cols = kt * BLOCK_K + tl.arange(0, BLOCK_K)
        g = kt * (BLOCK_K // 4) + tl.arange(0, BLOCK_K // 4)
        w_idx = kt * (BLOCK_K // 32) + tl.arange(0, BLOCK_K // 32)
        # Offsets count in the units loaded (pairs, words) and K masks cover whole 16-byte vectors (K is a
        # multiple of 64; metadata rows are padded to 16 bytes with zero nibbles), so the loads stay vectors
        # that Triton's pipeliner stages with cp.async.
        if EVEN_K:
            x = tl.load(x_rows + k_cols[None, :] * stride_xk, mask=m_mask[:, None], other=0.0)
            pair = tl.load(p_rows + g[None, :])
            words = tl.load(e_rows + w_idx[None, :])
        else:
            x_mask = m_mask[:, None] & (k_cols < K)[None, :]
            x = tl.load(x_rows + k_cols[None, :] * stride_xk, mask=x_mask, other=0.0)
            pair = tl.load(p_rows + g[None, :], mask=(g < K // 4)[None, :], other=0)
            words = tl.load(e_rows + w_idx[None, :], mask=(w_idx < K_WORDS16 * 4)[None, :], other=0)
        w = _expand_24_prmt(pair, words, table_ptr, BLOCK_N, BLOCK_K, BF16, INTERPRET)
        # The expanded tile is the A operand: mma.sync takes it from registers (the B side would store it to
        # shared memory and read it back), see the module docstring.
        if INTERPRET:
            acc += tl.dot(w.to(tl.float32), tl.trans(x).to(tl.float32), input_precision="ieee")
        else:
            acc += tl.dot(w, tl.trans(x))

    y_ptrs = (
        y_ptr + pid_k * stride_ys + offs_m.to(tl.int64)[None, :] * stride_ym + offs_n[:, None] * stride_yn
    )
    y_mask = m_mask[None, :] & n_mask[:, None]
    if SPLIT_K == 1:
        if HAS_BIAS:
            acc += tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[:, None]
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=y_mask)
    else:
        tl.store(y_ptrs, acc, mask=y_mask)


# ----------------------------------------------------------------------------------------------------------
# Autotuning
# ----------------------------------------------------------------------------------------------------------


def _config(bm: int, bn: int, bk: int, warps: int, stages: int, group_m: int = 8) -> triton.Config:
    return triton.Config(
        {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": group_m}, num_warps=warps, num_stages=stages
    )


# Small batches, 16 < M <= 128: still mostly memory bound, the x tile grows.
SMALL_CONFIGS = [
    _config(32, 64, 128, 4, 4),
    # No 32x128x128 w4 s4: it spilled 60-104 B on sm_80 and sm_90 with the select-based expansion (the
    # triton 3.6 report of commit 6ce5bb9), and 32x64 / 64x64 tiles cover its batch sizes.
    _config(64, 64, 128, 4, 4),
    _config(64, 128, 64, 4, 4),
    _config(64, 128, 128, 8, 3),
]
# Prefill, M > 128: compute bound, tutorial-03-style tiles.
PREFILL_CONFIGS = [
    _config(128, 128, 64, 8, 3),
    _config(128, 256, 64, 8, 3),
    _config(256, 128, 64, 8, 3),
    _config(64, 128, 64, 4, 4),
    _config(128, 64, 64, 4, 4),
    _config(128, 128, 128, 8, 3),
]
# The interpreter runs every program in Python: one small configuration keeps CI in seconds.
_INTERPRETER = [_config(16, 64, 128, 4, 1)]


def _configs() -> list[triton.Config]:
    return _INTERPRETER if interpreter_enabled() else SMALL_CONFIGS + PREFILL_CONFIGS


def config_key(config: triton.Config) -> tuple[int, int, int, int, int]:
    """``(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages)``."""
    kw = config.kwargs
    return kw["BLOCK_M"], kw["BLOCK_N"], kw["BLOCK_K"], config.num_warps, config.num_stages


SPILLS_ON_SM80 = frozenset({(128, 256, 64, 8, 3), (256, 128, 64, 8, 3)})
"""Tiles that spill registers when compiled for sm_80 (28-56 B per thread with triton 3.9, none with 3.6;
``bench/results/kernels/compiled-triton-*.md``; none on sm_90): never timed on an sm_8x GPU."""


def _prune_configs(configs, named_args, **kwargs):
    """Only the configurations of the call's regime are timed (small batch / prefill; M <= 16 goes to the
    decode kernels, and runs here only when called directly, with the small-batch tiles)."""
    if len(configs) == 1:
        return configs
    m = named_args["M"]
    wanted = {32, 64} if m <= 128 else {64, 128, 256}
    kept = [c for c in configs if c.kwargs["BLOCK_M"] in wanted]
    x = named_args.get("x_ptr")
    if isinstance(x, torch.Tensor) and x.is_cuda and torch.cuda.get_device_capability(x.device)[0] == 8:
        kept = [c for c in kept if config_key(c) not in SPILLS_ON_SM80]
    return kept or configs


_sparse24_matmul_kernel_h = triton.heuristics({"EVEN_K": EVEN_TILES["EVEN_K"]})(_sparse24_matmul_kernel)
_sparse24_matmul = triton.autotune(
    configs=_configs(),
    key=["M_BUCKET", "N", "K", "SPLIT_K"],
    prune_configs_by={"early_config_prune": _prune_configs},
)(_sparse24_matmul_kernel_h)


GEMV_MAX_M = 1
"""Calls with at most this many rows of ``x`` take the GEMV path. From the compiled code on sm_90
(``bench/results/kernels/compiled-triton-*.md``): the GEMV issues ~72 warp-instructions per KB of weight
for each row of x (one program per row, the weight re-read from L2), the tensor-core decode kernel
(:mod:`polysparse.kernels.sparse24_decode_mma`) 80-89 whatever M <= 16 is: the GEMV for one row."""

DECODE_MAX_M = 16
"""Calls with ``GEMV_MAX_M < M <= DECODE_MAX_M`` rows take the tensor-core decode kernel (x padded to 16
rows); larger M the ``tl.dot`` kernel here."""


JIT_KERNELS = {"dot": _sparse24_matmul_kernel}
"""This module's ``@triton.jit`` kernel: what ``bench/kernels/compiled.py`` compiles ahead of time (the tuned
configurations are :data:`SMALL_CONFIGS` and :data:`PREFILL_CONFIGS`); the GEMV, the tensor-core decode
kernel and the split-K reduction live in their own modules."""


def tuned_config(kernel: str) -> triton.Config | None:
    """The configuration the autotuner of ``"dot"`` or ``"gemv"`` chose at its last tuning (None before)."""
    if kernel == "gemv":
        return gemv.tuned_config()
    return getattr(_sparse24_matmul, "best_config", None)


def m_bucket(m: int) -> int:
    """``ceil(log2(M))``: the batch-size bucket that autotuning (and the dispatch table) is keyed on."""
    return max(0, math.ceil(math.log2(max(m, 1))))


def default_split_k(m: int, n: int, k: int, device: torch.device) -> int:
    """K-splits for small M: enough programs to occupy the SMs while each split keeps >= 512 columns."""
    if m > 64:
        return 1
    tiles = triton.cdiv(n, 128) * triton.cdiv(m, 16)
    split = 1
    while split < 16 and 2 * split * tiles <= splitk.num_sms(device) and k // (2 * split) >= 512:
        split *= 2
    return split


# ----------------------------------------------------------------------------------------------------------
# Host wrappers
# ----------------------------------------------------------------------------------------------------------


def decode_split_k(n: int, k: int, device: torch.device) -> int:
    """K-splits for the tensor-core decode kernel (128-row tiles): about two programs per SM, each split
    keeping >= 512 columns."""
    return splitk.split_for_programs(triton.cdiv(n, 128), k, device)


def _sparse24_decode_triton(
    x2d: torch.Tensor,
    values: torch.Tensor,
    meta: torch.Tensor,
    bias: torch.Tensor | None,
    out: torch.Tensor,
    *,
    split_k: int | None = None,
    config: triton.Config | None = None,
) -> torch.Tensor:
    """The tensor-core decode path (M <= 16) into a preallocated ``out`` ``(M, N)``, split-K reduced here."""
    m, k = x2d.shape
    n = values.shape[0]
    if m == 0:
        return out
    if split_k is None:
        split_k = decode_split_k(n, k, x2d.device)
    target = splitk.split_k_target(out, split_k)
    sparse24_decode_mma_launch(x2d, values, meta, bias, target, split_k, config=config)
    return splitk.finish_split_k(target, bias, out)


def _sparse24_linear_triton(
    x2d: torch.Tensor,
    values: torch.Tensor,
    meta: torch.Tensor,
    bias: torch.Tensor | None,
    out: torch.Tensor,
    *,
    split_k: int | None = None,
    config: triton.Config | None = None,
) -> torch.Tensor:
    """Launch into a preallocated ``out`` ``(M, N)``.

    ``split_k=None`` chooses :func:`default_split_k`; ``config`` bypasses the autotuner (tests, benchmarks).
    """
    m, k = x2d.shape
    n = values.shape[0]
    if m == 0:
        return out
    if split_k is None:
        split_k = default_split_k(m, n, k, x2d.device)
    has_bias = bias is not None
    bias_arg = bias if has_bias else values  # never read when HAS_BIAS is False
    _, pairs, words = kernel_operands(values, meta)
    target = splitk.split_k_target(out, split_k)
    stride_s = target.stride(0) if split_k > 1 else 0

    def grid(meta_args):
        return triton.cdiv(m, meta_args["BLOCK_M"]) * triton.cdiv(n, meta_args["BLOCK_N"]), split_k

    kernel, extra = launcher(_sparse24_matmul, _sparse24_matmul_kernel_h, config)
    kernel[grid](
        x2d,
        pairs,
        words,
        prmt_selector_table(x2d.device),
        bias_arg,
        target,
        m,
        n,
        k,
        -(-k // 128),  # metadata row length in 16-byte units
        x2d.stride(0),
        x2d.stride(1),
        pairs.stride(0),
        words.stride(0) // 4,
        stride_s,
        target.stride(-2),
        target.stride(-1),
        m_bucket(m),
        HAS_BIAS=has_bias,
        SPLIT_K=split_k,
        BF16=x2d.dtype == torch.bfloat16,
        INTERPRET=interpreter_enabled(),
        **extra,
    )
    return splitk.finish_split_k(target, bias, out)


def sparse24_linear_unsupported(dtype: torch.dtype, out_features: int, in_features: int) -> str | None:
    """``None`` when the Triton kernel takes a layer of this dtype and shape, else why not (the device is
    :func:`polysparse.kernels.dispatch.device_reason`'s question)."""
    if dtype not in (torch.float16, torch.bfloat16):
        return f"dtype {dtype} (the kernel takes fp16 and bf16)"
    if in_features % _ALIGN or out_features % _ALIGN:
        return f"in_features={in_features} and out_features={out_features} must be multiples of {_ALIGN}"
    return None


def _unsupported(x: torch.Tensor, n: int, k: int) -> str | None:
    return sparse24_linear_unsupported(x.dtype, n, k)


@torch.library.custom_op(
    f"polysparse::{OP_NAME}",
    mutates_args=(),
    schema="(Tensor x, Tensor values, Tensor meta, Tensor? bias, str impl) -> Tensor",
)
def _sparse24_linear_op(x, values, meta, bias, impl):
    n, k = values.shape[0], x.shape[-1]
    tensors = (x, values, meta) if bias is None else (x, values, meta, bias)
    if not choose_impl(OP_NAME, impl, *tensors, unsupported=_unsupported(x, n, k)):
        return sparse24_linear_reference(x, values, meta, bias)
    x2d = x.reshape(-1, k)
    out = torch.empty(x2d.shape[0], n, dtype=x.dtype, device=x.device)
    if x2d.shape[0] <= GEMV_MAX_M:
        gemv.sparse24_gemv_triton(x2d, values, meta, bias, out)
    elif x2d.shape[0] <= DECODE_MAX_M:
        _sparse24_decode_triton(x2d, values, meta, bias, out)
    else:
        _sparse24_linear_triton(x2d, values, meta, bias, out)
    return out.reshape(*x.shape[:-1], n)


@_sparse24_linear_op.register_fake
def _sparse24_linear_fake(x, values, meta, bias, impl):
    return x.new_empty((*x.shape[:-1], values.shape[0]))


def sparse24_linear(
    x: torch.Tensor,
    values: torch.Tensor,
    meta: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    impl: Impl = "auto",
) -> torch.Tensor:
    """``x @ W^T (+ bias)`` for a 2:4 weight ``W`` given as ``(values, meta)``; ``x`` is ``(..., in)``."""
    n, k = check_compressed(values, meta)
    if x.dim() == 0 or x.shape[-1] != k:
        raise ValueError(f"x has shape {tuple(x.shape)}; the weight has in_features={k}")
    if x.dtype != values.dtype:
        raise ValueError(f"x is {x.dtype} but values are {values.dtype}")
    if bias is not None and (tuple(bias.shape) != (n,) or bias.dtype != x.dtype):
        raise ValueError(f"bias must be {x.dtype} of shape ({n},), got {bias.dtype} {tuple(bias.shape)}")
    if impl not in ("auto", "triton", "reference"):
        raise ValueError(f"impl must be 'auto', 'triton' or 'reference', got {impl!r}")
    return torch.ops.polysparse.sparse24_linear(x, values, meta, bias, impl)
