"""Issue 11's mix goal as one table: for each setting, the best recipe calibrated on the six-language mix
against the same recipe calibrated on each language alone, and against the study's plain rows.

Reads what ``bench/scripts/recovery_gemma.sh`` (steps ``mix`` and ``singles``) and the study wrote; computes
nothing new. A setting's goal holds when the mix row's worst-language ratio to dense is below the worst of
every single-language row, the best recipe's and the study's plain ones alike; while a single-language row
of the best recipe is missing, the table says so instead of a verdict.

    python -P -m polysparse.bench.experiments.mix_goal --recovery bench/results/recovery/gemma-3-270m \\
        --study bench/results/study/gemma-3-270m
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from polysparse.bench.report import environment, markdown_table, write_json

SETTINGS = ("wanda-2-4", "sparsegpt-2-4", "wanda-50", "sparsegpt-50")
LANGS = ("en", "de", "ru", "zh", "ja", "ar")


def worst(perplexity: dict[str, float], dense: dict[str, float]) -> tuple[float, str]:
    """The largest ratio to dense over the languages both rows have, and its language."""
    ratios = {lang: perplexity[lang] / dense[lang] for lang in perplexity if lang in dense}
    if not ratios:
        raise ValueError("no language in common with the dense row")
    lang = max(ratios, key=ratios.__getitem__)
    return ratios[lang], lang


def recovery_worst(payload: dict[str, Any]) -> tuple[float, str, str]:
    """``(worst ratio, its language, recipe)`` of the one pruned row of a ``bench.recovery`` payload."""
    dense = next(row for row in payload["rows"] if row["recipe"] == "dense")["perplexity"]
    pruned = [row for row in payload["rows"] if row["recipe"] != "dense"]
    if len(pruned) != 1:
        raise ValueError(f"expected one pruned row, found {len(pruned)}")
    ratio, lang = worst(pruned[0]["perplexity"], dense)
    return ratio, lang, pruned[0]["recipe"]


def study_worst(payload: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """Worst ratio and language per row of a study payload, keyed by ``mix`` or the calibration language
    (single-language rows only; translation rows are left out, they are not single-language calibration)."""
    dense = next(row for row in payload["rows"] if row["kind"] == "dense")["perplexity"]
    out = {}
    for row in payload["rows"]:
        if row["kind"] == "language":
            out[row["lang"]] = worst(row["perplexity"], dense)
        elif row["kind"] == "mix":
            out["mix"] = worst(row["perplexity"], dense)
    return out


def setting_summary(
    setting: str, recovery: Path, study: Path | None, langs: tuple[str, ...] = LANGS
) -> dict[str, Any]:
    """One setting's mix row, single-language rows (present or missing), plain study rows and verdict."""
    mix_file = recovery / f"mix-{setting}.json"
    if not mix_file.exists():
        return {"setting": setting, "mix": None, "verdict": f"no mix row ({mix_file.name} missing)"}
    ratio, lang, recipe = recovery_worst(json.loads(mix_file.read_text()))
    summary: dict[str, Any] = {"setting": setting, "recipe": recipe, "mix": {"worst": ratio, "lang": lang}}
    singles: dict[str, Any] = {}
    for calib in langs:
        path = recovery / f"single-{calib}-{setting}.json"
        if path.exists():
            single_ratio, single_lang, single_recipe = recovery_worst(json.loads(path.read_text()))
            if single_recipe != recipe:
                raise ValueError(f"{path.name} ran {single_recipe!r}, the mix row {recipe!r}")
            singles[calib] = {"worst": single_ratio, "lang": single_lang}
        else:
            singles[calib] = None
    summary["singles"] = singles
    plain: dict[str, Any] = {}
    if study is not None and (study / f"study-{setting}.json").exists():
        rows = study_worst(json.loads((study / f"study-{setting}.json").read_text()))
        plain = {key: {"worst": value[0], "lang": value[1]} for key, value in rows.items()}
    summary["plain"] = plain
    missing = [calib for calib, row in singles.items() if row is None]
    beaten = [calib for calib, row in singles.items() if row is not None and row["worst"] <= ratio]
    beaten += [f"plain {key}" for key, row in plain.items() if key != "mix" and row["worst"] <= ratio]
    if beaten:
        summary["verdict"] = f"not met: {', '.join(beaten)} at or below the mix"
    elif missing:
        summary["verdict"] = f"open: no best-recipe row calibrated on {', '.join(missing)}"
    else:
        summary["verdict"] = "met"
    return summary


def _cell(row: dict[str, Any] | None) -> str:
    return "not run" if row is None else f"{row['worst']:.2f}x ({row['lang']})"


def markdown(summaries: list[dict[str, Any]], langs: tuple[str, ...] = LANGS) -> str:
    headers = ["setting", "recipe", "mix (best recipe)", *[f"{lang} alone" for lang in langs]]
    headers += ["plain study: mix / best single", "verdict"]
    body = []
    for item in summaries:
        if item["mix"] is None:
            body.append([item["setting"], "-", "-", *["-"] * len(langs), "-", item["verdict"]])
            continue
        plain = item["plain"]
        singles = [row for key, row in plain.items() if key != "mix"]
        best_plain = min(singles, key=lambda row: row["worst"]) if singles else None
        plain_cell = f"{_cell(plain.get('mix'))} / {_cell(best_plain)}" if plain else "-"
        cells = [item["setting"], item["recipe"], f"**{_cell(item['mix'])}**"]
        cells += [_cell(item["singles"][lang]) for lang in langs]
        body.append([*cells, plain_cell, item["verdict"]])
    note = (
        "Worst language's perplexity ratio to dense (and which language), on the study's held-out windows "
        "of en, de, ru, zh, ja, ar. The best recipe of each setting is calibrated on the six-language mix "
        "and on each language alone (16 x 512 handbook windows); the plain rows are the study's (same "
        "windows). The mix goal holds where the mix row's worst is below every single-language row's."
    )
    return note + "\n\n" + markdown_table(headers, body) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m polysparse.bench.experiments.mix_goal", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--recovery", type=Path, default=Path("bench/results/recovery/gemma-3-270m"))
    parser.add_argument("--study", type=Path, default=Path("bench/results/study/gemma-3-270m"))
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for mix_goal.{md,json} (default --recovery)"
    )
    args = parser.parse_args(argv)
    out = args.out or args.recovery
    summaries = [setting_summary(setting, args.recovery, args.study) for setting in SETTINGS]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "mix_goal.json", {"settings": summaries, "environment": environment()})
    text = markdown(summaries)
    (out / "mix_goal.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
