"""The memory side of the compiled-code report: address traces of the decode kernels, the memory model per
compiled row, and its Markdown (:mod:`polysparse.bench.kernels.memory_model` holds the model itself)."""

from __future__ import annotations

from typing import Any

from polysparse.bench.kernels import memory_model
from polysparse.bench.kernels.launch_configs import GPUS, L1_GOAL_SHARE, L2_GOAL_PER_WEIGHT_BYTE, Launch


def _key(family: str, label: str) -> str:
    return f"{family}|{label}"


def add_memory_model(rows: list[dict[str, Any]], selected: list[Launch]) -> None:
    """Trace every launch whose rows kept their TTGIR (one interpreter process for all) and put the memory
    model (``memory``) and the per-GPU limits (``limits``) into those rows; drop the code texts."""
    from polysparse.bench.kernels import address_trace

    by_key = {_key(la.family, la.label): la for la in selected}
    keys = sorted({_key(r["family"], r["label"]) for r in rows if "_ttgir" in r})
    if not keys:
        return
    specs = {
        key: {
            "family": by_key[key].family,
            "constexprs": by_key[key].constexprs,
            "num_warps": by_key[key].num_warps,
            "num_stages": by_key[key].num_stages,
        }
        for key in keys
    }
    traces = address_trace.run(specs)
    for r in rows:
        ttgir, ptx_loop, name = r.pop("_ttgir", None), r.pop("_ptx_loop", None), r.pop("_kernel_name", None)
        if ttgir is None:
            continue
        launch = by_key[_key(r["family"], r["label"])]
        trace = traces[_key(r["family"], r["label"])].get(name)
        if trace is None:
            r["memory"] = {"error": f"no trace of {name}"}
            continue
        memory = memory_model.analyse(ttgir, ptx_loop, trace, launch.num_warps, launch.weight_args)
        r["memory"] = memory
        r["limits"] = {
            gpu.name: memory_model.limits(gpu, r.get("warp_instructions_per_kb"), memory)
            for gpu in GPUS
            if gpu.arch == r["arch"]
        }


def memory_problems(row: dict[str, Any]) -> list[str]:
    """Where a decode row misses the memory budgets: L2 bytes per weight byte on every target, the L1
    share on H100 and H200, a model that does not account for the PTX loop's loads."""
    memory = row.get("memory")
    if memory is None:
        return []
    if "error" in memory or memory.get("l2_bytes_per_weight_byte") is None:
        return [f"memory model: {memory.get('error') or memory.get('notes')}"]
    found = []
    if not memory["ptx_matches"]:
        found.append(f"memory model: the PTX loop's loads {memory['ptx_loads']} do not match the TTGIR's")
    if memory["l2_bytes_per_weight_byte"] > L2_GOAL_PER_WEIGHT_BYTE:
        found.append(f"{memory['l2_bytes_per_weight_byte']:.2f} B from L2 per B of weight")
    for gpu, limit in (row.get("limits") or {}).items():
        if gpu in ("H100", "H200") and limit["shares"].get("L1", 0) > L1_GOAL_SHARE:
            found.append(f"L1 {limit['shares']['L1']:.0%} of {gpu}'s cycles")
    return found


def _share(row: dict[str, Any], gpu: str, key: str) -> str:
    value = (row.get("limits") or {}).get(gpu, {}).get("shares", {}).get(key)
    return "-" if value is None else f"{value:.0%}"


def memory_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Per decode row: L1 cycles and L2 bytes per KB, the share of each limit per GPU, what binds, and the
    DRAM share reachable; then the loads of each kernel's first configuration, request by request."""
    decode = [r for r in rows if (r.get("memory") or {}).get("l1_cycles_per_kb") is not None]
    if not decode:
        return []
    available = ", ".join(f"{g.name} {memory_model.l1_cycles_per_kb_available(g):.1f}" for g in GPUS)
    lines = [
        "## Memory side of the decode kernels (model)",
        "",
        "Per global load / async copy of the main loop: the layout of its pointers (TTGIR), the widest "
        "vector its addresses allow (checked against the PTX loop's loads), and an address trace of one "
        "program from Triton's CPU interpreter on random 2:4 operands (x with 16 rows for the tensor-core "
        "kernel). "
        "L1 cycles per request = max(1, ceil(max(lines / 4, unique bytes / 128))); bytes from L2 = every "
        "sector of an L1-bypassing request (`cp.async.cg`), the distinct sectors of the program for an "
        "L1-allocating one. Shared-memory traffic of the loop (`ld.shared`, `st.shared`, `ldmatrix`) is "
        "counted apart, as conflict-free 128-byte wavefronts. L1 cycles the GPU has per KB at full DRAM "
        f"bandwidth: {available}. Sources: {memory_model.L1_SOURCES}",
        "",
        f"Budgets: <= {L2_GOAL_PER_WEIGHT_BYTE} B from L2 per B of weight, L1 <= {L1_GOAL_SHARE:.0%} of "
        "H100's and H200's cycles. Reachable = 1 / the largest share (issue, L1, L2, L1 + shared), at most "
        "100%.",
        "",
        "| arch | kernel | config | L1 cycles/KB | L2 B/B | shared cycles/KB | GPU | issue | L1 | L2 | "
        "L1 + shared | binds | DRAM reachable |",
        "|" + " --- |" * 13,
    ]
    for r in decode:
        memory = r["memory"]
        for gpu, limit in (r.get("limits") or {}).items():
            cells = [f"sm_{r['arch']}", r["family"].split("/")[-1], r["label"]]
            cells += [f"{memory['l1_cycles_per_kb']:.1f}", f"{memory['l2_bytes_per_weight_byte']:.2f}"]
            cells += [f"{memory['shared_cycles_per_kb']:.1f}", gpu]
            cells += [_share(r, gpu, key) for key in ("issue", "L1", "L2", "L1 + shared")]
            cells += [limit["binds"] or "-", f"{limit['dram_share_reachable']:.0%}"]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Loads of the main loop, first configuration of each kernel and target, per iteration:", ""]
    lines += [
        "| arch | kernel | argument | op | path | B/lane | requests | B/request | sectors/request | "
        "lines/request | L1 cycles | L2 B |",
        "|" + " --- |" * 12,
    ]
    seen = set()
    for r in decode:
        if (r["family"], r["arch"]) in seen:
            continue
        seen.add((r["family"], r["arch"]))
        for s in r["memory"]["sites"]:
            cells = [
                f"sm_{r['arch']}", r["family"].split("/")[-1], s["argument"], s["kind"], s["path"],
                s["width"],
                f"{s['requests_per_iteration']:.0f}", f"{s['bytes_per_request']:.0f}",
                f"{s['sectors_per_request']:.1f}", f"{s['lines_per_request']:.1f}",
                f"{s['l1_cycles_per_iteration']:.0f}", f"{s['l2_bytes_per_iteration']:.0f}",
            ]  # fmt: skip
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines + [""]


def prediction_lines(rows: list[dict[str, Any]], paths: tuple[tuple[str, str], ...]) -> list[str]:
    """Per decode path (``(M, family)``) and GPU, over every variant compiled for the GPU's target: the
    largest share of each limit at full DRAM bandwidth, the limit that binds in the worst variant, and the
    share of DRAM bandwidth reachable there (a prediction from static code, not a measurement)."""
    lines = [
        "| M | kernel | GPU | DRAM TB/s | issue | L1 | L2 | L1 + shared | binds first | DRAM reachable |",
        "|" + " --- |" * 10,
    ]
    for m, family in paths:
        for gpu in GPUS:
            group = [
                r for r in rows
                if r["family"] == family and gpu.name in (r.get("limits") or {})
            ]  # fmt: skip
            if not group:
                continue
            limits = [r["limits"][gpu.name] for r in group]
            worst = min(limits, key=lambda lim: lim["dram_share_reachable"])

            def top(key: str, limits: list[dict[str, Any]] = limits) -> str:
                values = [lim["shares"][key] for lim in limits if key in lim["shares"]]
                return f"{max(values):.0%}" if values else "-"

            cells = [
                m,
                family.split("/")[-1],
                gpu.name,
                f"{gpu.bandwidth_tbs}",
                top("issue"),
                top("L1"),
                top("L2"),
            ]
            cells += [top("L1 + shared"), worst["binds"], f"{worst['dram_share_reachable']:.0%}"]
            lines.append("| " + " | ".join(cells) + " |")
    return lines
