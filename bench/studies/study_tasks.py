"""Task columns of the study: which task specs a study runs, their cells, tables and heatmaps.

A study's ``--tasks`` specs may use ``X`` for the language (``translation-choice:X->en:gettext``,
``translation-choice:en->X:gettext``, ``continuation-choice:X:handbook``): each expands over the study's
languages, leaving out a language where source and target would be the same or where the source has no
text in it (logged, and listed under ``skipped_tasks`` in the study JSON). Specs without ``X`` run as given.
A spec written ``LANG=SPEC`` fills the column a template leaves out by its form: with
``translation-choice:X->en:gettext``, ``en=translation-choice:en->de:gettext`` puts English->German
translation in that table's English column (the study's English row of the family, its perplexity and its
diagonal are English ones). Each row's accuracy on a task is one cell (per-item correctness kept, for paired
bootstrap intervals).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polysparse.bench.report import markdown_table
from polysparse.sparsify.corpora import UnknownLanguageError, normalize_language
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


@dataclass(frozen=True)
class ColumnTask:
    """A task as a study column: the task, the language column it fills and the table (family) it is in.

    Both are the task's own unless a ``LANG=SPEC`` entry placed it in a template's table."""

    spec: TaskSpec
    lang: str
    family: str

    @classmethod
    def of(cls, spec: TaskSpec) -> ColumnTask:
        return cls(spec, spec.lang, spec.family)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def header(self) -> str:
        """The column's name in tables: the language, and the task where it is not the family's form."""
        if self.lang == self.spec.lang and self.family == self.spec.family:
            return self.lang
        pair = f"{self.spec.src}->{self.spec.tgt}" if self.spec.src else self.spec.name
        return f"{self.lang} ({pair})"


def split_pinned(spec: str) -> tuple[str | None, str]:
    """``"en=translation-choice:en->de:gettext"`` -> ``("en", "translation-choice:en->de:gettext")``;
    a spec without a ``LANG=`` prefix -> ``(None, spec)``."""
    head, sep, rest = spec.strip().partition("=")
    if not sep or ":" in head or not head.strip():
        return None, spec.strip()
    try:
        return normalize_language(head.strip()), rest.strip()
    except (UnknownLanguageError, ValueError):
        raise TaskError(f"{spec}: {head!r} is not a language (write LANG=SPEC, e.g. en=...)") from None


def pinned_family(lang: str, spec: str, specs: Sequence[str]) -> str:
    """The family (template) whose ``lang`` column the pinned ``spec`` fills: the first template of its
    kind whose form leaves ``lang`` out (``X->en`` for English)."""
    kind = parse_task(spec).kind
    for template in specs:
        free = split_pinned(template)[0] is None and is_template(template)
        if free and template.strip().startswith(f"{kind}:") and expand(template, lang) is None:
            return template.strip()
    raise TaskError(
        f"{lang}={spec}: no {kind} template with X leaves the {lang} column empty "
        "(LANG=SPEC fills the column a template such as translation-choice:X->en:gettext leaves out for en)"
    )


def validate_specs(specs: Sequence[str], langs: Sequence[str]) -> None:
    """Parse every spec (templates with each language, pinned ones with their family) so a malformed one
    fails before any work."""
    for spec in specs:
        lang, text = split_pinned(spec)
        if lang is not None:
            if lang not in langs:
                raise TaskError(f"{spec}: {lang} is not a study language ({', '.join(langs)})")
            pinned_family(lang, text, specs)
            continue
        for lang in langs if is_template(spec) else [None]:
            concrete = expand(spec, lang) if lang else spec
            if concrete:
                parse_task(concrete)


def study_tasks(
    specs: Sequence[str],
    langs: Sequence[str],
    *,
    limit: int,
    seed: int,
    limits: Sequence[tuple[str, int]] = (),
) -> tuple[list[tuple[ColumnTask, list[Item]]], list[dict[str, str]]]:
    """Every concrete task with its items, and the template expansions left out (with the reason).

    ``limits`` overrides ``limit`` per task kind (``(("translation-choice", 300),)``)."""
    per_kind = dict(limits)
    prepared, skipped, seen = [], [], set()
    for spec in specs:
        pinned, text = split_pinned(spec)
        if pinned is not None:
            concrete = [(text, False)]
        elif is_template(spec):
            concrete = [(expand(spec, lang), True) for lang in langs]
        else:
            concrete = [(spec, False)]
        for name, from_template in concrete:
            if name is None or name in seen:
                continue
            seen.add(name)
            task = parse_task(name)
            column = ColumnTask.of(task)
            if pinned is not None:
                column = ColumnTask(task, pinned, pinned_family(pinned, text, specs))
            wanted = per_kind.get(task.kind, limit)
            try:
                items = build_items(task, seed=seed, limit=wanted)
            except TaskError as error:
                if not from_template:
                    raise
                log.warning("leaving out %s: %s", name, error)
                skipped.append({"task": name, "reason": str(error)})
                continue
            if len(items) < wanted:
                log.warning(
                    "%s: only %d items (asked for %d): all the held-out text gives", name, len(items), wanted
                )
            prepared.append((column, items))
    return prepared, skipped


def _families(tasks: Sequence[ColumnTask]) -> dict[str, dict[str, ColumnTask]]:
    """The study's task columns by family, then language, in the order given."""
    families: dict[str, dict[str, ColumnTask]] = {}
    for task in tasks:
        families.setdefault(task.family, {})[task.lang] = task
    return families


def _columns(by_lang: dict[str, ColumnTask], langs: Sequence[str]) -> list[str]:
    """The study's languages first, in its order, then any other language a task measures."""
    return [lang for lang in langs if lang in by_lang] + [code for code in by_lang if code not in langs]


def _header(task: Any) -> str:
    return getattr(task, "header", task.lang)


def task_tables(
    rows: Sequence[Any],
    tasks: Sequence[ColumnTask],
    results: dict[tuple[str, str], dict[str, Any]],
    langs: Sequence[str],
) -> str:
    """One Markdown table per task family: calibration rows x languages, the family's metric ± se (n, chance
    below): ``acc``, or ``acc_norm`` for continuation (:attr:`TaskSpec.metric`)."""
    families = _families(tasks)
    parts = []
    for family, by_lang in families.items():
        columns = _columns(by_lang, langs)
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
            + markdown_table(["calibration \\ task language"] + [_header(by_lang[c]) for c in columns], body)
        )
    return "\n\n".join(parts)


def task_heatmaps(
    rows: Sequence[Any],
    tasks: Sequence[ColumnTask],
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
    families = _families(tasks)
    paths = []
    for family, by_lang in families.items():
        columns = _columns(by_lang, langs)
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
        ax.set_xticks(range(len(columns)), labels=[f"task {_header(by_lang[c])}" for c in columns])
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
