"""Task columns of the study: which task specs a study runs, their cells, tables and heatmaps.

A study's ``--tasks`` specs may use ``X`` for the language (``translation-choice:X->en:gettext``,
``translation-choice:en->X:gettext``, ``continuation-choice:X:handbook``): each expands over the study's
languages, leaving out a language where source and target would be the same or where the source has no
text in it (logged, and listed under ``skipped_tasks`` in the study JSON). Specs without ``X`` run as given.
Each row's accuracy on a task is one cell (per-item correctness kept, for paired bootstrap intervals).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polysparse.bench.report import markdown_table
from polysparse.sparsify.tasks import Item, TaskError, TaskSpec, build_items, parse_task

log = logging.getLogger("polysparse.bench")

_TEMPLATE = re.compile(r"^(translation-choice:)([^:]+)->([^:]+)(:.+)$|^(continuation-choice:)([^:]+)(:.+)$")


def is_template(spec: str) -> bool:
    match = _TEMPLATE.match(spec.strip())
    if not match:
        return False
    return "X" in {match.group(2), match.group(3), match.group(6)}


def expand(spec: str, lang: str) -> str | None:
    """``spec`` with ``X`` replaced by ``lang``; ``None`` where that makes source equal target."""
    match = _TEMPLATE.match(spec.strip())
    if match is None:
        return spec
    if match.group(1):
        src = lang if match.group(2) == "X" else match.group(2)
        tgt = lang if match.group(3) == "X" else match.group(3)
        return None if src == tgt else f"{match.group(1)}{src}->{tgt}{match.group(4)}"
    return f"{match.group(5)}{lang if match.group(6) == 'X' else match.group(6)}{match.group(7)}"


def validate_specs(specs: Sequence[str], langs: Sequence[str]) -> None:
    """Parse every spec (templates with each language) so a malformed one fails before any work."""
    for spec in specs:
        for lang in langs if is_template(spec) else [None]:
            concrete = expand(spec, lang) if lang else spec
            if concrete:
                parse_task(concrete)


def study_tasks(
    specs: Sequence[str], langs: Sequence[str], *, limit: int, seed: int
) -> tuple[list[tuple[TaskSpec, list[Item]]], list[dict[str, str]]]:
    """Every concrete task with its items, and the template expansions left out (with the reason)."""
    prepared, skipped, seen = [], [], set()
    for spec in specs:
        concrete = [(expand(spec, lang), True) for lang in langs] if is_template(spec) else [(spec, False)]
        for name, from_template in concrete:
            if name is None or name in seen:
                continue
            seen.add(name)
            task = parse_task(name)
            try:
                items = build_items(task, seed=seed, limit=limit)
            except TaskError as error:
                if not from_template:
                    raise
                log.warning("leaving out %s: %s", name, error)
                skipped.append({"task": name, "reason": str(error)})
                continue
            if len(items) < limit:
                log.warning(
                    "%s: only %d items (asked for %d): all the held-out text gives", name, len(items), limit
                )
            prepared.append((task, items))
    return prepared, skipped


def _columns(by_lang: dict[str, TaskSpec], langs: Sequence[str]) -> list[str]:
    """The study's languages first, in its order, then any other language a task measures."""
    return [lang for lang in langs if lang in by_lang] + [code for code in by_lang if code not in langs]


def task_tables(
    rows: Sequence[Any],
    tasks: Sequence[TaskSpec],
    results: dict[tuple[str, str], dict[str, Any]],
    langs: Sequence[str],
) -> str:
    """One Markdown table per task family: calibration rows x languages, the family's metric ± se (n, chance
    below): ``acc``, or ``acc_norm`` for continuation (:attr:`TaskSpec.metric`)."""
    families: dict[str, dict[str, TaskSpec]] = {}
    for task in tasks:
        families.setdefault(task.family, {})[task.lang] = task
    parts = []
    for family, by_lang in families.items():
        columns = [lang for lang in langs if lang in by_lang] + [
            code for code in by_lang if code not in langs
        ]
        best: dict[str, str] = {}
        for lang in columns:
            metric = by_lang[lang].metric
            scored = [
                (results[(r.label, by_lang[lang].name)][metric], r.label)
                for r in rows
                if r.kind == "language" and (r.label, by_lang[lang].name) in results
            ]
            if scored:
                best[lang] = max(scored)[1]
        body = []
        for r in rows:
            cells = []
            for lang in columns:
                cell = results.get((r.label, by_lang[lang].name))
                if cell is None:
                    cells.append("")
                    continue
                metric = by_lang[lang].metric
                text = f"{cell[metric]:.3f} ± {cell[metric + '_stderr']:.3f}"
                cells.append(f"**{text}**" if best.get(lang) == r.label else text)
            body.append([r.label] + cells)
        footer = []
        for lang in columns:
            cell = next((results[k] for k in results if k[1] == by_lang[lang].name), None)
            footer.append("" if cell is None else f"n={cell['n']}, chance {cell['chance']:.2f}")
        body.append(["*items*"] + footer)
        metric = next(iter(by_lang.values())).metric
        parts.append(
            f"#### `{family}`: `{metric}` (± standard error); bold: the best language-calibrated row\n\n"
            + markdown_table(["calibration \\ task language"] + columns, body)
        )
    return "\n\n".join(parts)


def task_heatmaps(
    rows: Sequence[Any],
    tasks: Sequence[TaskSpec],
    results: dict[tuple[str, str], dict[str, Any]],
    langs: Sequence[str],
    stem: Path,
    title: str,
) -> list[Path]:
    """One PNG per task family: rows x languages, the family's metric above chance in colour, values
    annotated."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed (pip install 'polysparse[plot]'); no task heatmaps written")
        return []
    families: dict[str, dict[str, TaskSpec]] = {}
    for task in tasks:
        families.setdefault(task.family, {})[task.lang] = task
    paths = []
    for family, by_lang in families.items():
        columns = [lang for lang in langs if lang in by_lang] + [
            code for code in by_lang if code not in langs
        ]
        grid, labels = [], []
        for r in rows:
            line, text = [], []
            for lang in columns:
                cell = results.get((r.label, by_lang[lang].name))
                metric = by_lang[lang].metric
                line.append(float("nan") if cell is None else cell[metric] - cell["chance"])
                text.append("" if cell is None else f"{cell[metric]:.2f}")
            grid.append(line)
            labels.append(text)
        fig, ax = plt.subplots(figsize=(1.2 * len(columns) + 3.5, 0.45 * len(rows) + 1.8))
        finite = [v for line in grid for v in line if v == v] or [0.0]
        image = ax.imshow(
            grid, cmap="viridis", vmin=min(0.0, min(finite)), vmax=max(finite + [0.01]), aspect="auto"
        )
        ax.set_xticks(range(len(columns)), labels=[f"task {lang}" for lang in columns])
        ax.set_yticks(range(len(rows)), labels=[r.label for r in rows])
        for i, line in enumerate(labels):
            for j, value in enumerate(line):
                ax.text(
                    j,
                    i,
                    value,
                    ha="center",
                    va="center",
                    color="white" if grid[i][j] < 0.5 * max(finite) else "black",
                    fontsize=8,
                )
        fig.colorbar(image, ax=ax, label=f"{next(iter(by_lang.values())).metric} - chance")
        ax.set_title(f"{title}\n{family}", fontsize=10)
        fig.tight_layout()
        slug = re.sub(r"[^A-Za-z0-9]+", "-", family).strip("-")
        path = stem.with_name(f"{stem.name}-{slug}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths
