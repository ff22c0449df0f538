"""Compiling one launch for ``sm_<arch>`` without a GPU and reading its code: registers and spills
(``ptxas -v``), shared memory, tensor-core instructions, the SASS main loop (instructions per K iteration)
and, for the memory model, the TTGIR and PTX of the main loop."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from polysparse.bench.kernels.launch_configs import GPUS, SHARED_LIMIT, Launch


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

    module_name, role = launch.kernel.rsplit(":", 1)
    if module_name.endswith(".py"):  # a kernel file outside the package, by path: its function ``role``
        from polysparse.bench.kernels.address_trace import import_file

        fn = getattr(import_file(module_name), role)
    else:
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
    if launch.weight_args:  # kept for the memory model (polysparse.bench.kernels.memory_model), not reported
        result["_ttgir"] = kernel.asm["ttgir"]
        result["_ptx_loop"] = ptx_loop
        result["_kernel_name"] = getattr(fn, "__name__", None) or fn.fn.__name__
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
