"""Questions 3 and 4 of the study asked of task accuracy, with paired bootstrap intervals (used by
:mod:`polysparse.bench.studies.collect_study`; questions 1 and 2:
:mod:`polysparse.bench.studies.collect_study_tasks`).

3. *Mix*: does the equal mixture keep its worst language better than calibrating on one language? A row's
   *worst-language drop* in a task family is the lowest, over the family's languages, of its accuracy minus
   the dense model's on the same items (accuracy is each task's metric, ``acc`` or ``acc_norm``). The mix's
   worst-language drop minus each single-language row's, with a 95% interval from a paired bootstrap that
   resamples the items of every language (stratified, the same resample for all three rows) and takes both
   minima again in every resample, so the worst language may change from one resample to the next.
4. *Recipe*: what the study's ``recipe`` rows (e.g. SparseGPT 2:4 + ADMM + reconstruction) do to each
   language's accuracy against the plain method calibrated on the same text, separating the calibration
   language(s) from unseen ones; paired bootstrap per task, and the perplexity ratio of the two rows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from polysparse.bench.report import markdown_table
from polysparse.bench.studies.collect_study_tasks import interval_text
from polysparse.sparsify.tasks import paired_bootstrap, parse_task

RESAMPLES = 2000


def _per_item(cell: dict[str, Any], metric: str) -> list[int]:
    return cell["correct"] if metric == "acc" else cell["correct_norm"]


def worst_drop(row: Mapping[str, Sequence[float]], dense: Mapping[str, Sequence[float]]) -> tuple[float, str]:
    """``(min over languages of mean(row) - mean(dense), that language)`` (pure; ties: the first)."""
    drops = {lang: sum(row[lang]) / len(row[lang]) - sum(dense[lang]) / len(dense[lang]) for lang in row}
    lang = min(drops, key=drops.__getitem__)
    return drops[lang], lang


def paired_bootstrap_worst(
    a: Mapping[str, Sequence[float]],
    b: Mapping[str, Sequence[float]],
    dense: Mapping[str, Sequence[float]],
    *,
    resamples: int = RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Percentile interval of ``worst_drop(a) - worst_drop(b)``; each resample draws every language's items
    with replacement once and scores ``a``, ``b`` and ``dense`` on the same draw (pure)."""
    langs = list(a)
    if set(b) != set(langs) or set(dense) != set(langs):
        raise ValueError(f"rows cover different languages: {sorted(a)}, {sorted(b)}, {sorted(dense)}")
    for lang in langs:
        if not len(a[lang]) == len(b[lang]) == len(dense[lang]) > 0:
            raise ValueError(f"{lang}: paired rows need the same, non-empty items")
    rng = random.Random(seed)
    draws = []
    for _ in range(resamples):
        drops_a, drops_b = [], []
        for lang in langs:
            n = len(a[lang])
            picks = [rng.randrange(n) for _ in range(n)]
            base = sum(dense[lang][i] for i in picks)
            drops_a.append((sum(a[lang][i] for i in picks) - base) / n)
            drops_b.append((sum(b[lang][i] for i in picks) - base) / n)
        draws.append(min(drops_a) - min(drops_b))
    draws.sort()
    tail = (1 - confidence) / 2
    low = draws[max(0, math.floor(tail * resamples))]
    high = draws[min(resamples - 1, math.ceil((1 - tail) * resamples) - 1)]
    (worst_a, lang_a), (worst_b, lang_b) = worst_drop(a, dense), worst_drop(b, dense)
    return {
        "difference": worst_a - worst_b,
        "low": low,
        "high": high,
        "outside_zero": low > 0 or high < 0,
        "a_worst": worst_a,
        "a_worst_lang": lang_a,
        "b_worst": worst_b,
        "b_worst_lang": lang_b,
    }


def _families(study: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Task family -> column language -> the study's task entry."""
    families: dict[str, dict[str, dict[str, Any]]] = {}
    for task in study.get("tasks") or []:
        families.setdefault(task["family"], {})[task["lang"]] = task
    return families


def _metric(task: dict[str, Any]) -> str:
    return task.get("metric") or parse_task(task["task"]).metric


def mix_answers(study: dict[str, Any], *, seed: int = 0) -> list[dict[str, Any]]:
    """Question 3 per task family: the mix's worst-language drop against each single-language row's."""
    rows = study["rows"]
    dense = next((r for r in rows if r["kind"] == "dense"), None)
    mix = next((r for r in rows if r["kind"] == "mix"), None)
    singles = [r for r in rows if r["kind"] == "language"]
    out = []
    if dense is None or mix is None:
        return out
    for family, by_lang in _families(study).items():

        def correctness(row, by_lang=by_lang):
            if any(task["task"] not in row.get("tasks", {}) for task in by_lang.values()):
                return None
            return {lang: _per_item(row["tasks"][t["task"]], _metric(t)) for lang, t in by_lang.items()}

        base, mixed = correctness(dense), correctness(mix)
        if base is None or mixed is None:
            continue
        entry: dict[str, Any] = {"family": family, "metric": _metric(next(iter(by_lang.values())))}
        entry["languages"] = list(by_lang)
        entry["mix_worst"], entry["mix_worst_lang"] = worst_drop(mixed, base)
        entry["against"] = []
        for row in singles:
            single = correctness(row)
            if single is None:
                continue
            found = paired_bootstrap_worst(mixed, single, base, seed=seed)
            entry["against"].append({"calib": row["lang"], **found})
        out.append(entry)
    return out


def _plain_twin(recipe: dict[str, Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The plain row calibrated on the same text as a recipe row (its language row, or the mix)."""
    if recipe["lang"] is None:
        return next((r for r in rows if r["kind"] == "mix" and r["calib"] == recipe["calib"]), None)
    return next((r for r in rows if r["kind"] == "language" and r["lang"] == recipe["lang"]), None)


def recipe_answers(study: dict[str, Any], *, seed: int = 0) -> list[dict[str, Any]]:
    """Question 4: every recipe row against its plain twin (and dense), per task and language."""
    rows = study["rows"]
    dense = next((r for r in rows if r["kind"] == "dense"), None)
    out = []
    for recipe in (r for r in rows if r["kind"] == "recipe"):
        plain = _plain_twin(recipe, rows)
        if plain is None:
            continue
        for task in study.get("tasks") or []:
            name, lang, metric = task["task"], task["lang"], _metric(task)
            if name not in recipe.get("tasks", {}) or name not in plain.get("tasks", {}):
                continue
            mine, theirs = recipe["tasks"][name], plain["tasks"][name]
            found = paired_bootstrap(_per_item(mine, metric), _per_item(theirs, metric), seed=seed)
            ppl_recipe, ppl_plain = recipe["perplexity"].get(lang), plain["perplexity"].get(lang)
            out.append(
                {
                    "recipe": recipe["label"],
                    "plain": plain["label"],
                    "task": name,
                    "family": task["family"],
                    "lang": lang,
                    "metric": metric,
                    "seen": recipe["lang"] is None or recipe["lang"] == lang,
                    "n": mine["n"],
                    "recipe_acc": mine[metric],
                    "plain_acc": theirs[metric],
                    "dense_acc": dense["tasks"][name][metric]
                    if dense and name in dense.get("tasks", {})
                    else None,
                    "recipe_minus_plain": {
                        "difference": found.difference,
                        "low": found.low,
                        "high": found.high,
                        "outside_zero": found.excludes_zero,
                    },
                    "perplexity_recipe_over_plain": ppl_recipe / ppl_plain
                    if ppl_recipe and ppl_plain
                    else None,
                }
            )
    return out


def mix_markdown(entries: Sequence[dict[str, Any]]) -> str:
    # Each column's header beside the cell it shows (one row per single-language row the mix is set against).
    columns: dict[str, Callable[[dict[str, Any], dict[str, Any]], str]] = {
        "study": lambda e, other: e["study"],
        "task family": lambda e, other: f"`{e['family']}`",
        "metric": lambda e, other: e["metric"],
        "mix: worst drop (lang)": lambda e, other: f"{e['mix_worst']:+.3f} ({e['mix_worst_lang']})",
        "single-language row": lambda e, other: f"calib={other['calib']}",
        "its worst drop": lambda e, other: f"{other['b_worst']:+.3f} ({other['b_worst_lang']})",
        "mix - single (95% CI)": lambda e, other: interval_text(other),
    }
    body = [[cell(e, other) for cell in columns.values()] for e in entries for other in e["against"]]
    return markdown_table(list(columns), body)


def recipe_markdown(entries: Sequence[dict[str, Any]]) -> str:
    def optional(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    columns: dict[str, Callable[[dict[str, Any]], Any]] = {
        "study": lambda e: e["study"],
        "recipe row": lambda e: e["recipe"],
        "task": lambda e: f"`{e['task']}`",
        "lang": lambda e: e["lang"],
        "calibration language?": lambda e: "yes" if e["seen"] else "no",
        "n": lambda e: e["n"],
        "dense": lambda e: optional(e["dense_acc"]),
        "plain": lambda e: f"{e['plain_acc']:.3f}",
        "recipe": lambda e: f"{e['recipe_acc']:.3f}",
        "recipe - plain (95% CI)": lambda e: interval_text(e["recipe_minus_plain"]),
        "ppl recipe / plain": lambda e: optional(e["perplexity_recipe_over_plain"]),
    }
    return markdown_table(list(columns), [[cell(e) for cell in columns.values()] for e in entries])
