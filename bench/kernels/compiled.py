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
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from polysparse.bench.kernels import memory_model
from polysparse.bench.kernels.compiled_code import (  # noqa: F401 (the module's public face, as before)
    _opcode,
    _prepare_environment,
    compile_all,
    compile_launch,
    ptx_main_loop,
    sass_main_loop,
)
from polysparse.bench.kernels.launch_configs import (  # noqa: F401
    GPUS,
    ISSUE_GOAL_PER_KB,
    L1_GOAL_SHARE,
    L2_GOAL_PER_WEIGHT_BYTE,
    SHARED_LIMIT,
    Gpu,
    Launch,
    launches,
)
from polysparse.bench.kernels.memory_report import (
    add_memory_model,
    memory_lines,
    memory_problems,
    prediction_lines,
)

RESULTS_DIR = Path("bench") / "results" / "kernels"
"""The default ``--out``, relative to the working directory: the project's results folder when run from the
repository root, and never a folder inside the installed package."""
HARDWARE_SOURCES = (
    "SMs, boost clock and DRAM bandwidth from NVIDIA's data sheets (A100 SXM 80 GB: 108 SMs, 1410 MHz, "
    "2.0 TB/s; H100 SXM5: 132 SMs, 1980 MHz, 3.35 TB/s; H200 SXM: the same GH100 at 4.8 TB/s); issue: 4 "
    "schedulers per SM, one warp-instruction each per clock (NVIDIA's Ampere and Hopper architecture "
    "whitepapers); L2 5120 B/clock (A100 whitepaper, L2 read bandwidth; assumed for H100/H200)."
)

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
        found += [f"{where}: {p}" for p in memory_problems(r)]
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
    """Per decode batch size: the kernel it runs and, over every variant compiled, its warp-instructions
    per KB (sm_90, sm_80), bytes from L2 per byte of weight and L1 share on H100/H200 (the memory model),
    and whether it meets every budget: <= ISSUE_GOAL_PER_KB on sm_90, <= L2_GOAL_PER_WEIGHT_BYTE on both
    targets, L1 <= L1_GOAL_SHARE on H100 and H200, no spills, 16-byte loads."""
    lines = [
        "| M | kernel | sm_90 warp-instr/KB | H200 issue share | sm_80 warp-instr/KB | L2 B per B | "
        "L1 share H100 / H200 | spilling | "
        f"<= {ISSUE_GOAL_PER_KB:.0f}/KB, <= {L2_GOAL_PER_WEIGHT_BYTE} B/B, L1 <= {L1_GOAL_SHARE:.0%}, "
        "no spills, 16-byte loads |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    h200 = next(g for g in GPUS if g.name == "H200")

    def span(values: list[float], fmt: str) -> str:
        return f"{min(values):{fmt}}-{max(values):{fmt}}" if values else "-"

    for m, family in DECODE_PATHS:
        group = [r for r in rows if r["family"] == family and "error" not in r]
        per_kb = [(r["arch"], r["warp_instructions_per_kb"]) for r in group if r["loop_instructions"]]
        per_arch = {arch: [v for a, v in per_kb if a == arch] for arch in (80, 90)}
        if not per_arch[90]:
            lines.append(f"| {m} | {family.split('/')[-1]} | - | - | - | - | - | - | not compiled |")
            continue
        spilling = sum(1 for r in group if (r["spill_store_bytes"] or 0) + (r["spill_load_bytes"] or 0))
        vectors = all(r.get("loop_loads_b16", r["loads_b16"]) == 0 and r["loads_16B"] > 0 for r in group)
        modeled = [r for r in group if (r.get("memory") or {}).get("l2_bytes_per_weight_byte") is not None]
        l2 = [r["memory"]["l2_bytes_per_weight_byte"] for r in modeled]
        l1 = {
            gpu: [r["limits"][gpu]["shares"]["L1"] for r in modeled if gpu in r.get("limits", {})]
            for gpu in ("H100", "H200")
        }
        memory_ok = len(modeled) == len(group) and not any(memory_problems(r) for r in group)
        ok = max(per_arch[90]) <= ISSUE_GOAL_PER_KB and not spilling and vectors and memory_ok
        share = f"{h200.issue_share(min(per_arch[90])):.0%}-{h200.issue_share(max(per_arch[90])):.0%}"
        cells = [m, family.split("/")[-1], span(per_arch[90], ".0f"), share, span(per_arch[80], ".0f")]
        cells += [span(l2, ".2f"), f"{span(l1['H100'], '.0%')} / {span(l1['H200'], '.0%')}"]
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
    if header.get("compiled_at"):  # --merge: families recompiled at a later commit than the rest
        at = ", ".join(f"{family} {commit}" for family, commit in header["compiled_at"].items())
        lines += [f"Families by the commit they were compiled at (`--merge`): {at}.", ""]
    found = problems(rows)
    lines += ["## Problems", ""] + ([f"- {p}" for p in found] if found else ["None."]) + [""]
    lines += ["## Decode per batch size: the kernel the op dispatches to", ""]
    lines += decode_by_m_lines(rows) + [""]
    if any(r.get("limits") for r in rows):
        lines += ["## Prediction per GPU: the decode kernels at full DRAM bandwidth", ""]
        lines += [
            "Share of each limit the dispatched kernel needs to stream its weight at the GPU's DRAM "
            "bandwidth (largest over the variants compiled; L2 at 5120 B/clock, the A100 whitepaper's "
            "figure, assumed for H100/H200), the limit that binds first, and the share of DRAM bandwidth "
            "it can reach: a prediction from the compiled code until `bench/scripts/gpu_all.sh` has run.",
            "",
            f"Hardware rates: {HARDWARE_SOURCES} {memory_model.L1_SOURCES}",
            "",
        ]
        lines += prediction_lines(rows, DECODE_PATHS) + [""]
    lines += memory_lines(rows)
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


def _merged(
    path: Path, rows: list[dict[str, Any]], header: dict[str, Any], families: set[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``rows`` of ``families`` in place of theirs in the result file at ``path``, its other rows kept."""
    old = json.loads(path.read_text())
    kept = [r for r in old["results"] if r["family"] not in families]
    compiled_at = dict(old["header"].get("compiled_at") or {})
    for r in kept:
        compiled_at.setdefault(r["family"], old["header"]["commit"])
    for family in families:
        compiled_at[family] = header["commit"]
    seconds = round(old["header"].get("seconds", 0) + header["seconds"], 1)
    merged_rows = [r for r in rows] + kept
    order = {family: i for i, family in enumerate(dict.fromkeys(r["family"] for r in old["results"]))}
    merged_rows.sort(key=lambda r: order.get(r["family"], len(order)))
    return merged_rows, header | {"compiled_at": compiled_at, "seconds": seconds}


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
    p.add_argument(
        "--merge",
        action="store_true",
        help="with --family: replace only those families' rows in the existing result file, keep the others "
        "(the header records which families were compiled at which commit)",
    )
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
    print("address traces of the decode kernels (Triton's CPU interpreter)", flush=True)
    add_memory_model(rows, selected)
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
    if args.merge:
        rows, header = _merged(args.out / f"{stem}.json", rows, header, {la.family for la in selected})
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
