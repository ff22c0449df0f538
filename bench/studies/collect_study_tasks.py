"""The study's questions asked of task accuracy, with paired bootstrap intervals (used by
:mod:`polysparse.bench.studies.collect_study`).

1. Kurz et al.: does the calibration language that wins perplexity in a language also win task accuracy
   in it? Accuracy is each task's own metric (``acc``; ``acc_norm`` for continuation, see
   ``TaskSpec.metric``). Per task and language: whether the diagonal row (calibrated on that language) is
   the best language-calibrated row on perplexity, on accuracy, on both; the paired bootstrap interval of the
   diagonal's accuracy minus the best other language row's; and Spearman's rank correlation between
   perplexity and accuracy across all calibrated rows (negative: lower perplexity goes with higher
   accuracy).
2. Kim et al.: does X->English translation-prompt calibration beat English calibration, and calibration on
   X itself, on X's task accuracy? Paired bootstrap intervals of both differences.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from polysparse.bench.report import markdown_table
from polysparse.sparsify.tasks import paired_bootstrap, parse_task

CALIBRATED = ("language", "mix", "translate")


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); ``None`` with fewer than three pairs or a
    constant side."""
    if len(x) != len(y) or len(x) < 3:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return None if vx == 0 or vy == 0 else cov / (vx * vy) ** 0.5


def _interval(a: dict, b: dict, metric: str, seed: int) -> dict[str, Any]:
    per_item = "correct" if metric == "acc" else "correct_norm"
    found = paired_bootstrap(a[per_item], b[per_item], seed=seed)
    return {
        "difference": found.difference,
        "low": found.low,
        "high": found.high,
        "outside_zero": found.excludes_zero,
    }


def task_answers(study: dict[str, Any], *, seed: int = 0) -> list[dict[str, Any]]:
    """One entry per task and language of a study JSON that has task columns."""
    tasks = study.get("tasks") or []
    rows = study["rows"]
    language_rows = {r["lang"]: r for r in rows if r["kind"] == "language"}
    english = language_rows.get("en")
    out = []
    for task in tasks:
        name, lang = task["task"], task["lang"]
        scored = [r for r in rows if name in r.get("tasks", {})]
        calibrated = [r for r in scored if r["kind"] in CALIBRATED]
        if not calibrated:
            continue
        # Older study JSONs do not record the metric; the task spec decides it (TaskSpec.metric).
        metric = task.get("metric") or parse_task(name).metric
        entry: dict[str, Any] = {"task": name, "family": task["family"], "lang": lang, "metric": metric}
        dense = next((r for r in scored if r["kind"] == "dense"), None)
        magnitude = next((r for r in scored if r["kind"] == "magnitude"), None)
        first = scored[0]["tasks"][name]
        entry.update(n=first["n"], chance=first["chance"])
        entry["dense_acc"] = dense["tasks"][name][metric] if dense else None
        entry["magnitude_acc"] = magnitude["tasks"][name][metric] if magnitude else None
        # Question 1: the diagonal.
        own = language_rows.get(lang)
        candidates = [r for r in calibrated if r["kind"] == "language" and r["perplexity"].get(lang)]
        if own is not None and name in own.get("tasks", {}) and len(candidates) > 1:
            best_ppl = min(candidates, key=lambda r: r["perplexity"][lang])
            best_acc = max(candidates, key=lambda r: r["tasks"][name][metric])
            others = [r for r in candidates if r is not own]
            best_other = max(others, key=lambda r: r["tasks"][name][metric])
            entry.update(
                diagonal_acc=own["tasks"][name][metric],
                best_ppl_calib=best_ppl["lang"],
                best_acc_calib=best_acc["lang"],
                diagonal_wins_ppl=best_ppl is own,
                diagonal_wins_acc=best_acc is own,
                best_other_calib=best_other["lang"],
                diagonal_minus_best_other=_interval(
                    own["tasks"][name], best_other["tasks"][name], metric, seed
                ),
            )
        with_ppl = [r for r in calibrated if r["perplexity"].get(lang)]
        entry["rank_correlation_ppl_acc"] = spearman(
            [r["perplexity"][lang] for r in with_ppl], [r["tasks"][name][metric] for r in with_ppl]
        )
        entry["rank_correlation_rows"] = len(with_ppl)
        # Question 2: translation prompts.
        prompts = next((r for r in calibrated if r["kind"] == "translate" and r["lang"] == lang), None)
        if prompts is not None and lang != "en":
            if english is not None and name in english.get("tasks", {}):
                entry["translate_minus_english_calib"] = _interval(
                    prompts["tasks"][name], english["tasks"][name], metric, seed
                )
            if own is not None and name in own.get("tasks", {}):
                entry["translate_minus_target_calib"] = _interval(
                    prompts["tasks"][name], own["tasks"][name], metric, seed
                )
        out.append(entry)
    return out


def interval_text(value: dict | None) -> str:
    """A paired difference as ``+d [low, high]``, ``*`` where the interval excludes zero; ``-`` if none."""
    if not value:
        return "-"
    mark = " *" if value["outside_zero"] else ""
    return f"{value['difference']:+.3f} [{value['low']:+.3f}, {value['high']:+.3f}]{mark}"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def answers_markdown(entries: Sequence[dict[str, Any]]) -> str:
    headers = [
        "study",
        "task",
        "lang",
        "metric",
        "n",
        "chance",
        "dense",
        "magnitude",
        "diagonal wins ppl / acc",
        "diagonal - best other calib (95% CI)",
        "Spearman(ppl, acc) over calibrated rows",
        "translate - English calib (95% CI)",
        "translate - target calib (95% CI)",
    ]
    rows = []
    for e in entries:
        wins = "-"
        if "diagonal_wins_ppl" in e:
            wins = (
                f"{'yes' if e['diagonal_wins_ppl'] else 'no'} / {'yes' if e['diagonal_wins_acc'] else 'no'}"
            )
            if not e["diagonal_wins_acc"]:
                wins += f" (acc: {e['best_acc_calib']})"
        rho = e.get("rank_correlation_ppl_acc")
        rows.append(
            [
                e["study"],
                f"`{e['task']}`",
                e["lang"],
                e["metric"],
                e["n"],
                _fmt(e["chance"], 2),
                _fmt(e["dense_acc"]),
                _fmt(e["magnitude_acc"]),
                wins,
                interval_text(e.get("diagonal_minus_best_other")),
                "-" if rho is None else f"{rho:+.2f} ({e['rank_correlation_rows']} rows)",
                interval_text(e.get("translate_minus_english_calib")),
                interval_text(e.get("translate_minus_target_calib")),
            ]
        )
    return markdown_table(headers, rows)
