"""Answer the study's three questions across every study JSON in a folder, in one table.

``python -P -m polysparse.bench.studies.collect_study bench/results/study/gemma-3-270m`` reads each
``study-*.json`` that ``polysparse study`` wrote there and writes ``summary.json`` and ``summary.md``:

1. *Diagonal*: for how many evaluation languages the row calibrated on that language is the best
   language-calibrated row, and by how much: the diagonal cell over the median of the other languages'
   rows in that column (geometric mean over the columns; below 1 means target-language calibration helps).
2. *Translation prompts*: X->English translation-prompt calibration against calibration on X itself and
   against calibration on English (the common default), all evaluated on X (geometric means of the
   ratios; below 1 means the prompts do better).
3. *Mix*: the worst language's perplexity ratio to dense for the equal mixture, against the best and the
   median of the single-language rows' worst ratios.

Studies run with ``--tasks`` also get questions 1 and 2 asked of task accuracy, with paired bootstrap
intervals (:mod:`polysparse.bench.studies.collect_study_tasks`), in a second table, and questions 3 (the
mix's worst language) and 4 (``recipe`` rows against the plain method) in two more
(:mod:`polysparse.bench.studies.collect_study_answers`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

from polysparse.bench.report import environment, markdown_table, write_json


def _geometric_mean(values: list[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def summarise(study: dict[str, Any]) -> dict[str, Any]:
    """The three answers for one study JSON (as ``polysparse study`` writes it)."""
    langs = study["plan"]["langs"]
    rows = study["rows"]
    dense = next(r for r in rows if r["kind"] == "dense")["perplexity"]
    own = {r["lang"]: r["perplexity"] for r in rows if r["kind"] == "language"}
    advantage = []
    for lang in langs:
        others = [own[k][lang] for k in own if k != lang and own[k].get(lang)]
        if own.get(lang, {}).get(lang) and others:
            advantage.append(own[lang][lang] / statistics.median(others))
    summary = study["summary"]
    translation = summary["translation_vs_target_language"]
    prompts = {r["lang"]: r["perplexity"][r["lang"]] for r in rows if r["kind"] == "translate"}
    over_english = [
        value / own["en"][lang] for lang, value in prompts.items() if own.get("en", {}).get(lang) and value
    ]
    worst = summary["worst_language_ratio_to_dense"]
    # A study still running has rows without cells: they have no worst ratio yet.
    single_worst = [
        worst[r["label"]]["worst_ratio_to_dense"]
        for r in rows
        if r["kind"] == "language" and r["label"] in worst
    ]
    mix = next((r for r in rows if r["kind"] == "mix"), None)
    mix_worst = worst.get(mix["label"], {}).get("worst_ratio_to_dense") if mix else None
    return {
        "method": study["plan"]["method"],
        "sparsity": study["plan"]["pattern"] or f"{round(study['plan']['sparsity'] * 100)}%",
        "languages": len(langs),
        "diagonal_wins": summary["diagonal_wins"],
        "diagonal_over_median_other": _geometric_mean(advantage),
        "translation_over_target": _geometric_mean([t["ratio"] for t in translation.values()]),
        "translation_better_in": sorted(lang for lang, t in translation.items() if t["ratio"] < 1),
        "translation_over_english_calib": _geometric_mean(over_english),
        "translation_languages": len(translation),
        "mix_worst_ratio": mix_worst,
        "best_single_worst_ratio": min(single_worst) if single_worst else None,
        "median_single_worst_ratio": statistics.median(single_worst) if single_worst else None,
        "dense_perplexity": dense,
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def collect(folder: Path) -> dict[str, Any]:
    studies = sorted(folder.glob("study-*.json"))
    if not studies:
        raise SystemExit(f"no study-*.json in {folder}")
    from polysparse.bench.studies.collect_study_answers import mix_answers, recipe_answers
    from polysparse.bench.studies.collect_study_tasks import answers_markdown, task_answers

    entries, task_entries, mix_entries, recipe_entries = [], [], [], []
    for path in studies:
        study = json.loads(path.read_text(encoding="utf-8"))
        entries.append({"file": path.name, **summarise(study), "study_environment": study["environment"]})
        label = f"{entries[-1]['method']} {entries[-1]['sparsity']}"
        task_entries += [{"study": label, **e} for e in task_answers(study)]
        mix_entries += [{"study": label, **e} for e in mix_answers(study)]
        recipe_entries += [{"study": label, **e} for e in recipe_answers(study)]
    rows = [
        [
            e["method"],
            e["sparsity"],
            f"{e['diagonal_wins']}/{e['languages']}",
            _fmt(e["diagonal_over_median_other"]),
            _fmt(e["translation_over_target"]),
            f"{len(e['translation_better_in'])}/{e['translation_languages']}"
            + (f" ({', '.join(e['translation_better_in'])})" if e["translation_better_in"] else ""),
            _fmt(e["translation_over_english_calib"]),
            _fmt(e["mix_worst_ratio"]),
            _fmt(e["best_single_worst_ratio"]),
            _fmt(e["median_single_worst_ratio"]),
        ]
        for e in entries
    ]
    headers = [
        "method",
        "sparsity",
        "best on diagonal",
        "diagonal / median other calib",
        "translate / target calib",
        "translation better in",
        "translate / English calib",
        "mix: worst-language ratio to dense",
        "best single-language row: worst ratio",
        "median single-language row: worst ratio",
    ]
    payload = {"studies": entries, "environment": environment()}
    if task_entries:
        payload["tasks"] = task_entries
    if mix_entries:
        payload["tasks_mix"] = mix_entries
    if recipe_entries:
        payload["tasks_recipe"] = recipe_entries
    write_json(folder / "summary.json", payload)
    text = (
        "The study's questions answered from each matrix in this folder "
        f"(`python -P -m polysparse.bench.studies.collect_study {folder}`). Ratios below 1 favour the first "
        "term; geometric means over the evaluation languages.\n\n" + markdown_table(headers, rows)
    )
    if task_entries:
        text += (
            "\n\n## Task accuracy\n\nQuestion 1 (Kurz et al.): does the row calibrated on the task's "
            "language win perplexity and accuracy in it; its accuracy minus the best other "
            "language-calibrated row's; "
            "Spearman's rank correlation of perplexity and accuracy across the calibrated rows (negative: "
            "lower perplexity, higher accuracy). Question 2 (Kim et al.): X->English translation-prompt "
            "calibration minus English calibration, and minus calibration on X. Intervals: 95% paired "
            "bootstrap over the items (2000 resamples); * marks those that exclude zero.\n\n"
            + answers_markdown(task_entries)
        )
    text += _answers_text(mix_entries, recipe_entries)
    (folder / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    return payload


def _answers_text(mix_entries: list[dict[str, Any]], recipe_entries: list[dict[str, Any]]) -> str:
    from polysparse.bench.studies.collect_study_answers import mix_markdown, recipe_markdown

    text = ""
    if mix_entries:
        text += (
            "\n\nQuestion 3: the mix's worst language. A row's worst-language drop is its lowest accuracy "
            "minus dense over the family's languages; mix minus each single-language row, 95% paired "
            "bootstrap stratified by language (both minima recomputed in every resample); * excludes zero."
            "\n\n" + mix_markdown(mix_entries)
        )
    if recipe_entries:
        text += (
            "\n\nQuestion 4: the recipe rows against the plain method calibrated on the same text, per task "
            "and language (calibration language or unseen); 95% paired bootstrap; * excludes zero.\n\n"
            + recipe_markdown(recipe_entries)
        )
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="folder holding the study-*.json files")
    collect(Path(parser.parse_args(argv).folder))


if __name__ == "__main__":
    main()
