"""What the compiled-code evidence compiles: every launch configuration the host wrappers and autotuners of
the kernels can produce (:func:`launches`), and the GPUs the report sets them against (:data:`GPUS`).

Hardware rates, with their sources: SMs, boost clocks and DRAM bandwidth from NVIDIA's data sheets (A100 SXM
80 GB: 108 SMs, 1410 MHz, 2.0 TB/s; H100 SXM5: 132 SMs, 1980 MHz, 3.35 TB/s; H200 SXM: the same GH100 die
at 4.8 TB/s); shared memory per program from the CUDA programming guide's compute-capability table;
L2 bandwidth 5120 bytes per clock (the A100 whitepaper's L2 read bandwidth), **assumed** for H100/H200 at
their clock (NVIDIA publishes no Hopper figure); the L1 rates are
:data:`polysparse.bench.kernels.memory_model.L1_SOURCES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Gpu:
    name: str
    arch: int
    sms: int
    clock_ghz: float
    bandwidth_tbs: float
    max_shared: int  # bytes of shared memory one program (CTA) may use
    l2_tbs: float  # L2 read bandwidth (TB/s): 5120 B/clock, the A100 whitepaper's figure, assumed on Hopper

    @property
    def peak_issue(self) -> float:
        """Warp-instructions per second: SMs x 4 schedulers x one instruction per clock."""
        return self.sms * 4 * self.clock_ghz * 1e9

    def issue_share(self, instructions_per_kb: float) -> float:
        """Fraction of peak issue needed to stream weight at full bandwidth."""
        return self.bandwidth_tbs * 1e12 / 1024 * instructions_per_kb / self.peak_issue


GPUS = (
    Gpu("A100", 80, 108, 1.410, 2.0, 166_912, 5120 * 1.410e9 / 1e12),
    Gpu("H100", 90, 132, 1.980, 3.35, 232_448, 5120 * 1.980e9 / 1e12),
    Gpu("H200", 90, 132, 1.980, 4.8, 232_448, 5120 * 1.980e9 / 1e12),
)
SHARED_LIMIT = {80: 166_912, 90: 232_448}
ISSUE_GOAL_PER_KB = 90.0  # the decode goal on sm_90: under ~40% of H200 peak issue at 4.8 TB/s
L2_GOAL_PER_WEIGHT_BYTE = 1.3  # bytes requested from L2 per byte of compressed weight (x, tables included)
L1_GOAL_SHARE = 0.40  # modeled L1 cycles at full DRAM bandwidth, share of the GPU's, on H100 and H200


@dataclass(frozen=True)
class Launch:
    """One compiled variant: a kernel, its constexprs and the argument specialisation a launch gets."""

    family: str  # e.g. "sparse24_matmul/dot"
    label: str  # the configuration, human-readable
    kernel: str  # "module:role": a key of JIT_KERNELS in polysparse.kernels.<module>; or "path.py:function"
    types: dict[str, str]  # pointer and non-i32 argument types; other arguments are i32
    constexprs: dict[str, Any]
    divisible: tuple[str, ...] = ()  # arguments a real launch specialises as divisible by 16
    num_warps: int = 4
    num_stages: int = 3
    regime: str = "other"  # decode (M <= 16), small (M <= 128), prefill, other
    weight_bytes_per_iter: float | None = None  # compressed weight one program reads per loop iteration
    extra: dict[str, Any] = field(default_factory=dict)  # compile options, e.g. enable_fp_fusion
    extra_info: dict[str, Any] = field(default_factory=dict)  # copied into the result row
    weight_args: tuple[str, ...] = ()  # the weight's pointer arguments: set for the memory model's kernels


# ----------------------------------------------------------------------------------------------------------
# What the wrappers launch
# ----------------------------------------------------------------------------------------------------------

_HALF = {"fp16": 2, "bf16": 2}


def _weight_bytes(block_n: int, block_k: int, dtype: str) -> float:
    """Values (``BLOCK_K / 2`` per row) plus metadata (``BLOCK_K / 16`` int16 words per row)."""
    return block_n * (block_k // 2 * _HALF[dtype] + block_k // 16 * 2)


def _matmul_launch(
    family: str,
    kernel: str,
    label: str,
    cfg: Any,
    dtype: str,
    split: int,
    operands: dict[str, str],
    constexprs: dict[str, Any],
    divisible: list[str],
    **launch: Any,
) -> Launch:
    """One launch of a 2:4 matmul kernel: ``operands`` then the bias and output pointers (float32 partial
    sums when K is split), the split and dtype constexprs then ``constexprs`` and the tile's."""
    kw = cfg.kwargs
    return Launch(
        family=family,
        label=label,
        kernel=kernel,
        types={**operands, "bias_ptr": f"*{dtype}", "y_ptr": "*fp32" if split > 1 else f"*{dtype}"},
        constexprs=dict(HAS_BIAS=split == 1, SPLIT_K=split, BF16=dtype == "bf16", **constexprs, **kw),
        divisible=tuple(divisible),
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
        weight_bytes_per_iter=_weight_bytes(kw["BLOCK_N"], kw["BLOCK_K"], dtype),
        **launch,
    )


def _dot_launches(subset: str) -> list[Launch]:
    from polysparse.kernels import sparse24_matmul as sm

    # M <= 16 never reaches this kernel (the GEMV and the tensor-core decode kernel take it).
    regimes = [("small", sm.SMALL_CONFIGS), ("prefill", sm.PREFILL_CONFIGS)]
    launches = []
    for regime, configs in regimes:
        for index, cfg in enumerate(configs):
            if subset == "ci" and index not in (0, len(configs) - 1):
                continue
            kw = cfg.kwargs
            for dtype in ("fp16", "bf16"):
                # bf16 changes only the mma operand type of this kernel (its loop counts equal fp16's in
                # every pair compiled so far): one bf16 tile per regime checks that, the rest in fp16.
                if dtype == "bf16" and (index != 0 or subset == "ci" and regime != "prefill"):
                    continue
                # Small batches (M <= 64) split K over programs (fp32 partials) on wide-enough layers.
                splits = (4, 1) if regime == "small" and subset == "all" else (1,)
                for split in splits:
                    for even_k in (True, False) if regime == "small" and split > 1 else (True,):
                        if subset == "ci" and not even_k:
                            continue
                        divisible = [
                            "x_ptr", "p_ptr", "meta_ptr", "table_ptr", "bias_ptr", "y_ptr", "N", "K",
                            "stride_xm", "stride_pn", "stride_ym", "stride_ys",
                        ]  # fmt: skip
                        if even_k:  # K = 4096: 32 units of 16 bytes per metadata row; K = 640 gives 5
                            divisible += ["K_WORDS16", "stride_en16"]
                        label = (
                            f"{kw['BLOCK_M']}x{kw['BLOCK_N']}x{kw['BLOCK_K']} w{cfg.num_warps} "
                            f"s{cfg.num_stages} {dtype} split{split}{'' if even_k else ' K%BK'}"
                        )
                        operands = {
                            "x_ptr": f"*{dtype}",
                            "p_ptr": "*i32",
                            "meta_ptr": "*i32",
                            "table_ptr": "*i64",
                        }
                        constexprs = dict(INTERPRET=False, EVEN_K=even_k, stride_xk=1, stride_yn=1)
                        launches.append(
                            _matmul_launch(
                                "sparse24_matmul/dot", "sparse24_matmul:dot", label, cfg, dtype, split,
                                operands, constexprs, divisible, regime=regime,
                                extra_info={"not_on_sm80": sm.config_key(cfg) in sm.SPILLS_ON_SM80},
                            )
                        )  # fmt: skip
    return launches


def _decode_variants(configs: list, subset: str):
    """``(cfg, dtype, split, even)`` for each launch of a decode kernel: both dtypes, split-K 4 and 1, whole
    tiles and masked ones (row tiles past N and a K tail, e.g. K = 960); ``ci`` takes the first config,
    split 4, whole tiles."""
    for index, cfg in enumerate(configs):
        if subset == "ci" and index:
            continue
        for dtype in ("fp16", "bf16"):
            for split in (4, 1):
                for even in (True, False) if subset == "all" else (True,):
                    if subset == "ci" and split == 1:
                        continue
                    yield cfg, dtype, split, even


def _gemv_launches(subset: str) -> list[Launch]:
    from polysparse.kernels import sparse24_gemv as sg

    launches = []
    for cfg, dtype, split, even in _decode_variants(sg.GEMV_CONFIGS, subset):
        kw = cfg.kwargs
        masked = "" if even else " N%BN K%BK"
        label = f"N{kw['BLOCK_N']}xK{kw['BLOCK_K']} w{cfg.num_warps} {dtype} split{split}{masked}"
        operands = {"t_ptr": "*i64", "v_ptr": "*i32", "meta_ptr": "*i32"}
        constexprs = dict(EVEN_N=even, EVEN_K=even, LANES_INNER=sg.LANES_INNER)
        divisible = [
            "t_ptr", "v_ptr", "meta_ptr", "bias_ptr", "y_ptr", "N", "K", "stride_tm", "stride_vn",
            "stride_ys", "stride_ym",
        ]  # fmt: skip
        launches.append(
            _matmul_launch(
                "sparse24_matmul/gemv", "sparse24_gemv:gemv", label, cfg, dtype, split, operands, constexprs,
                divisible, regime="decode", weight_args=("v_ptr", "meta_ptr"),
            )
        )  # fmt: skip
    if subset == "all":
        launches.append(
            Launch(
                "sparse24_matmul/x_pair_table",
                "BLOCK_G 64 fp16",
                "sparse24_gemv:x_pair_table",
                {"x_ptr": "*fp16", "t_ptr": "*i64"},
                dict(BLOCK_G=64),
                ("x_ptr", "t_ptr", "stride_xm", "stride_tm"),
                regime="decode",
            )
        )
    return launches


def _decode_mma_launches(subset: str) -> list[Launch]:
    from polysparse.kernels import sparse24_decode_mma as dm

    launches = []
    for cfg, dtype, split, even in _decode_variants(dm.CONFIGS, subset):
        kw = cfg.kwargs
        divisible = [
            "x_ptr", "p_ptr", "meta_ptr", "table_ptr", "bias_ptr", "y_ptr", "N", "K", "stride_xm",
            "stride_pn", "stride_ys", "stride_ym",
        ]  # fmt: skip
        if even:  # K = 4096: 32 units of 16 bytes per metadata row; K = 960 gives 8
            divisible.append("stride_en16")
        label = (
            f"{kw['BLOCK_M']}x{kw['BLOCK_N']}x{kw['BLOCK_K']} w{cfg.num_warps} "
            f"s{cfg.num_stages} {dtype} split{split}{'' if even else ' N%BN K%BK'}"
        )
        operands = {"x_ptr": f"*{dtype}", "p_ptr": "*i32", "meta_ptr": "*i32", "table_ptr": "*i64"}
        constexprs = dict(INTERPRET=False, EVEN_N=even, EVEN_K=even, TABLE_PIPELINED=dm.TABLE_PIPELINED)
        launches.append(
            _matmul_launch(
                "sparse24_matmul/decode_mma", "sparse24_decode_mma:decode_mma", label, cfg, dtype, split,
                operands, constexprs, divisible, regime="decode", weight_args=("p_ptr", "meta_ptr"),
            )
        )  # fmt: skip
    return launches


def _other_launches(subset: str) -> list[Launch]:
    from polysparse.kernels import sparse24 as s24
    from polysparse.kernels import sparsegpt as sg
    from polysparse.kernels import topk_mask as tm

    launches = []
    half = ("fp16",) if subset == "ci" else ("fp16", "bf16")
    for split in (2, 16) if subset == "ci" else (2, 4, 8, 16):
        launches.append(
            Launch(
                "sparse24_matmul/splitk_reduce",
                f"split{split}",
                "sparse24_splitk:splitk_reduce",
                {"ws_ptr": "*fp32", "bias_ptr": "*fp16", "y_ptr": "*fp16"},
                dict(HAS_BIAS=True, SPLIT_K=split, BLOCK_M=16, BLOCK_N=128),
                ("ws_ptr", "bias_ptr", "y_ptr", "N", "stride_ws", "stride_wm", "stride_ym"),
            )
        )
    # Mask kernels at the row lengths of real layers (Gemma 3 270M .. Qwen2.5-7B's 18944).
    for cols in (640, 2048, 4096, 18944) if subset == "all" else (640, 18944):
        one_tile = cols <= tm.MAX_ONE_TILE_COLS
        block_n = 1 << (cols - 1).bit_length() if one_tile else tm.CHUNK_COLS
        block_m = max(1, tm.ROWS_TILE_ELEMENTS // block_n)
        for dtype in half:
            launches.append(
                Launch(
                    "topk_mask/unstructured",
                    f"cols{cols} {block_m}x{block_n} {dtype}",
                    "topk_mask:unstructured_mask",
                    {"w_ptr": f"*{dtype}", "scale_ptr": "*fp32", "keep_ptr": "*u8"},
                    dict(
                        HAS_SCALE=True, ZERO_PRUNED=True, ONE_TILE=one_tile, BLOCK_M=block_m, BLOCK_N=block_n
                    ),
                    ("w_ptr", "scale_ptr", "keep_ptr"),
                    num_warps=tm._num_warps(block_m * block_n),
                )
            )
    for n, m in ((2, 4), (4, 8)):
        m_pad = 1 << (m - 1).bit_length()
        block_g = 1024 // m_pad
        block_m = max(1, tm.ROWS_TILE_ELEMENTS // (block_g * m_pad))
        for dtype in half:
            launches.append(
                Launch(
                    "topk_mask/nm",
                    f"{n}:{m} {block_m}x{block_g} {dtype}",
                    "topk_mask:nm_mask",
                    {"w_ptr": f"*{dtype}", "scale_ptr": "*fp32", "keep_ptr": "*u8"},
                    dict(
                        N=n,
                        M=m,
                        M_PAD=m_pad,
                        HAS_SCALE=True,
                        ZERO_PRUNED=True,
                        BLOCK_M=block_m,
                        BLOCK_G=block_g,
                    ),
                    ("w_ptr", "scale_ptr", "keep_ptr"),
                    num_warps=tm._num_warps(block_m * block_g * m_pad),
                )
            )
    # SparseGPT: the default block of 128 columns, and 40 (a block width that is not a power of two).
    for block_c in (128, 64) if subset == "all" else (128,):
        for nm, nm_n, step in ((True, 2, 4), (True, 4, 8), (False, 0, 1)):
            launches.append(
                Launch(
                    "sparsegpt_solve/block",
                    f"C{block_c} {f'{nm_n}:{step}' if nm else 'unstructured'}",
                    "sparsegpt:sparsegpt_block",
                    {
                        "w_ptr": "*fp32",
                        "hinv_ptr": "*fp32",
                        "prune_ptr": "*u8",
                        "err_ptr": "*fp32",
                        "keep_ptr": "*u8",
                    },  # fmt: skip
                    dict(
                        NM=nm, NM_N=nm_n, STEP=step, BLOCK_M=max(1, min(8, 2048 // block_c)), BLOCK_C=block_c
                    ),
                    ("w_ptr", "hinv_ptr", "prune_ptr", "err_ptr", "keep_ptr"),
                    num_warps=4,
                    extra=dict(sg.COMPILE_OPTIONS) if hasattr(sg, "COMPILE_OPTIONS") else {},
                )
            )
    for dtype in half + ("fp32",):
        for prune, has_scale in ((False, False), (True, True)):
            launches.append(
                Launch(
                    "sparse24/compress",
                    f"{dtype}{' prune+scale' if prune else ''}",
                    "sparse24:compress24",
                    {
                        "w_ptr": f"*{dtype}",
                        "scale_ptr": "*fp32",
                        "v_ptr": f"*{dtype}",
                        "meta_ptr": "*i16",
                        "bad_ptr": "*i64",
                    },  # fmt: skip
                    dict(PRUNE=prune, HAS_SCALE=has_scale, BLOCK_R=s24._BLOCK_R, BLOCK_W=s24._BLOCK_W),
                    ("w_ptr", "scale_ptr", "v_ptr", "meta_ptr", "bad_ptr"),
                )
            )
        launches.append(
            Launch(
                "sparse24/decompress",
                dtype,
                "sparse24:decompress24",
                {"v_ptr": f"*{dtype}", "meta_ptr": "*i16", "w_ptr": f"*{dtype}"},
                dict(BLOCK_R=s24._BLOCK_R, BLOCK_W=s24._BLOCK_W),
                ("v_ptr", "meta_ptr", "w_ptr"),
            )
        )
    return launches


def launches(subset: str = "all") -> list[Launch]:
    """Every launch configuration (``"all"``) or a representative few (``"ci"``)."""
    if subset not in ("all", "ci"):
        raise ValueError(f"subset must be 'all' or 'ci', got {subset!r}")
    return (
        _dot_launches(subset)
        + _gemv_launches(subset)
        + _decode_mma_launches(subset)
        + _other_launches(subset)
    )
