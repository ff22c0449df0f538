"""The one-screen summary printed at the end of ``bench/scripts/gpu_all.sh``.

    python -P -m polysparse.bench.speed.gpu_summary RUN_DIR

Reads what the script's steps wrote: ``RUN_DIR/steps.tsv`` (step, status, seconds, expected seconds),
``RUN_DIR/gpu-tests.xml`` (pytest's JUnit report), the 2:4 matmul benchmark JSON and the end-to-end
throughput JSONs listed in ``RUN_DIR/files.txt``, and writes the summary to ``RUN_DIR/summary.md`` too.
"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

SUMMARY_M = (1, 2, 4, 16, 2048, 4096)


def _steps(run: Path) -> list[list[str]]:
    path = run / "steps.tsv"
    if not path.exists():
        return []
    return [line.split("\t") for line in path.read_text().splitlines() if line.strip()]


def _tests(run: Path) -> str:
    path = run / "gpu-tests.xml"
    if not path.exists():
        return "GPU tests: no report"
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        return f"GPU tests: unreadable report ({error})"
    suites = [root] if root.tag == "testsuite" else list(root)
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    passed = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for s in suites
        for case in s.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    bad = total["failures"] + total["errors"]
    line = f"GPU tests: {passed} passed, {bad} failed, {total['skipped']} skipped"
    return "\n".join([line] + [f"  FAILED {name}" for name in failed[:8]])


def _files(run: Path) -> list[Path]:
    path = run / "files.txt"
    if not path.exists():
        return []
    return [Path(line) for line in path.read_text().splitlines() if line.strip()]


def _matmul(payload: dict[str, Any]) -> list[str]:
    rows: dict[tuple[str, str], dict[int, dict[str, float | None]]] = {}
    for r in payload.get("measurements", []):
        if r.get("ms") is None:
            continue
        rows.setdefault((r["model"], r["layer"]), {}).setdefault(r["m"], {})[r["provider"]] = r["ms"]
    ms_cols = [m for m in SUMMARY_M if any(m in by_m for by_m in rows.values())]
    out = [
        f"2:4 matmul ({payload.get('dtype')}): dense ms / triton ms (and best torch sparse) at M tokens",
        "  " + "model/layer".ljust(34) + "".join(f"M={m}".rjust(14) for m in ms_cols),
    ]
    for (model, layer), by_m in rows.items():
        cells = []
        for m in ms_cols:
            t = by_m.get(m, {})
            dense, triton = t.get("dense"), t.get("triton")
            torch_best = min((v for k, v in t.items() if k.startswith("torch") and v), default=None)
            text = f"{dense / triton:.2f}x" if dense and triton else "-"
            if dense and torch_best:
                text += f" ({dense / torch_best:.2f})"
            cells.append(text.rjust(14))
        out.append("  " + f"{model} {layer}"[:34].ljust(34) + "".join(cells))
    return out


def _throughput(payload: dict[str, Any]) -> list[str]:
    name = payload.get("model_name", "?")
    out = []
    for s in payload.get("speedups", []):
        mode = s.get("decode_mode", "eager")
        decode = {
            r["variant"]: r["decode_tokens_per_s"]["median"]
            for r in payload.get("rows", [])
            if (r["batch"], r["prompt"], r.get("decode_mode", "eager")) == (s["batch"], s["prompt"], mode)
        }
        out.append(
            f"  {name[:34].ljust(34)} batch {s['batch']:>3} prompt {s['prompt']:>5} {mode:>5}: decode "
            f"{decode.get('dense', float('nan')):8.1f} -> {decode.get('sparse', float('nan')):8.1f} tok/s "
            f"({s['decode']:.2f}x), prefill {s['prefill']:.2f}x, greedy equal {s.get('greedy_tokens_equal')}"
        )
    ran = payload.get("backends_ran") or []
    if ran:
        out.append(f"    sparse layers ran: {', '.join(sorted({str(r.get('ran')) for r in ran}))}")
    return out


def summarize(run: Path) -> str:
    lines = [f"polysparse gpu_all: {run}"]
    steps = _steps(run)
    if steps:
        lines.append("step".ljust(22) + "status".ljust(10) + "seconds (expected)")
        for step in steps:
            name, status, seconds, expected = (step + ["", "", "", ""])[:4]
            lines.append(f"{name.ljust(22)}{status.ljust(10)}{seconds} ({expected})")
    lines.append(_tests(run))
    for path in _files(run):
        if not path.exists():
            lines.append(f"missing result: {path}")
            continue
        payload = json.loads(path.read_text())
        if payload.get("benchmark") == "sparse24_matmul":
            device = payload.get("environment", {}).get("device")
            lines += [f"[{path}] on {device}"] + _matmul(payload)
        elif "speedups" in payload:
            lines += [f"[{path}]"] + _throughput(payload)
    text = "\n".join(lines)
    (run / "summary.md").write_text("```\n" + text + "\n```\n", encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    args = p.parse_args(argv)
    print(summarize(args.run))


if __name__ == "__main__":
    main()
