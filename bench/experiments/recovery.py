"""Recipes side by side on the study's windows: plain methods, ADMM update, block-wise reconstruction, OWL.

A *recipe* (:mod:`polysparse.bench.recipes`: ``wanda 2:4 +recon steps=64``, ``sparsegpt 0.5 +admm +owl``) is
one pruning configuration written as words. Every recipe is calibrated on ``--calib`` (a language of the
calibration source, or ``mix`` for an equal mixture of ``--langs``) with exactly the windows ``polysparse
study`` draws (same source, count, length and seed) and scored on the study's held-out evaluation windows of
every language in ``--eval-langs``, so the numbers compare with ``bench/results/study``, and out of domain on
held-out windows of ``--ood-source`` (:data:`OOD_SOURCE`) where it has the language; with ``--dev-windows``,
also on windows of that source's calibration side (the *dev* column, where settings are chosen). Cells (one
per recipe, calibration and evaluation language) are kept in ``--cells``: an interrupted run recomputes only
what is missing. A recipe's cells are keyed on its effective settings
(:func:`~polysparse.bench.recipes.recipe_cell_key`); cells written under the older word-only keys are reused
only where the configuration they recorded matches (:func:`cell_group`).

    python -P -m polysparse.bench.experiments.recovery --out bench/results/recovery/gemma-3-270m \\
        --recipe "sparsegpt 2:4" --recipe "sparsegpt 2:4 +admm" --calib de --eval-langs de
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from polysparse.bench.experiments._protocol import add_window_options
from polysparse.bench.plans import StudyPlan
from polysparse.bench.recipes import Recipe, as_json, effective_settings, recipe_cell_key
from polysparse.bench.report import environment, markdown_table, write_json
from polysparse.bench.studies.cells import CellStore, cell_key
from polysparse.bench.studies.study import eval_spec, language_spec, mix_spec
from polysparse.sparsify.calibration import TokenWindows, calibration_windows, evaluation_windows
from polysparse.sparsify.calibration_spec import CalibrationSpec
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.corpora import SourceSpec, normalize_language
from polysparse.sparsify.driver import prune_model
from polysparse.sparsify.evaluate import perplexity
from polysparse.sparsify.loading import load_causal_lm

OOD_SOURCE = "fortunes"
"""The out-of-domain evaluation source: quotations, jokes, sayings and verse (``fortune``'s collections in
English, German, Russian and classical Chinese poems), unlike every calibration source, which are all
technical documentation or software messages (handbook, installation guide, man pages, gettext)."""


def legacy_cell_key(recipe: Recipe, *, model: str, calib: str, nsamples: int, seqlen: int, seed: int) -> str:
    """The key cells had before :func:`recipe_cell_key`: the recipe's words only (kept to find old cells)."""
    parts = {"model": model, "label": recipe.text, "calib": calib, "nsamples": nsamples, "seqlen": seqlen}
    return cell_key(recipe.text, {**parts, "seed": seed, **recipe.settings})


def cell_group(store: CellStore, key: str, legacy_key: str, config: PruneConfig) -> str:
    """``key``, or the legacy group of the same recipe where its recorded configuration equals ``config``.

    Cells written under the word-only key record the ``PruneConfig`` they were pruned with (``row.json``);
    those whose record matches the current one field for field are reused, any other is left alone (a changed
    default means a stale cell). A field the record lacks (added to ``PruneConfig`` since) matches where it
    holds its default: new fields default to the old behaviour. The ADMM and reconstruction defaults outside
    ``PruneConfig`` were not recorded then; they were those of the commit that wrote the cell.
    """
    if store.get(key, "row") is not None:
        return key
    legacy = store.get(legacy_key, "row")
    recorded = legacy.get("config") if legacy is not None else None
    if not isinstance(recorded, dict):
        return key
    current = as_json(config.to_dict())
    defaults = {name: as_json(field.default) for name, field in PruneConfig.__dataclass_fields__.items()}
    missing = [name for name in current if name not in recorded]
    same = set(recorded) <= set(current) and all(recorded[name] == current[name] for name in recorded)
    if same and all(current[name] == defaults[name] for name in missing):
        return legacy_key
    return key


def ood_specs(source: str | None, langs: tuple[str, ...]) -> dict[str, SourceSpec]:
    """The out-of-domain spec of every language in ``langs`` that ``source`` has on this machine."""
    if source is None:
        return {}
    from polysparse.sparsify.corpora import available_corpora

    have = {info.lang for info in available_corpora((source,))}
    return {lang: SourceSpec.of(source, lang) for lang in langs if normalize_language(lang) in have}


def cell_name(spec: SourceSpec, column: str, count: int, seqlen: int, seed: int) -> str:
    """The cell of one scored column: held-out windows of ``spec``, or its dev windows."""
    dev = "-dev" if column == "dev_perplexity" else ""
    return f"{str(spec).replace(':', '_')}{dev}-{count}x{seqlen}-s{seed}"


def dev_windows_of(spec: SourceSpec, tokenizer, count: int, seqlen: int, seed: int) -> TokenWindows:
    """``count`` windows from the calibration side of ``spec``'s document split (no recipe here calibrates on
    the out-of-domain source): its held-out documents, which the reported windows come from, stay unseen."""
    return calibration_windows(CalibrationSpec.parse(str(spec)), tokenizer, count, seqlen, seed)


def plain_row(rows: list[dict[str, Any]], recipe: str) -> dict[str, Any] | None:
    """The row of ``recipe``'s plain method (its first two words, ``sparsegpt 2:4``) in ``rows``, if any."""
    plain = " ".join(recipe.split()[:2])
    return next((row for row in rows if row["recipe"] == plain), None) if recipe != "dense" else None


def load_average() -> float:
    return os.getloadavg()[0]


def run_recipes(
    recipes: list[Recipe],
    *,
    model: str,
    calib: str,
    langs: tuple[str, ...],
    eval_langs: tuple[str, ...],
    out: Path,
    cells: Path,
    nsamples: int = 16,
    seqlen: int = 512,
    eval_windows: int = 4,
    eval_seqlen: int = 256,
    seed: int = 0,
    calib_source: str = "handbook",
    eval_source: str = "install-guide",
    ood_source: str | None = OOD_SOURCE,
    ood_windows: int = 16,
    dev_windows: int = 0,
    name: str = "recipes",
    quiet: bool = False,
) -> dict[str, Any]:
    """Compute every missing cell of ``recipes`` x ``eval_langs`` (plus the dense row); write JSON and MD.

    Every row is scored twice per language where ``ood_source`` has it: on the study's held-out windows of
    ``eval_source`` (in domain: documentation, like the calibration) and on ``ood_windows`` held-out windows
    of the same length of ``ood_source`` (out of domain: another kind of text; :func:`ood_specs`). With
    ``dev_windows``, a third time on that many windows of the *calibration* side of ``ood_source``'s document
    split (:func:`dev_windows_of`): text of the out-of-domain kind, disjoint from the reported out-of-domain
    windows and never calibrated on, for choosing a recipe's settings without looking at the windows
    that report it.
    """
    from polysparse.bench.assets import resolve_model

    windows = dict(
        nsamples=nsamples, seqlen=seqlen, eval_windows=eval_windows, eval_seqlen=eval_seqlen, seed=seed
    )
    sources = dict(calib_source=calib_source, eval_source=eval_source)
    plan = StudyPlan(model=model, langs=tuple(dict.fromkeys(langs + eval_langs)), **sources, **windows)
    calib_spec = mix_spec(calib_source, langs) if calib == "mix" else language_spec(calib_source, calib)
    store = CellStore(cells)
    model_path = resolve_model(model)
    specs = {lang: eval_spec(plan, lang)[0] for lang in eval_langs}
    ood = ood_specs(ood_source, eval_langs)
    scored = [(lang, "perplexity", spec, eval_windows) for lang, spec in specs.items()]
    scored += [(lang, "ood_perplexity", spec, ood_windows) for lang, spec in ood.items()]
    if dev_windows:
        scored += [(lang, "dev_perplexity", spec, dev_windows) for lang, spec in ood.items()]
    rows: list[dict[str, Any]] = []
    held_out: dict[str, Any] = {}
    for recipe in [None, *recipes]:
        label = "dense" if recipe is None else recipe.text
        if recipe is None:
            key = cell_key(label, {"model": model, "label": label})
        else:
            config = recipe.config(nsamples, seqlen, seed)
            recipe_calib = CalibrationSpec.parse(recipe.calib) if recipe.calib else calib_spec
            legacy = legacy_cell_key(
                recipe, model=model, calib=str(recipe_calib), nsamples=nsamples, seqlen=seqlen, seed=seed
            )
            key = cell_group(
                store, recipe_cell_key(recipe, config, model=model, calib=str(recipe_calib)), legacy, config
            )
        row: dict[str, Any] = {
            "recipe": label,
            "calib": None if recipe is None else recipe.calib or calib,
            "perplexity": {},
            "ood_perplexity": {},
            **({"dev_perplexity": {}} if dev_windows else {}),
        }
        missing = []
        for lang, column, spec, count in scored:
            cell = store.get(key, cell_name(spec, column, count, eval_seqlen, seed))
            if cell is None:
                missing.append((lang, column, spec, count))
            else:
                row[column][lang] = cell["perplexity"]
        info = store.get(key, "row") if recipe is not None else {}
        if missing or info is None:
            lm, tokenizer = load_causal_lm(model_path, "auto")
            if recipe is not None:
                windows = calibration_windows(recipe_calib, tokenizer, config.nsamples, seqlen, seed)
                load_before, started = load_average(), time.perf_counter()
                report = prune_model(lm, config, windows, progress=not quiet)
                info = {
                    "prune_seconds": time.perf_counter() - started,
                    "load_average_before": load_before,
                    "load_average_after": load_average(),
                    "sparsity": report.sparsity,
                    "config": config.to_dict(),
                    "effective_settings": effective_settings(config),
                    "calibration": windows.summary(),
                    "blocks": report.blocks,
                    "sparsity_profile": report.profile,
                }
                store.put(key, "row", info)
            for lang, column, spec, count in missing:
                if (spec, column) not in held_out:
                    draw = dev_windows_of if column == "dev_perplexity" else evaluation_windows
                    held_out[spec, column] = draw(spec, tokenizer, count, eval_seqlen, seed)
                value = perplexity(lm, held_out[spec, column]).to_dict()
                value.update(row=label, eval_spec=str(spec))
                store.put(key, cell_name(spec, column, count, eval_seqlen, seed), value)
                row[column][lang] = value["perplexity"]
            del lm
        row.update(info or {})
        rows.append(row)
        if not quiet:
            print(label, {k: round(v, 2) for k, v in row["perplexity"].items()}, flush=True)
    dense, dense_ood = rows[0]["perplexity"], rows[0]["ood_perplexity"]
    for row in rows:
        row["ratio_to_dense"] = {lang: row["perplexity"][lang] / dense[lang] for lang in eval_langs}
        row["worst_ratio_to_dense"] = max(row["ratio_to_dense"].values())
        row["ood_ratio_to_dense"] = {lang: row["ood_perplexity"][lang] / dense_ood[lang] for lang in ood}
        plain = plain_row(rows, row["recipe"])
        row["plain_recipe"] = plain["recipe"] if plain else None
        plain_ood = plain["ood_perplexity"] if plain else {}
        ood_row = row["ood_perplexity"]
        row["ood_ratio_to_plain"] = {lang: ood_row[lang] / plain_ood[lang] for lang in plain_ood}
        if dev_windows:
            plain_dev = plain["dev_perplexity"] if plain else {}
            row["dev_ratio_to_plain"] = {
                lang: row["dev_perplexity"][lang] / plain_dev[lang] for lang in plain_dev
            }
    payload = {
        "plan": {
            "model": model,
            "calib": str(calib_spec),
            "nsamples": nsamples,
            "seqlen": seqlen,
            "eval": {lang: str(specs[lang]) for lang in eval_langs},
            "ood_eval": {lang: str(spec) for lang, spec in ood.items()},
            "ood_windows": ood_windows,
            "dev_windows": dev_windows,
            "eval_windows": eval_windows,
            "eval_seqlen": eval_seqlen,
            "seed": seed,
        },
        "rows": rows,
        "environment": environment(),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", payload)
    (out / f"{name}.md").write_text(markdown(payload, eval_langs), encoding="utf-8")
    return payload


def markdown(payload: dict[str, Any], eval_langs: tuple[str, ...]) -> str:
    plan = payload["plan"]
    ood = plan.get("ood_eval", {})
    headers = ["recipe", *[f"{lang} ppl (x dense)" for lang in eval_langs]]
    if len(eval_langs) > 1:
        headers.append("worst x dense")
    headers += [f"{lang} out of domain (x dense, x plain)" for lang in ood]
    dev = ood if plan.get("dev_windows") else {}
    headers += [f"{lang} dev (x plain)" for lang in dev]
    headers += ["prune s", "load avg"]
    body = []
    for row in payload["rows"]:
        cells = [row["recipe"]]
        for lang in eval_langs:
            cells.append(f"{row['perplexity'][lang]:.2f} ({row['ratio_to_dense'][lang]:.2f}x)")
        if len(eval_langs) > 1:
            cells.append(f"{row['worst_ratio_to_dense']:.2f}")
        for lang in ood:
            to_plain = row["ood_ratio_to_plain"].get(lang)
            cells.append(
                f"{row['ood_perplexity'][lang]:.2f} ({row['ood_ratio_to_dense'][lang]:.2f}x"
                + (f", {to_plain:.2f}x" if to_plain is not None else "")
                + ")"
            )
        for lang in dev:
            to_plain = row["dev_ratio_to_plain"].get(lang)
            cells.append(f"{row['dev_perplexity'][lang]:.2f}" + (f" ({to_plain:.2f}x)" if to_plain else ""))
        seconds = row.get("prune_seconds")
        cells.append(f"{seconds:.0f}" if seconds else "-")
        load = (row.get("load_average_before"), row.get("load_average_after"))
        cells.append(f"{load[0]:.1f} / {load[1]:.1f}" if load[0] is not None else "-")
        body.append(cells)
    note = (
        f"`{Path(plan['model']).name}` calibrated on {plan['nsamples']} windows x {plan['seqlen']} tokens of "
        f"`{plan['calib']}`, perplexity on {plan['eval_windows']} held-out windows x {plan['eval_seqlen']} "
        f"tokens of {', '.join(f'`{s}`' for s in plan['eval'].values())} (the study's windows)"
        + (
            f"; out of domain on {plan.get('ood_windows')} held-out windows x {plan['eval_seqlen']} tokens "
            f"of {', '.join(f'`{s}`' for s in ood.values())} "
            "(x plain: against the plain method's row, the recipe's first two words). "
            if ood
            else ". "
        )
        + (
            f"Dev: {plan['dev_windows']} windows x {plan['eval_seqlen']} tokens from the calibration side of "
            "the out-of-domain source's document split (disjoint from its held-out windows, calibrated on "
            "by no recipe), where settings are chosen. "
            if dev
            else ""
        )
        + "Calibration windows, source and count, are the recipe's own where its words say so (`calib=`, "
        "`windows=`). "
        "Prune seconds: calibration and pruning, loading excluded; load average (1 min) before / after "
        "each prune."
    )
    return note + "\n\n" + markdown_table(headers, body) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m polysparse.bench.experiments.recovery", description=__doc__
    )
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--recipe", action="append", required=True, help="a recipe (repeatable)")
    parser.add_argument("--calib", default="de", help="calibration language, or 'mix' (of --langs)")
    parser.add_argument("--langs", default="en,de,ru,zh,ja,ar", help="languages of the mix")
    parser.add_argument("--eval-langs", default="de", help="evaluation languages")
    add_window_options(parser)
    parser.add_argument("--out", required=True)
    parser.add_argument("--cells", default="runs/recovery_cells")
    parser.add_argument("--name", default="recipes", help="stem of the JSON / Markdown files written")
    parser.add_argument(
        "--ood-source", default=OOD_SOURCE, help="out-of-domain evaluation source ('none': no such column)"
    )
    parser.add_argument("--ood-windows", type=int, default=16)
    parser.add_argument(
        "--dev-windows",
        type=int,
        default=0,
        help="windows of the out-of-domain source's calibration side (dev)",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    run_recipes(
        [Recipe.parse(text) for text in args.recipe],
        model=args.model,
        calib=args.calib,
        langs=tuple(args.langs.split(",")),
        eval_langs=tuple(args.eval_langs.split(",")),
        out=Path(args.out),
        cells=Path(args.cells),
        nsamples=args.nsamples,
        seqlen=args.seqlen,
        eval_windows=args.eval_windows,
        eval_seqlen=args.eval_seqlen,
        ood_source=None if args.ood_source == "none" else args.ood_source,
        ood_windows=args.ood_windows,
        dev_windows=args.dev_windows,
        name=args.name,
        quiet=args.quiet,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
