"""The calibration-language x evaluation-language study (Kurz et al., 2024), in one resumable run.

Rows are calibration settings: the dense model, magnitude pruning (needs no text), the chosen method
calibrated on each language, optionally on an equal mixture of all the languages, and optionally on
few-shot X->English translation prompts (Kim et al., 2024), and optionally with a stronger recipe on some of
those calibrations (``recipe`` rows, e.g. SparseGPT 2:4 + ADMM + reconstruction). Columns are evaluation
languages, scored on
held-out text of an evaluation source different from the calibration source by default, so the diagonal
does not simply reward same-domain text. Every cell is written to its own JSON file as soon as it is
computed and is never recomputed: an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from polysparse.bench.plans import StudyInputError, StudyPlan
from polysparse.bench.report import environment, markdown_table, write_json
from polysparse.bench.studies.cells import CellStore, cell_key
from polysparse.sparsify.calibration import calibration_windows, evaluation_windows
from polysparse.sparsify.calibration_spec import CalibrationSpec, SourcePart, TranslatePart
from polysparse.sparsify.corpora import (
    EmptyCorpusError,
    Language,
    ParallelSpec,
    SourceSpec,
    UnknownLanguageError,
)
from polysparse.sparsify.driver import prune_model
from polysparse.sparsify.evaluate import perplexity
from polysparse.sparsify.loading import load_causal_lm

log = logging.getLogger("polysparse.bench")


@dataclass(frozen=True)
class Row:
    """One calibration setting: its label in tables, the method, and the calibration spec (if any)."""

    label: str
    kind: str  # dense | magnitude | language | mix | translate | recipe
    method: str | None = None
    calib: CalibrationSpec | None = None
    lang: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row for ``study-*.json``: the calibration spec as its text."""
        calib = None if self.calib is None else str(self.calib)
        return {
            "label": self.label,
            "kind": self.kind,
            "method": self.method,
            "calib": calib,
            "lang": self.lang,
        }

    def key(self, plan: StudyPlan) -> str:
        """File-system key: everything that changes this row's model."""
        if self.kind == "dense":
            parts: dict[str, Any] = {"kind": "dense", "model": plan.model, "dtype": plan.dtype}
        else:
            parts = {"kind": self.kind, "method": self.method, "model": plan.model, "dtype": plan.dtype}
            parts["sparsity"] = plan.prune_config().to_dict()
            parts["sparsity"] = {k: parts["sparsity"][k] for k in ("sparsity", "pattern")}
            if self.calib is not None:
                parts.update(
                    calib=str(self.calib), nsamples=plan.nsamples, seqlen=plan.seqlen, seed=plan.seed
                )
            if self.kind == "translate" and self.calib and _gettext_prompts(self.calib):
                parts["held_out_catalogues_excluded"] = True  # prompts changed when this rule came in
            if self.kind == "recipe":
                from polysparse.bench.recipes import effective_settings

                parts["sparsity"] = effective_settings(plan.recipe_config())
        return cell_key(self.label, parts)

    def prune_config(self, plan: StudyPlan):
        """The configuration this row prunes with (the plan's method, or its recipe)."""
        return plan.recipe_config() if self.kind == "recipe" else plan.prune_config(self.method)


def _gettext_prompts(calib: CalibrationSpec) -> bool:
    return any(isinstance(part, TranslatePart) and part.source == "gettext" for part in calib.parts)


def source_in(source: str, lang: str) -> SourceSpec:
    """``source`` in one of the plan's languages (ISO 639-1 codes, normalised by :class:`StudyPlan`)."""
    return SourceSpec.of(source, Language.iso_code(lang))


def language_spec(source: str, lang: str | Language) -> CalibrationSpec:
    """The calibration spec of ``source`` in one language (the study's language rows)."""
    return CalibrationSpec.of([SourcePart(SourceSpec.of(source, lang))])


def mix_spec(source: str, langs: tuple[str, ...] | list[str]) -> CalibrationSpec:
    """The calibration spec of an equal mixture of ``source`` in every language (the study's mix row)."""
    return CalibrationSpec.of([SourcePart(source_in(source, lang), 1.0 / len(langs)) for lang in langs])


def translate_spec(plan: StudyPlan, lang: str) -> CalibrationSpec:
    """The calibration spec of few-shot ``lang`` -> English prompts (the study's translation rows)."""
    assert plan.translate_source is not None
    return CalibrationSpec.of([TranslatePart.of(lang, "en", plan.translate_source, plan.shots)])


def study_rows(plan: StudyPlan) -> list[Row]:
    method = plan.method
    rows = [Row("dense", "dense"), Row(f"magnitude {plan.sparsity_label}", "magnitude", "magnitude")]
    for lang in plan.langs:
        spec = language_spec(plan.calib_source, Language.iso_code(lang))
        rows.append(Row(f"{method} calib={lang}", "language", method, spec, lang))
    if plan.mix and len(plan.langs) > 1:
        spec = mix_spec(plan.calib_source, plan.langs)
        rows.append(Row(f"{method} calib=mix({'+'.join(plan.langs)})", "mix", method, spec))
    if plan.translate_source:
        for lang in translate_languages(plan):
            spec = translate_spec(plan, lang)
            rows.append(Row(f"{method} calib=translate {lang}->en", "translate", method, spec, lang))
    for calib in plan.recipe_calibs:
        recipe_method = plan.recipe_config().method
        if calib == "mix":
            spec = mix_spec(plan.calib_source, plan.langs)
            rows.append(
                Row(f"{plan.recipe} calib=mix({'+'.join(plan.langs)})", "recipe", recipe_method, spec)
            )
        else:
            spec = language_spec(plan.calib_source, Language.iso_code(calib))
            rows.append(Row(f"{plan.recipe} calib={calib}", "recipe", recipe_method, spec, calib))
    return rows


def translate_languages(plan: StudyPlan) -> tuple[str, ...]:
    """The languages with a translation-prompt row: ``plan.translate_langs``, else all but English."""
    if plan.translate_langs is not None:
        return plan.translate_langs
    return tuple(lang for lang in plan.langs if lang != "en")


def eval_spec(plan: StudyPlan, lang: str) -> tuple[SourceSpec, bool]:
    """The evaluation source for a language, and whether it had to fall back to the calibration source."""
    from polysparse.sparsify.corpora import load_documents

    preferred = source_in(plan.eval_source, lang)
    try:
        if len(load_documents(preferred)) >= 2:
            return preferred, False
    except (EmptyCorpusError, UnknownLanguageError, FileNotFoundError):
        pass
    log.warning(
        "%s has no %s text; evaluating %s on held-out %s pages",
        plan.eval_source,
        lang,
        lang,
        plan.calib_source,
    )
    return source_in(plan.calib_source, lang), True


@dataclass
class StudyResult:
    plan: StudyPlan
    rows: list[Row]
    eval_specs: dict[str, tuple[SourceSpec, bool]]
    cells: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    row_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: list[Any] = field(default_factory=list)  # TaskSpec, in order
    task_cells: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (row, task name)
    skipped_tasks: list[dict[str, str]] = field(default_factory=list)

    def ppl(self, row: Row, lang: str) -> float | None:
        cell = self.cells.get((row.label, lang))
        return None if cell is None else cell["perplexity"]

    def summary(self) -> dict[str, Any]:
        """The questions of the study, answered from the matrix."""
        langs = self.plan.langs
        language_rows = {r.lang: r for r in self.rows if r.kind == "language"}
        out: dict[str, Any] = {"best_calibration_per_eval_language": {}, "diagonal_wins": 0}
        for lang in langs:
            candidates = [(self.ppl(r, lang), r.lang) for r in language_rows.values() if self.ppl(r, lang)]
            if candidates:
                best = min(candidates)
                out["best_calibration_per_eval_language"][lang] = {"calib": best[1], "perplexity": best[0]}
                out["diagonal_wins"] += best[1] == lang
        out["languages"] = len(langs)
        translate = {}
        for r in self.rows:
            if r.kind == "translate" and r.lang in language_rows:
                own, tr = self.ppl(language_rows[r.lang], r.lang), self.ppl(r, r.lang)
                if own and tr:
                    translate[r.lang] = {
                        "target_calibration": own,
                        "translation_prompts": tr,
                        "ratio": tr / own,
                    }
        out["translation_vs_target_language"] = translate
        worst = {}
        for r in self.rows:
            values = [self.ppl(r, lang) for lang in langs]
            if all(values):
                ratios = [v / self.ppl(self.rows[0], lang) for v, lang in zip(values, langs)]
                worst[r.label] = {
                    "worst_ratio_to_dense": max(ratios),
                    "mean_ratio_to_dense": sum(ratios) / len(ratios),
                }
        out["worst_language_ratio_to_dense"] = worst
        return out

    def to_dict(self) -> dict[str, Any]:
        payload = {
            "plan": asdict(self.plan),
            "eval_sources": {
                lang: {"spec": str(s), "fallback": f} for lang, (s, f) in self.eval_specs.items()
            },
            "rows": [
                {
                    **r.to_dict(),
                    "perplexity": {lang: self.ppl(r, lang) for lang in self.plan.langs},
                    **self.row_info.get(r.label, {}),
                }
                for r in self.rows
            ],
            "summary": self.summary(),
        }
        if self.tasks:
            payload["tasks"] = [
                {"task": t.name, "family": t.family, "lang": t.lang, "kind": t.kind, "metric": t.metric}
                for t in self.tasks
            ]
            payload["skipped_tasks"] = self.skipped_tasks
            for entry, r in zip(payload["rows"], self.rows):
                entry["tasks"] = {
                    t.name: self.task_cells[(r.label, t.name)]
                    for t in self.tasks
                    if (r.label, t.name) in self.task_cells
                }
        return payload

    def markdown(self) -> str:
        langs = self.plan.langs
        headers = ["calibration \\ eval"] + [
            f"{lang}{' (†)' if self.eval_specs[lang][1] else ''}" for lang in langs
        ]
        dense = self.rows[0]
        best_per_language = self.summary()["best_calibration_per_eval_language"]
        body = []
        for r in self.rows:
            cells = []
            for lang in langs:
                value = self.ppl(r, lang)
                if value is None:
                    cells.append("")
                    continue
                text = f"{value:.2f}"
                best = best_per_language.get(lang)
                if r.kind == "language" and best and best["calib"] == r.lang:
                    text = f"**{text}**"
                if r is not dense and self.ppl(dense, lang):
                    text += f" ({value / self.ppl(dense, lang):.2f}x)"
                cells.append(text)
            body.append([r.label] + cells)
        plan = self.plan
        sources = ", ".join(f"{lang}: `{s}`" for lang, (s, _) in self.eval_specs.items())
        notes = (
            "Perplexity (lower is better; in brackets: ratio to dense) of "
            f"`{Path(plan.model).name}` pruned with {plan.method} {plan.sparsity_label}, calibrated on "
            f"{plan.nsamples} windows x {plan.seqlen} tokens of `{plan.calib_source}` text per row; "
            f"evaluated on {plan.eval_windows} held-out windows x {plan.eval_seqlen} tokens per language "
            f"({sources}). Bold: the best language-calibrated row for that evaluation language."
        )
        if any(f for _, f in self.eval_specs.values()):
            notes += (
                f" †: no `{plan.eval_source}` text in that language; evaluated on held-out "
                f"`{plan.calib_source}` pages."
            )
        text = notes + "\n\n" + markdown_table(headers, body)
        if self.tasks:
            from polysparse.bench.studies.study_tasks import task_tables

            text += (
                "\n\n### Tasks\n\nZero-shot multiple choice on held-out text, at most "
                f"{_limits_text(plan)} per task and language (acc: the choice with the highest "
                "log-likelihood; acc_norm, for continuation: the highest per UTF-8 byte).\n\n"
                + task_tables(self.rows, self.tasks, self.task_cells, langs)
            )
            if self.skipped_tasks:
                text += "\n\nLeft out: " + "; ".join(
                    f"`{s['task']}` ({s['reason']})" for s in self.skipped_tasks
                )
        return text


def _limits_text(plan: StudyPlan) -> str:
    kinds = dict(plan.task_limits)
    if not kinds:
        return f"{plan.task_limit} items"
    return ", ".join(f"{n} items of {kind}" for kind, n in kinds.items()) + f" ({plan.task_limit} of others)"


def output_stem(plan: StudyPlan) -> str:
    """``study-wanda-2-4``, ``study-sparsegpt-50``: one set of files per method and sparsity in a folder."""
    label = plan.pattern.replace(":", "-") if plan.pattern else f"{round(plan.sparsity * 100):d}"
    return f"study-{plan.method}-{label}"


def check_study_inputs(plan: StudyPlan, out: str | Path, cells: str | Path | None = None) -> None:
    """Everything a study needs, checked before its first cell: ``out`` and the cells folder (places to
    write, not files, not holding the model), window lengths against the model's positions, text for every
    calibration and evaluation language (and parallel text for the translation rows), and that ``out`` does
    not hold the tables of a study with other settings (they would be overwritten while its cells stay)."""
    import json

    from polysparse.bench.assets import resolve_model
    from polysparse.bench.guards import check_output_folder
    from polysparse.sparsify.corpora import load_documents, load_parallel
    from polysparse.sparsify.loading import check_seqlen

    model_path = resolve_model(plan.model)
    check_output_folder(out, [model_path], results=True)
    cells_folder = Path(cells) if cells is not None else Path(out) / "cells"
    check_output_folder(cells_folder, [model_path], "--cells", results=True)
    check_seqlen(model_path, plan.seqlen, "--seqlen")
    check_seqlen(model_path, plan.eval_seqlen, "--eval-seqlen")
    problems = []
    if plan.mix and len(plan.langs) > 1 and plan.nsamples < len(plan.langs):
        problems.append(
            f"mix row: --nsamples {plan.nsamples} cannot give each of the {len(plan.langs)} languages a "
            "window; raise --nsamples or pass --no-mix"
        )
    for lang in plan.langs:
        try:
            load_documents(source_in(plan.calib_source, lang))
        except (EmptyCorpusError, UnknownLanguageError, FileNotFoundError) as error:
            problems.append(f"calibration {plan.calib_source}:{lang}: {error}")
            continue
        spec, _ = eval_spec(plan, lang)
        try:
            if len(load_documents(spec)) < 2:
                problems.append(f"evaluation {spec}: fewer than two documents, none to hold out")
        except (EmptyCorpusError, UnknownLanguageError, FileNotFoundError) as error:
            problems.append(f"evaluation {spec}: {error}")
        if plan.translate_source and lang in translate_languages(plan):
            try:
                parallel = ParallelSpec.of(
                    plan.translate_source, Language.iso_code(lang), Language.iso_code("en")
                )
                if not load_parallel(parallel):
                    problems.append(f"translation {plan.translate_source}:{lang}->en: no parallel pairs")
            except (EmptyCorpusError, UnknownLanguageError, FileNotFoundError, ValueError) as error:
                problems.append(f"translation {plan.translate_source}:{lang}->en: {error}")
    if problems:
        raise StudyInputError(
            "the study cannot run every cell; nothing was computed:\n  " + "\n  ".join(problems)
        )
    tables = Path(out) / f"{output_stem(plan)}.json"
    if tables.exists():
        try:
            previous = json.loads(tables.read_text(encoding="utf-8"))["plan"]
            if not isinstance(previous, dict):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            raise StudyInputError(
                f"{tables} exists and is not the tables of a study (no readable 'plan'); choose another --out"
            ) from None
        current = json.loads(json.dumps(asdict(plan)))
        # A setting the tables predate is read as its default (they were made before it existed).
        defaults = {f.name: f.default for f in fields(StudyPlan) if f.default is not MISSING}
        defaults = json.loads(json.dumps(defaults))  # tuples as lists, as the tables hold them
        changed = [
            f"{k}={previous.get(k, defaults.get(k))!r} there, {v!r} here"
            for k, v in current.items()
            if previous.get(k, defaults.get(k)) != v
        ]
        if changed:
            raise StudyInputError(
                f"{tables} holds the tables of a study with other settings ({'; '.join(changed)}); choose "
                f"another --out (pass --cells {Path(out) / 'cells'} to reuse its finished cells)"
            )


def task_cell_key(plan: StudyPlan, name: str, kind: str) -> str:
    """A row's cell name for one task: the task, its item limit and the seed (the items it scores)."""
    limit = plan.task_limit_for(kind)
    return cell_key(f"task {name}", {"task": name, "limit": limit, "seed": plan.seed})


def eval_cell_key(plan: StudyPlan, spec: SourceSpec) -> str:
    """A row's cell name for perplexity on one evaluation source."""
    return f"{spec}-{plan.eval_windows}x{plan.eval_seqlen}-s{plan.seed}".replace(":", "_")


def run_study(
    plan: StudyPlan,
    out: str | Path,
    *,
    cells: str | Path | None = None,
    quiet: bool = False,
    plot: bool = True,
) -> StudyResult:
    """Compute every missing cell, then write ``<stem>.json``, ``.md`` and ``.png`` into ``out``.

    Cells live in ``cells`` (default ``out/cells``); studies sharing that folder share their dense and
    magnitude rows. The tables are also rewritten after every row that computed a cell, so a long study's
    finished rows can be read (and a killed one's are kept) before it ends.
    """
    from polysparse.bench.assets import resolve_model
    from polysparse.bench.studies.study_tasks import study_tasks
    from polysparse.sparsify.checkpointing import folder_fingerprint
    from polysparse.sparsify.tasks import evaluate_task

    out = Path(out)
    store = CellStore(Path(cells) if cells is not None else out / "cells")
    model_path = resolve_model(plan.model)
    store.check_model(plan.model, folder_fingerprint(model_path))
    rows = study_rows(plan)
    specs = {lang: eval_spec(plan, lang) for lang in plan.langs}
    result = StudyResult(plan, rows, specs)
    prepared, result.skipped_tasks = study_tasks(
        plan.tasks, plan.langs, limit=plan.task_limit, seed=plan.seed, limits=plan.task_limits
    )
    result.tasks = [task for task, _ in prepared]

    todo = [(r, lang) for r in rows for lang in plan.langs]
    bar = tqdm(total=len(todo), desc="study cells", disable=quiet, unit="cell")
    held_out: dict[str, Any] = {}
    for row in rows:
        key = row.key(plan)
        missing = []
        for lang in plan.langs:
            cell = store.get(key, eval_cell_key(plan, specs[lang][0]))
            if cell is None:
                missing.append(lang)
            else:
                result.cells[(row.label, lang)] = cell
                bar.update(1)
        result.row_info[row.label] = store.get(key, "row") or {}
        missing_tasks = []
        for task, items in prepared:
            cell = store.get(key, task_cell_key(plan, task.name, task.kind))
            if cell is None:
                missing_tasks.append((task, items))
            else:
                result.task_cells[(row.label, task.name)] = cell
        if not missing and not missing_tasks:
            continue
        model, tokenizer = load_causal_lm(model_path, plan.dtype)
        if row.kind != "dense":
            started = time.perf_counter()
            config = row.prune_config(plan)
            windows = None
            if row.calib is not None:
                windows = calibration_windows(row.calib, tokenizer, plan.nsamples, plan.seqlen, plan.seed)
            report = prune_model(model, config, windows, progress=not quiet)
            info = {
                "prune_seconds": time.perf_counter() - started,
                "sparsity": report.sparsity,
                "calibration": windows.summary() if windows is not None else None,
            }
            store.put(key, "row", info)
            result.row_info[row.label] = info
        for lang in missing:
            spec = specs[lang][0]
            if spec not in held_out:
                held_out[spec] = evaluation_windows(
                    spec, tokenizer, plan.eval_windows, plan.eval_seqlen, plan.seed
                )
            value = perplexity(model, held_out[spec]).to_dict()
            value.update(row=row.label, eval_spec=str(spec))
            store.put(key, eval_cell_key(plan, spec), value)
            result.cells[(row.label, lang)] = value
            bar.update(1)
        for task, items in missing_tasks:
            started = time.perf_counter()
            scored = evaluate_task(model, tokenizer, task.name, items, progress=not quiet).to_dict()
            scored.update(row=row.label, family=task.family, seconds=time.perf_counter() - started)
            store.put(key, task_cell_key(plan, task.name, task.kind), scored)
            result.task_cells[(row.label, task.name)] = scored
        del model
        write_tables(result, out, plot=plot)
    bar.close()
    write_tables(result, out, plot=plot)
    return result


def write_tables(result: StudyResult, out: Path, *, plot: bool = True) -> None:
    """``<stem>.json``, ``.md`` and the heatmaps of the cells found so far (rows not yet run are empty)."""
    plan = result.plan
    stem = output_stem(plan)
    write_json(out / f"{stem}.json", {**result.to_dict(), "environment": environment()})
    (out / f"{stem}.md").write_text(result.markdown(), encoding="utf-8")
    if plot:
        heatmap(result, out / f"{stem}.png")
        if result.tasks:
            from polysparse.bench.studies.study_tasks import task_heatmaps

            title = f"{Path(plan.model).name}: {plan.method} {plan.sparsity_label}, task accuracy"
            task_heatmaps(result.rows, result.tasks, result.task_cells, plan.langs, out / stem, title)


def heatmap(result: StudyResult, path: Path) -> Path | None:
    """Rows x languages, coloured by perplexity relative to dense on a log scale, annotated with values.

    The colour range is set by the calibrated rows: magnitude pruning is often thousands of times worse
    than dense and, on a shared linear scale, would paint every calibrated row the same colour. Cells past
    the range take the colour bar's "over" colour; the best language-calibrated row of each column is
    outlined.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm
        from matplotlib.patches import Rectangle
    except ImportError:
        log.warning("matplotlib is not installed (pip install 'polysparse[plot]'); no heatmap written")
        return None
    langs = result.plan.langs
    dense = result.rows[0]
    rows = result.rows[1:]

    def ratio(row: Row, lang: str) -> float:
        value, reference = result.ppl(row, lang), result.ppl(dense, lang)
        return value / reference if value and reference else float("nan")

    grid = [[ratio(r, lang) for lang in langs] for r in rows]
    calibrated = [v for r, line in zip(rows, grid) if r.kind != "magnitude" for v in line if v == v]
    finite = calibrated or [v for line in grid for v in line if v == v] or [1.0]
    low, high = min(finite), max(finite)
    norm = LogNorm(vmin=low, vmax=high if high > low else low * 1.01)
    cmap = matplotlib.colormaps["viridis_r"].with_extremes(over="#3b3b3b", bad="#ffffff")
    fig, ax = plt.subplots(figsize=(1.3 * len(langs) + 3.5, 0.45 * len(rows) + 1.8))
    image = ax.imshow(grid, cmap=cmap, norm=norm, aspect="auto")
    ax.set_xticks(range(len(langs)), labels=[f"eval {lang}" for lang in langs])
    ax.set_yticks(range(len(rows)), labels=[r.label for r in rows])
    best = result.summary()["best_calibration_per_eval_language"]
    for i, r in enumerate(rows):
        for j, lang in enumerate(langs):
            value = result.ppl(r, lang)
            if value is None:
                continue
            red, green, blue, _ = cmap(norm(grid[i][j])) if grid[i][j] == grid[i][j] else (1, 1, 1, 1)
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            colour = "white" if dark else "black"
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", color=colour, fontsize=8)
            if r.kind == "language" and best.get(lang, {}).get("calib") == r.lang:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    fig.colorbar(image, ax=ax, label="perplexity / dense perplexity (log scale)", extend="max")
    plan = result.plan
    ax.set_title(
        f"{Path(plan.model).name}: {plan.method} {plan.sparsity_label} "
        "(outlined: best language-calibrated row per column)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
