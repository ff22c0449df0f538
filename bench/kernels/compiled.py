"""Evidence from the compiled kernels: every launch configuration compiled for sm_80 and sm_90, no GPU needed.

    python -P -m polysparse.bench.kernels.compiled [--out DIR] [--subset all|ci] [--arch 80,90] [--jobs N]

Triton's NVIDIA backend compiles for any target without a GPU or driver (``triton.compile`` with a
``GPUTarget``; ``ptxas``, ``cuobjdump`` ship in the triton wheel). For every launch configuration the host
wrappers and autotuners can produce (every tile configuration of each autotuner and regime, with and
without a K remainder and rows past N, split-K on and off where the wrapper uses it; both half dtypes for
the GEMV and the tensor-core decode kernel, and for the ``tl.dot`` kernel fp16 plus one bf16 tile per
regime, bf16 changing only its ``mma`` operand type; every ``SPLIT_K > 1`` is compiled as 4, the value
being one constant of the code) this module records:

* registers per thread, spill bytes (``ptxas -v``; spill stores/loads in the SASS where that log is absent),
  shared memory per program against the target's limit (A100 166,912 B, H100/H200 232,448 B);
* tensor-core instructions in the PTX: ``mma.sync``, ``wgmma.mma_async``, ``ldmatrix``;
* the SASS instructions of the main loop (the largest backward branch; ``ptxas`` unrolling is detected by
  comparing the loop's global loads with the PTX loop's and divided out), i.e. **instructions per K
  iteration** per warp;
* for the 2:4 matmul kernels, **warp-instructions per KB of compressed weight streamed**:
  ``loop instructions x num_warps / (weight bytes one program reads per iteration / 1024)``;
* per decode batch size (M = 1..16), the kernel the op dispatches it to and whether that kernel meets the
  decode budget on sm_90 (<= 90 warp-instructions per KB, no spills, no 16-bit loads in the loop);
* the **share of peak issue** that rate needs at full memory bandwidth:
  ``(bandwidth / 1024) x instructions per KB / peak issue``, with
  ``peak issue = SMs x 4 schedulers x boost clock`` warp-instructions per second (one instruction per
  scheduler per clock, the best case: dual-issue does not exist on these parts and every stall only lowers
  it). A100 SXM: 108 SMs x 4 x 1.410 GHz = 609 G/s at 2.0 TB/s; H100 SXM: 132 x 4 x 1.980 GHz = 1045 G/s at
  3.35 TB/s; H200: 132 x 4 x 1.980 GHz = 1045 G/s at 4.8 TB/s. Above ~50% the kernel is unlikely to reach
  the bandwidth bound (address arithmetic, barriers and memory-instruction issue limits sit on top);
  above 100% it cannot.

The loop count is *static*: it is what one program issues per K tile once the pipeline is full, not a
timing. It predicts; ``bench/scripts/gpu_all.sh`` measures.

Results go to ``bench/results/kernels/compiled-triton-<version>.{json,md}``. ``--subset ci`` compiles a
representative few (what ``tests/bench/test_compiled.py`` checks); the default compiles everything.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results" / "kernels"


@dataclass(frozen=True)
class Gpu:
    name: str
    arch: int
    sms: int
    clock_ghz: float
    bandwidth_tbs: float
    max_shared: int  # bytes of shared memory one program (CTA) may use

    @property
    def peak_issue(self) -> float:
        """Warp-instructions per second: SMs x 4 schedulers x one instruction per clock."""
        return self.sms * 4 * self.clock_ghz * 1e9

    def issue_share(self, instructions_per_kb: float) -> float:
        """Fraction of peak issue needed to stream weight at full bandwidth."""
        return self.bandwidth_tbs * 1e12 / 1024 * instructions_per_kb / self.peak_issue


GPUS = (
    Gpu("A100", 80, 108, 1.410, 2.0, 166_912),
    Gpu("H100", 90, 132, 1.980, 3.35, 232_448),
    Gpu("H200", 90, 132, 1.980, 4.8, 232_448),
)
SHARED_LIMIT = {80: 166_912, 90: 232_448}
ISSUE_GOAL_PER_KB = 90.0  # the decode goal on sm_90: under ~40% of H200 peak issue at 4.8 TB/s


@dataclass(frozen=True)
class Launch:
    """One compiled variant: a kernel, its constexprs and the argument specialisation a launch gets."""

    family: str  # e.g. "sparse24_matmul/dot"
    label: str  # the configuration, human-readable
    kernel: str  # "module:role": a key of JIT_KERNELS in polysparse.kernels.<module>
    types: dict[str, str]  # pointer and non-i32 argument types; other arguments are i32
    constexprs: dict[str, Any]
    divisible: tuple[str, ...] = ()  # arguments a real launch specialises as divisible by 16
    num_warps: int = 4
    num_stages: int = 3
    regime: str = "other"  # decode (M <= 16), small (M <= 128), prefill, other
    weight_bytes_per_iter: float | None = None  # compressed weight one program reads per loop iteration
    extra: dict[str, Any] = field(default_factory=dict)  # compile options, e.g. enable_fp_fusion
    extra_info: dict[str, Any] = field(default_factory=dict)  # copied into the result row


# ----------------------------------------------------------------------------------------------------------
# What the wrappers launch
# ----------------------------------------------------------------------------------------------------------

_HALF = {"fp16": 2, "bf16": 2}


def _weight_bytes(block_n: int, block_k: int, dtype: str) -> float:
    """Values (``BLOCK_K / 2`` per row) plus metadata (``BLOCK_K / 16`` int16 words per row)."""
    return block_n * (block_k // 2 * _HALF[dtype] + block_k // 16 * 2)


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
                        launches.append(
                            Launch(
                                family="sparse24_matmul/dot",
                                label=(
                                    f"{kw['BLOCK_M']}x{kw['BLOCK_N']}x{kw['BLOCK_K']} w{cfg.num_warps} "
                                    f"s{cfg.num_stages} {dtype} split{split}{'' if even_k else ' K%BK'}"
                                ),
                                kernel="sparse24_matmul:dot",
                                types={
                                    "x_ptr": f"*{dtype}",
                                    "p_ptr": "*i32",
                                    "meta_ptr": "*i32",
                                    "table_ptr": "*i64",
                                    "bias_ptr": f"*{dtype}",
                                    "y_ptr": "*fp32" if split > 1 else f"*{dtype}",
                                },  # fmt: skip
                                constexprs=dict(
                                    HAS_BIAS=split == 1,
                                    SPLIT_K=split,
                                    BF16=dtype == "bf16",
                                    INTERPRET=False,
                                    EVEN_K=even_k,
                                    stride_xk=1,
                                    stride_yn=1,
                                    **kw,
                                ),  # fmt: skip
                                divisible=tuple(divisible),
                                num_warps=cfg.num_warps,
                                num_stages=cfg.num_stages,
                                regime=regime,
                                weight_bytes_per_iter=_weight_bytes(kw["BLOCK_N"], kw["BLOCK_K"], dtype),
                                extra_info={"not_on_sm80": sm.config_key(cfg) in sm.SPILLS_ON_SM80},
                            )
                        )
    return launches


def _gemv_launches(subset: str) -> list[Launch]:
    from polysparse.kernels import sparse24_matmul as sm

    launches = []
    for index, cfg in enumerate(sm.GEMV_CONFIGS):
        if subset == "ci" and index:
            continue
        kw = cfg.kwargs
        for dtype in ("fp16", "bf16"):
            for split in (4, 1):
                # Row tiles past N (N % BLOCK_N) and a K tail (K % 128, e.g. K = 960) are masked variants.
                for even_n, even_k in ((True, True), (False, False)) if subset == "all" else ((True, True),):
                    if subset == "ci" and split == 1:
                        continue
                    launches.append(
                        Launch(
                            family="sparse24_matmul/gemv",
                            label=(
                                f"N{kw['BLOCK_N']}xK{kw['BLOCK_K']} w{cfg.num_warps} {dtype} split{split}"
                                f"{'' if even_n else ' N%BN K%BK'}"
                            ),
                            kernel="sparse24_matmul:gemv",
                            types={
                                "t_ptr": "*i64",
                                "v_ptr": "*i32",
                                "meta_ptr": "*i32",
                                "bias_ptr": f"*{dtype}",
                                "y_ptr": "*fp32" if split > 1 else f"*{dtype}",
                            },  # fmt: skip
                            constexprs=dict(
                                HAS_BIAS=split == 1,
                                SPLIT_K=split,
                                BF16=dtype == "bf16",
                                EVEN_N=even_n,
                                EVEN_K=even_k,
                                **kw,
                            ),  # fmt: skip
                            divisible=(
                                "t_ptr",
                                "v_ptr",
                                "meta_ptr",
                                "bias_ptr",
                                "y_ptr",
                                "N",
                                "K",
                                "stride_tm",
                                "stride_vn",
                                "stride_ys",
                                "stride_ym",
                            ),  # fmt: skip
                            num_warps=cfg.num_warps,
                            num_stages=cfg.num_stages,
                            regime="decode",
                            weight_bytes_per_iter=_weight_bytes(kw["BLOCK_N"], kw["BLOCK_K"], dtype),
                        )
                    )
    if subset == "all":
        launches.append(
            Launch(
                "sparse24_matmul/x_pair_table",
                "BLOCK_G 64 fp16",
                "sparse24_matmul:x_pair_table",
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
    for index, cfg in enumerate(dm.CONFIGS):
        if subset == "ci" and index:
            continue
        kw = cfg.kwargs
        for dtype in ("fp16", "bf16"):
            for split in (4, 1):
                # Row tiles past N (N % BLOCK_N) and a K tail (K % BLOCK_K, e.g. K = 960) are masked variants.
                for even in (True, False) if subset == "all" else (True,):
                    if subset == "ci" and split == 1:
                        continue
                    divisible = [
                        "x_ptr", "p_ptr", "meta_ptr", "table_ptr", "bias_ptr", "y_ptr", "N", "K", "stride_xm",
                        "stride_pn", "stride_ys", "stride_ym",
                    ]  # fmt: skip
                    if even:  # K = 4096: 32 units of 16 bytes per metadata row; K = 960 gives 8
                        divisible.append("stride_en16")
                    launches.append(
                        Launch(
                            family="sparse24_matmul/decode_mma",
                            label=(
                                f"{kw['BLOCK_M']}x{kw['BLOCK_N']}x{kw['BLOCK_K']} w{cfg.num_warps} "
                                f"s{cfg.num_stages} {dtype} split{split}{'' if even else ' N%BN K%BK'}"
                            ),
                            kernel="sparse24_decode_mma:decode_mma",
                            types={
                                "x_ptr": f"*{dtype}",
                                "p_ptr": "*i32",
                                "meta_ptr": "*i32",
                                "table_ptr": "*i64",
                                "bias_ptr": f"*{dtype}",
                                "y_ptr": "*fp32" if split > 1 else f"*{dtype}",
                            },  # fmt: skip
                            constexprs=dict(
                                HAS_BIAS=split == 1,
                                SPLIT_K=split,
                                BF16=dtype == "bf16",
                                INTERPRET=False,
                                EVEN_N=even,
                                EVEN_K=even,
                                **kw,
                            ),  # fmt: skip
                            divisible=tuple(divisible),
                            num_warps=cfg.num_warps,
                            num_stages=cfg.num_stages,
                            regime="decode",
                            weight_bytes_per_iter=_weight_bytes(kw["BLOCK_N"], kw["BLOCK_K"], dtype),
                        )
                    )
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
                "sparse24_matmul:splitk_reduce",
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


# ----------------------------------------------------------------------------------------------------------
# Compiling and reading the code
# ----------------------------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    import triton

    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
    return str(path) if path.exists() else name


_SASS_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);")
_SASS_BRANCH = re.compile(r"\bBRA\s+(?:\S+\s+)?(?:0x)?([0-9a-f]+)\s*$")
_PTX_LABEL = re.compile(r"^(\$L__\w+):", re.M)
_PTX_LOAD_B16 = re.compile(r"\bld\.global(?:\.\w+)*\.(?:b16|u16|s16)\b")
_PTX_GLOBAL_LOAD = re.compile(r"\b(?:ld\.global|cp\.async\.(?:ca|cg)|cp\.async\.bulk)")
_SASS_GLOBAL_LOAD = re.compile(r"^(?:@!?U?P\w+\s+)?(?:LDG|LDGSTS|UTMALDG)\b")


def _opcode(instruction: str) -> str:
    parts = instruction.split()
    if parts and parts[0].startswith("@"):
        parts = parts[1:]
    return parts[0].split(".")[0] if parts else ""


def sass_main_loop(sass: str) -> list[str]:
    """Instructions of the largest loop (a backward branch and everything from its target to it)."""
    code = [(int(addr, 16), text.strip()) for addr, text in _SASS_LINE.findall(sass)]
    best: list[str] = []
    for addr, text in code:
        if _opcode(text) != "BRA":
            continue
        m = _SASS_BRANCH.search(text)
        if not m:
            continue
        target = int(m.group(1), 16)
        if target < addr:
            body = [t for a, t in code if target <= a <= addr]
            if len(body) > len(best):
                best = body
    return best


def ptx_main_loop(ptx: str) -> str:
    """Text of the largest PTX loop (a label and the last backward ``bra`` to it)."""
    best = ""
    for m in _PTX_LABEL.finditer(ptx):
        label = m.group(1)
        jumps = [j.start() for j in re.finditer(rf"\bbra(?:\.uni)?\s+{re.escape(label)};", ptx)]
        back = [j for j in jumps if j > m.end()]
        if back and back[-1] - m.end() > len(best):
            best = ptx[m.end() : back[-1]]
    return best


def _ptxas_log_numbers(log: str) -> dict[str, int | None]:
    regs = re.search(r"Used (\d+) registers", log)
    stores = re.search(r"(\d+) bytes spill stores", log)
    loads = re.search(r"(\d+) bytes spill loads", log)
    return {
        "registers": int(regs.group(1)) if regs else None,
        "spill_store_bytes": int(stores.group(1)) if stores else None,
        "spill_load_bytes": int(loads.group(1)) if loads else None,
    }


def compile_launch(launch: Launch, arch: int) -> dict[str, Any]:
    """Compile one launch for ``sm_<arch>`` and read registers, spills, shared memory and the main loop."""
    import importlib

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    module_name, role = launch.kernel.split(":")
    fn = importlib.import_module(f"polysparse.kernels.{module_name}").JIT_KERNELS[role]
    names = list(fn.arg_names)
    unknown = (set(launch.constexprs) | set(launch.types) | set(launch.divisible)) - set(names)
    if unknown:
        raise ValueError(f"{launch.kernel} has no arguments {sorted(unknown)}")
    signature = {n: "constexpr" if n in launch.constexprs else launch.types.get(n, "i32") for n in names}
    src = ASTSource(
        fn=fn,
        signature=signature,
        constexprs={(names.index(c),): v for c, v in launch.constexprs.items()},
        attrs={(names.index(n),): [["tt.divisibility", 16]] for n in launch.divisible},
    )
    options = dict(num_warps=launch.num_warps, num_stages=launch.num_stages, **launch.extra)
    started = time.perf_counter()
    log = ""
    with tempfile.TemporaryFile(mode="w+") as captured:
        # ptxas -v goes to Triton's stdout under TRITON_DUMP_PTXAS_LOG=1: catch it at the descriptor level.
        saved = os.dup(1)
        sys.stdout.flush()
        os.dup2(captured.fileno(), 1)
        try:
            kernel = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        captured.seek(0)
        log = captured.read()
    seconds = time.perf_counter() - started
    ptx = kernel.asm["ptx"]
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(kernel.asm["cubin"])
        cubin.flush()
        sass = subprocess.run(
            [_tool("cuobjdump"), "-sass", cubin.name], capture_output=True, text=True, check=True
        ).stdout
    numbers = _ptxas_log_numbers(log)
    spill_instructions = sum(1 for _, t in _SASS_LINE.findall(sass) if _opcode(t) in ("STL", "LDL"))
    if numbers["spill_store_bytes"] is None:  # no ptxas log from this triton: count spill code instead
        numbers["spill_store_bytes"] = 4 * sum(1 for _, t in _SASS_LINE.findall(sass) if _opcode(t) == "STL")
        numbers["spill_load_bytes"] = 4 * sum(1 for _, t in _SASS_LINE.findall(sass) if _opcode(t) == "LDL")
    if numbers["registers"] is None:  # from the binary itself
        with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
            cubin.write(kernel.asm["cubin"])
            cubin.flush()
            usage = subprocess.run(
                [_tool("cuobjdump"), "-res-usage", cubin.name], capture_output=True, text=True
            ).stdout
        found = re.search(r"REG:(\d+)", usage)
        numbers["registers"] = int(found.group(1)) if found else None

    loop = sass_main_loop(sass)
    ptx_loop = ptx_main_loop(ptx)
    sass_loads = sum(1 for t in loop if _SASS_GLOBAL_LOAD.match(t))
    ptx_loads = len(_PTX_GLOBAL_LOAD.findall(ptx_loop))
    # ptxas may unroll the loop; the body then holds several K iterations (each with the PTX loop's loads).
    unroll = max(1, round(sass_loads / ptx_loads)) if ptx_loads and sass_loads else 1
    per_iteration = len(loop) / unroll if loop else None
    opcodes = Counter(_opcode(t) for t in loop)
    result: dict[str, Any] = {
        "family": launch.family,
        "label": launch.label,
        "regime": launch.regime,
        "arch": arch,
        "num_warps": launch.num_warps,
        "num_stages": launch.num_stages,
        **numbers,
        "spill_instructions": spill_instructions,
        "shared_bytes": int(kernel.metadata.shared),
        "shared_limit": SHARED_LIMIT[arch],
        "mma_sync": len(re.findall(r"\bmma\.sync\b", ptx)),
        "wgmma": len(re.findall(r"\bwgmma\.mma_async\b", ptx)),
        "ldmatrix": len(re.findall(r"\bldmatrix\.sync\b", ptx)),
        "fma_f32": len(re.findall(r"\bfma\.rn\.f32\b", ptx)),
        # Global loads by width: 16-byte vectors (ld.global.v4.b32 / cp.async 16) against 16-bit scalars.
        "loads_16B": len(re.findall(r"\bld\.global(?:\.\w+)*\.v4\.(?:b32|u32|f32|s32)", ptx))
        + len(re.findall(r"\bcp\.async\.c[ag]\.shared\.global \[[^]]*\], \[[^]]*\], (?:16|0x10)\b", ptx)),
        "loads_b16": len(re.findall(_PTX_LOAD_B16, ptx)),
        # ... of which in the main loop (the weight stream; a bias is loaded once, after it)
        "loop_loads_b16": len(re.findall(_PTX_LOAD_B16, ptx_loop)),
        "loop_instructions": per_iteration,
        "loop_unroll": unroll,
        "loop_top_opcodes": dict(opcodes.most_common(8)),
        "compile_seconds": round(seconds, 2),
        **launch.extra_info,
    }
    if launch.weight_bytes_per_iter and per_iteration:
        per_kb = per_iteration * launch.num_warps * 1024 / launch.weight_bytes_per_iter
        result["warp_instructions_per_kb"] = round(per_kb, 1)
        result["issue_share"] = {
            gpu.name: round(gpu.issue_share(per_kb), 3) for gpu in GPUS if gpu.arch == arch
        }
    return result


def _compile_job(job: tuple[Launch, int]) -> dict[str, Any]:
    launch, arch = job
    try:
        return compile_launch(launch, arch)
    except Exception as exc:  # a failed compile is a finding, reported with the rest
        return {
            "family": launch.family,
            "label": launch.label,
            "regime": launch.regime,
            "arch": arch,
            "error": f"{type(exc).__name__}: {str(exc)[-2000:]}",
        }


def _prepare_environment() -> None:
    # Compile for real: no interpreter, no cached binaries from another run (a cache hit runs no ptxas and
    # so prints no ptxas -v log), ptxas -v on stdout.
    os.environ["TRITON_INTERPRET"] = "0"
    os.environ["TRITON_DUMP_PTXAS_LOG"] = "1"
    if not os.environ.get("POLYSPARSE_COMPILED_CACHE"):
        os.environ["POLYSPARSE_COMPILED_CACHE"] = tempfile.mkdtemp(prefix="polysparse-compiled-")
    os.environ["TRITON_CACHE_DIR"] = os.environ["POLYSPARSE_COMPILED_CACHE"]
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns without it; 1 = its default


def compile_all(
    jobs: Iterable[tuple[Launch, int]], workers: int = 1, progress: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Compile every ``(launch, arch)``; failures come back as rows with an ``"error"``."""
    _prepare_environment()
    jobs = list(jobs)
    results = []
    if workers <= 1:
        iterator = map(_compile_job, jobs)
    else:
        pool = ProcessPoolExecutor(workers)
        iterator = pool.map(_compile_job, jobs)
    for i, row in enumerate(iterator, 1):
        results.append(row)
        if progress:
            status = row.get("error", "").splitlines()[0][:80] if "error" in row else "ok"
            progress(f"[{i}/{len(jobs)}] sm_{row['arch']} {row['family']} {row['label']}: {status}")
    if workers > 1:
        pool.shutdown()
    return results


# ----------------------------------------------------------------------------------------------------------
# Findings and the report
# ----------------------------------------------------------------------------------------------------------


def problems(rows: list[dict[str, Any]]) -> list[str]:
    """What must not ship: compile errors, spills in decode configurations, shared memory over the limit."""
    found = []
    for r in rows:
        where = f"sm_{r['arch']} {r['family']} {r['label']}"
        if "error" in r:
            found.append(f"{where}: compile error: {r['error'].splitlines()[0]}")
            continue
        if r["regime"] == "decode" and (r["spill_store_bytes"] or r["spill_load_bytes"]):
            found.append(
                f"{where}: spills {r['spill_store_bytes']} B stored / {r['spill_load_bytes']} B loaded"
            )
        if r["shared_bytes"] > r["shared_limit"]:
            found.append(f"{where}: {r['shared_bytes']} B shared memory > {r['shared_limit']} B")
    return found


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0%}" if value < 5 else f"{value:.0f}"
    return str(value)


def summary_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Range of warp-instructions per KB (and the issue share it needs) per matmul path, regime and arch,
    over the configurations the autotuner may launch there."""
    lines = [
        "| path | regime | arch | configs | warp-instr/KB | share of peak issue at full bandwidth | "
        "with ldmatrix | spilling |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        if "error" in r or r.get("warp_instructions_per_kb") is None:
            continue
        if r.get("not_on_sm80") and r["arch"] == 80:
            continue  # never launched there (it spills): see the table below
        groups.setdefault((r["family"], r["regime"], r["arch"]), []).append(r)
    for (family, regime, arch), group in groups.items():
        per_kb = [r["warp_instructions_per_kb"] for r in group]
        shares = []
        for gpu in (g for g in GPUS if g.arch == arch):
            low, high = gpu.issue_share(min(per_kb)), gpu.issue_share(max(per_kb))
            shares.append(f"{gpu.name} {low:.0%}-{high:.0%}")
        mma = [r for r in group if r["mma_sync"]]
        ldm = f"{sum(1 for r in mma if r['ldmatrix'])}/{len(mma)} mma.sync" if mma else "-"
        spilling = sum(1 for r in group if (r["spill_store_bytes"] or 0) + (r["spill_load_bytes"] or 0))
        cells = [family.split("/")[-1], regime, f"sm_{arch}", str(len(group))]
        cells += [f"{min(per_kb):.0f}-{max(per_kb):.0f}", ", ".join(shares), ldm, str(spilling)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


DECODE_PATHS = (("1", "sparse24_matmul/gemv"), ("2-16", "sparse24_matmul/decode_mma"))
"""Which kernel the 2:4 linear op sends each decode batch size to (``GEMV_MAX_M``, ``DECODE_MAX_M`` in
:mod:`polysparse.kernels.sparse24_matmul`; the test checks the two agree)."""


def decode_by_m_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Per decode batch size: the kernel it runs, its warp-instructions per KB on sm_90 over every variant
    compiled, and whether that meets the issue's goal (<= ISSUE_GOAL_PER_KB, no spills, 16-byte loads)."""
    lines = [
        "| M | kernel | sm_90 warp-instr/KB | H200 issue share | sm_80 warp-instr/KB | spilling | "
        f"<= {ISSUE_GOAL_PER_KB:.0f}/KB, no spills, 16-byte loads |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    h200 = next(g for g in GPUS if g.name == "H200")
    for m, family in DECODE_PATHS:
        group = [r for r in rows if r["family"] == family and "error" not in r]
        per_kb = [(r["arch"], r["warp_instructions_per_kb"]) for r in group if r["loop_instructions"]]
        per_arch = {arch: [v for a, v in per_kb if a == arch] for arch in (80, 90)}
        if not per_arch[90]:
            lines.append(f"| {m} | {family.split('/')[-1]} | - | - | - | - | not compiled |")
            continue
        spilling = sum(1 for r in group if (r["spill_store_bytes"] or 0) + (r["spill_load_bytes"] or 0))
        vectors = all(r.get("loop_loads_b16", r["loads_b16"]) == 0 and r["loads_16B"] > 0 for r in group)
        ok = max(per_arch[90]) <= ISSUE_GOAL_PER_KB and not spilling and vectors
        sm80 = f"{min(per_arch[80]):.0f}-{max(per_arch[80]):.0f}" if per_arch[80] else "-"
        share = f"{h200.issue_share(min(per_arch[90])):.0%}-{h200.issue_share(max(per_arch[90])):.0%}"
        cells = [m, family.split("/")[-1], f"{min(per_arch[90]):.0f}-{max(per_arch[90]):.0f}", share, sm80]
        cells += [str(spilling), "yes" if ok else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(rows: list[dict[str, Any]], header: dict[str, Any]) -> str:
    lines = [
        f"# Compiled kernels, triton {header['triton']}",
        "",
        f"`{header['command']}` on {header['host']}, {header['date']}, commit {header['commit']}. No GPU: "
        "compiled with `triton.compile(..., target=GPUTarget('cuda', arch, 32))`, registers and spills from "
        "`ptxas -v`, loop from the SASS (`cuobjdump -sass`).",
        "",
        "Peak issue = SMs x 4 schedulers x boost clock (A100 108 x 4 x 1.41 GHz; H100/H200 132 x 4 x "
        "1.98 GHz). "
        "Issue share = warp-instructions needed per second to stream the weight at full bandwidth (A100 2.0, "
        "H100 3.35, H200 4.8 TB/s) over peak issue. A prediction from static code, not a measurement.",
        "",
    ]
    found = problems(rows)
    lines += ["## Problems", ""] + ([f"- {p}" for p in found] if found else ["None."]) + [""]
    lines += ["## Decode per batch size: the kernel the op dispatches to", ""]
    lines += decode_by_m_lines(rows) + [""]
    lines += ["## Summary: the 2:4 matmul per regime", ""] + summary_lines(rows) + [""]
    for family in dict.fromkeys(r["family"] for r in rows):
        lines += [f"## {family}", ""]
        cols = ["arch", "config", "regime", "regs", "spill B", "smem B", "mma.sync", "wgmma", "ldmatrix",
                "loop instr", "warp-instr/KB", "issue share"]  # fmt: skip
        lines += ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
        for r in (r for r in rows if r["family"] == family):
            if "error" in r:
                lines.append(f"| sm_{r['arch']} | {r['label']} | {r['regime']} | compile error |" + " |" * 8)
                continue
            share = ", ".join(f"{k} {v:.0%}" for k, v in (r.get("issue_share") or {}).items()) or "-"
            if r.get("not_on_sm80") and r["arch"] == 80:
                share += " (never launched on sm_8x: spills)"
            loop = r["loop_instructions"]
            loop_text = (
                "-"
                if loop is None
                else f"{loop:.0f}" + (f" (/{r['loop_unroll']})" if r["loop_unroll"] > 1 else "")
            )
            cells = [
                f"sm_{r['arch']}", r["label"], r["regime"], r["registers"],
                (r["spill_store_bytes"] or 0) + (r["spill_load_bytes"] or 0), r["shared_bytes"],
                r["mma_sync"], r["wgmma"], r["ldmatrix"], loop_text, r.get("warp_instructions_per_kb"), share,
            ]  # fmt: skip
            lines.append("| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"result folder (default {RESULTS_DIR})")
    p.add_argument("--subset", choices=("all", "ci"), default="all")
    p.add_argument("--arch", default="80,90", help="compute capabilities, comma-separated (default 80,90)")
    p.add_argument("--jobs", type=int, default=1, help="parallel compiles (default 1)")
    p.add_argument(
        "--family",
        default=None,
        help="only launch families containing one of these texts (comma-separated)",
    )
    p.add_argument("--name", default=None, help="result file stem (default compiled-triton-<version>)")
    p.add_argument("--render", type=Path, default=None, help="only re-write the .md of this result .json")
    args = p.parse_args(argv)
    if args.render is not None:
        data = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(markdown(data["results"], data["header"]) + "\n")
        print(f"wrote {args.render.with_suffix('.md')}")
        return 0
    _prepare_environment()
    import platform

    import triton

    from polysparse.bench.report import environment, write_json

    archs = [int(a) for a in args.arch.split(",")]
    bad = [a for a in archs if a not in SHARED_LIMIT]
    if bad:
        p.error(f"--arch takes {sorted(SHARED_LIMIT)}, got {bad}")
    families = args.family.split(",") if args.family else []
    selected = [la for la in launches(args.subset) if not families or any(f in la.family for f in families)]
    jobs = [(la, arch) for la in selected for arch in archs]
    print(f"compiling {len(jobs)} launch configurations with triton {triton.__version__}", flush=True)
    started = time.perf_counter()
    rows = compile_all(jobs, args.jobs, progress=lambda s: print(s, flush=True))
    env = environment(None)
    header = {
        "triton": triton.__version__,
        "command": env["command"] if env.get("command") else " ".join(sys.argv),
        "host": f"{platform.machine()} CPU, {os.cpu_count()} cores",
        "date": env["date"],
        "commit": (env.get("commit") or "?")[:10],
        "seconds": round(time.perf_counter() - started, 1),
    }
    stem = args.name or f"compiled-triton-{triton.__version__}{'-ci' if args.subset == 'ci' else ''}"
    payload = {
        "benchmark": "compiled",
        "header": header,
        "environment": env,
        "gpus": [asdict(g) | {"peak_issue_per_s": g.peak_issue} for g in GPUS],
        "subset": args.subset,
        "problems": problems(rows),
        "results": rows,
    }
    json_path = write_json(args.out / f"{stem}.json", payload)
    md_path = args.out / f"{stem}.md"
    md_path.write_text(markdown(rows, header) + "\n", encoding="utf-8")
    print(f"wrote {json_path} and {md_path} ({header['seconds']} s)")
    for line in payload["problems"]:
        print(f"PROBLEM {line}")
    return 1 if payload["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
