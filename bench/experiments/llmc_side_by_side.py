"""polysparse and llm-compressor side by side: the same token windows, the same evaluation text, one table.

Three steps (``bench/scripts/llmc_side_by_side.sh`` runs them):

1. ``windows``: write the calibration windows polysparse draws for ``--calib`` (``input_ids`` and
   ``attention_mask``) to a file that llm-compressor's environment reads (``bench/scripts/llmc_oneshot.py``);
2. ``prune``: prune with polysparse (``prune_job``, timed like llm-compressor's run: load, prune, save);
3. ``table``: score every pruned folder (both tools) on the study's held-out windows and write one table of
   perplexity per language and wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from statistics import geometric_mean
from typing import Any

from polysparse.bench.plans import StudyPlan
from polysparse.bench.report import environment, markdown_table, write_json
from polysparse.bench.studies.study import eval_spec
from polysparse.sparsify.calibration import calibration_windows, evaluation_windows
from polysparse.sparsify.calibration_spec import CalibrationSpec
from polysparse.sparsify.evaluate import perplexity
from polysparse.sparsify.loading import load_causal_lm


def export_windows(model: str, calib: str, nsamples: int, seqlen: int, seed: int, out: Path) -> None:
    import torch

    from polysparse.bench.assets import resolve_model

    _, tokenizer = load_causal_lm(resolve_model(model), "auto")
    windows = calibration_windows(CalibrationSpec.parse(calib), tokenizer, nsamples, seqlen, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"input_ids": windows.input_ids, "attention_mask": windows.attention_mask}, out)


def prune_polysparse(
    model: str, recipe: str, calib: str, nsamples: int, seqlen: int, seed: int, out: Path
) -> None:
    import torch

    from polysparse.bench.jobs import prune_job
    from polysparse.bench.plans import PruneRun
    from polysparse.bench.recipes import Recipe

    config = Recipe.parse(recipe).config(nsamples, seqlen, seed)
    load_before, started = os.getloadavg()[0], time.perf_counter()
    payload = prune_job(PruneRun(model=model, out=str(out), calib=calib, quiet=True), config)
    record = {
        "tool": "polysparse",
        "recipe": recipe,
        "seed": seed,
        "wall_seconds": time.perf_counter() - started,
        "prune_seconds": payload["summary"]["seconds"],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
    }
    write_json(out / "timing.json", record)


def table(folders: list[Path], model: str, eval_langs: tuple[str, ...], out: Path, seed: int = 0) -> None:
    from polysparse.bench.assets import resolve_model

    plan = StudyPlan(model=model, langs=eval_langs, eval_windows=4, eval_seqlen=256, seed=seed)
    specs = {lang: eval_spec(plan, lang)[0] for lang in eval_langs}
    rows: list[dict[str, Any]] = []
    held_out: dict[str, Any] = {}
    _, tokenizer = load_causal_lm(resolve_model(model), "auto")  # llm-compressor saves no tokenizer
    for folder in [None, *folders]:
        path = resolve_model(model) if folder is None else folder
        lm, _ = load_causal_lm(path, "auto", tokenizer=False)
        if folder is None:
            record = {"tool": "-", "recipe": "dense"}
        else:
            timing = folder / ("llmc.json" if (folder / "llmc.json").exists() else "timing.json")
            record = json.loads(timing.read_text())
        record["perplexity"] = {}
        for lang in eval_langs:
            if specs[lang] not in held_out:
                held_out[specs[lang]] = evaluation_windows(specs[lang], tokenizer, 4, 256, seed)
            record["perplexity"][lang] = perplexity(lm, held_out[specs[lang]]).perplexity
        rows.append(record)
        del lm
    dense = rows[0]["perplexity"]
    ppl_headers = [f"{lang} ppl (x dense)" for lang in eval_langs]
    headers = ["tool", "recipe", *ppl_headers, "wall s", "threads", "load avg"]
    body = []
    for row in rows:
        cells = [row["tool"], row["recipe"]]
        cells += [f"{row['perplexity'][g]:.2f} ({row['perplexity'][g] / dense[g]:.2f}x)" for g in eval_langs]
        wall = row.get("wall_seconds")
        cells.append(f"{wall:.0f}" if wall else "-")
        cells.append(str(row.get("torch_threads", "-")))
        before, after = row.get("load_average_before"), row.get("load_average_after")
        cells.append(f"{before:.1f} / {after:.1f}" if before is not None else "-")
        body.append(cells)
    out.mkdir(parents=True, exist_ok=True)
    evaluated_on = {lang: str(spec) for lang, spec in specs.items()}
    write_json(out / "side-by-side.json", {"rows": rows, "eval": evaluated_on, "environment": environment()})
    note = (
        "Both tools calibrated on the same token windows; perplexity on the study's held-out windows "
        f"({', '.join(f'`{s}`' for s in specs.values())}, 4 x 256 tokens). Wall: load, calibrate, prune "
        "and save, one process per run; threads: torch's intra-op threads where the run recorded them; load "
        "average (1 min) before / after each run."
    )
    text = note + "\n\n" + markdown_table(headers, body) + "\n"
    (out / "side-by-side.md").write_text(text, encoding="utf-8")


def seeds_summary(tables: list[Path], recipe: str, out: Path) -> dict[str, Any]:
    """One recipe's perplexity on both tools over several side-by-side tables (one per draw of windows).

    Writes ``seeds.{json,md}``: per table the two tools' perplexities and polysparse / llm-compressor per
    language, then the geometric mean of those ratios per language and over every cell.
    """
    rows: list[dict[str, Any]] = []
    for table_dir in tables:
        payload = json.loads((table_dir / "side-by-side.json").read_text())
        by_tool = {r["tool"]: r for r in payload["rows"] if r.get("recipe") == recipe}
        if set(by_tool) != {"polysparse", "llmcompressor"}:
            raise SystemExit(f"{table_dir}: no {recipe!r} row for both tools")
        ours, theirs = by_tool["polysparse"], by_tool["llmcompressor"]
        langs = list(theirs["perplexity"])
        rows.append(
            {
                "table": str(table_dir),
                "seed": ours.get("seed", 0),
                "llmcompressor": theirs["perplexity"],
                "polysparse": ours["perplexity"],
                "ratio": {g: ours["perplexity"][g] / theirs["perplexity"][g] for g in langs},
                "wall_seconds": {"llmcompressor": theirs["wall_seconds"], "polysparse": ours["wall_seconds"]},
            }
        )
    langs = list(rows[0]["ratio"])
    summary = {g: geometric_mean([r["ratio"][g] for r in rows]) for g in langs}
    summary["all"] = geometric_mean([r["ratio"][g] for r in rows for g in langs])
    ahead = sum(r["ratio"][g] < 1.0 for r in rows for g in langs)
    result = {"recipe": recipe, "rows": rows, "geomean_ratio": summary, "polysparse_lower": ahead}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "seeds.json", result)
    headers = ["seed", *[f"llm-compressor {g}" for g in langs], *[f"polysparse {g}" for g in langs]]
    headers += [f"polysparse / llmc {g}" for g in langs]
    body = [
        [r["seed"]]
        + [f"{r[tool][g]:.2f}" for tool in ("llmcompressor", "polysparse") for g in langs]
        + [f"{r['ratio'][g]:.3f}" for g in langs]
        for r in rows
    ]
    body.append(["geometric mean", *[""] * (2 * len(langs)), *[f"{summary[g]:.3f}" for g in langs]])
    note = (
        f"{recipe}, the same calibration windows for both tools in each row (one draw per seed), "
        f"perplexity on the same held-out windows. polysparse lower in {ahead} of {len(rows) * len(langs)} "
        f"cells; geometric mean of polysparse / llm-compressor over every cell {summary['all']:.3f}."
    )
    (out / "seeds.md").write_text(note + "\n\n" + markdown_table(headers, body) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -P -m polysparse.bench.experiments.llmc_side_by_side")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("windows")
    p = sub.add_parser("prune")
    t = sub.add_parser("table")
    s = sub.add_parser("seeds", help="one recipe over several tables (draws of windows)")
    s.add_argument("--recipe", default="sparsegpt 2:4")
    s.add_argument("--out", required=True)
    s.add_argument("tables", nargs="+", help="folders holding side-by-side.json")
    for q in (w, p, t):
        q.add_argument("--model", default="gemma-3-270m")
    for q in (w, p):
        q.add_argument("--calib", default="handbook:de")
        q.add_argument("--nsamples", type=int, default=64)
        q.add_argument("--seqlen", type=int, default=512)
        q.add_argument("--seed", type=int, default=0, help="which draw of calibration windows")
        q.add_argument("--out", required=True)
    p.add_argument("--recipe", required=True)
    t.add_argument("--eval-langs", default="de,en")
    t.add_argument("--out", required=True)
    t.add_argument("folders", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "windows":
        export_windows(args.model, args.calib, args.nsamples, args.seqlen, args.seed, Path(args.out))
    elif args.command == "seeds":
        seeds_summary([Path(f) for f in args.tables], args.recipe, Path(args.out))
    elif args.command == "prune":
        prune_polysparse(
            args.model, args.recipe, args.calib, args.nsamples, args.seqlen, args.seed, Path(args.out)
        )
    else:
        table([Path(f) for f in args.folders], args.model, tuple(args.eval_langs.split(",")), Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
