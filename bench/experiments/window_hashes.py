"""Fingerprints of the text that the study, the recovery runs and the tasks are built from.

A change to text extraction (a hand-written parser replaced by a library) must not change the calibration
or evaluation text: every committed study, recovery and demo result was computed on it. This module writes
the fingerprints of that text so that a run before and a run after the change can be compared:

- ``documents``: every document of a source in a language (``doc_id`` and text, in order);
- ``parallel``: every aligned pair of a parallel source (``X->en``);
- ``windows``: the token windows of the study's protocol (16 x 512 calibration windows, 4 x 256 held-out
  evaluation windows, seed 0; X->English translation prompts with 4 shots) on a model's tokenizer, as
  :meth:`TokenWindows.fingerprint` hashes them (the study JSON records the same hash per calibration row);
- ``tasks``: the items of the study's task families (``translation-choice:X->en:gettext``,
  ``continuation-choice:X:handbook``, 100 items);
- ``languages``: the language table (codes, English names, ISO 639-2 codes), whose names enter translation
  prompts;
- ``installed``: a digest of the installed files each source read (a different package version gives
  different text, so the other hashes only compare between runs with equal digests).

    python -P -m polysparse.bench.experiments.window_hashes --model gemma-3-270m --out bench/results/corpora
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polysparse.bench.report import environment, markdown_table, write_json
from polysparse.sparsify.calibration import calibration_windows, evaluation_windows
from polysparse.sparsify.calibration_spec import CalibrationSpec, SourcePart, TranslatePart
from polysparse.sparsify.corpora import (
    EmptyCorpusError,
    ParallelSpec,
    SourceSpec,
    UnknownLanguageError,
    known_languages,
    language_name,
    load_documents,
    load_parallel,
)
from polysparse.sparsify.corpora.languages import iso639_2, locale_language

STUDY_LANGS = ("en", "de", "ru", "zh", "ja", "ar")
MANPAGE_LANGS = ("de", "fr", "ru", "ja", "zh", "es", "pl", "uk")
SOURCE_LANGS: dict[str, tuple[str, ...]] = {
    "handbook": STUDY_LANGS,
    "install-guide": STUDY_LANGS,
    "gettext": tuple(lang for lang in STUDY_LANGS if lang != "en"),
    "manpages": MANPAGE_LANGS,
}
"""Every source and the languages whose text the committed results (or the man-page source) use."""


@dataclass(frozen=True)
class Protocol:
    """The study's window counts and lengths (bench/scripts/study_gemma.sh)."""

    nsamples: int = 16
    seqlen: int = 512
    eval_windows: int = 4
    eval_seqlen: int = 256
    shots: int = 4
    seed: int = 0
    task_limit: int = 100


def _digest(chunks: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _guarded(compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()``, or the reason there is nothing (a language a source does not have here)."""
    try:
        return compute()
    except (EmptyCorpusError, UnknownLanguageError) as error:
        return {"absent": str(error).splitlines()[0]}


def documents_fingerprint(spec: str) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        documents = load_documents(SourceSpec.parse(spec))
        return {
            "documents": len(documents),
            "characters": sum(len(d.text) for d in documents),
            "sha256": _digest(part for d in documents for part in (d.doc_id, d.lang, d.text)),
        }

    return _guarded(compute)


def parallel_fingerprint(spec: str) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        pairs = load_parallel(ParallelSpec.parse(spec))
        return {
            "pairs": len(pairs),
            "sha256": _digest(
                part for p in pairs for part in (p.pair_id, p.src_lang, p.tgt_lang, p.src, p.tgt)
            ),
        }

    return _guarded(compute)


def tasks_fingerprint(spec: str, protocol: Protocol) -> dict[str, Any]:
    from polysparse.sparsify.tasks import TaskError, build_items

    def compute() -> dict[str, Any]:
        try:
            items = build_items(spec, seed=protocol.seed, limit=protocol.task_limit)
        except TaskError as error:
            return {"absent": str(error).splitlines()[0]}
        return {
            "items": len(items),
            "sha256": _digest(json.dumps(item.to_dict(), ensure_ascii=False) for item in items),
        }

    return _guarded(compute)


def windows_fingerprint(make: Callable[[], Any]) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        windows = make()
        return {
            "windows": len(windows),
            "seqlen": windows.seqlen,
            "tokens": windows.ntokens,
            "sha256": windows.fingerprint(),
        }

    return _guarded(compute)


def languages_fingerprint() -> dict[str, Any]:
    table = [(c, language_name(c), iso639_2(c), iso639_2(c, bibliographic=True)) for c in known_languages()]
    return {"languages": len(table), "sha256": _digest("\t".join(row) for row in table)}


# --- what is installed ------------------------------------------------------------------------------------


def source_roots() -> dict[str, Path]:
    """Where each installed source reads its locale folders (after the environment overrides)."""
    from polysparse.sparsify.corpora import gettext_mo, handbook, install_guide, manpages

    return {
        "handbook": Path(handbook.handbook().root),
        "install-guide": Path(install_guide.install_guide().root),
        "gettext": gettext_mo.locale_root(),
        "manpages": Path(os.environ.get(manpages.ROOT_VARIABLE) or manpages.DEFAULT_ROOT),
    }


def installed_digest(root: Path, langs: Sequence[str]) -> dict[str, Any]:
    """Digest of every file under the locale folders of ``root`` in ``langs`` or English (the books and the
    man pages compare with their English edition). English man pages (``man<N>`` folders) are left out:
    they come from hundreds of packages; the translated folders hold the text."""
    wanted = {*langs, "en"}
    folders = sorted(
        entry
        for entry in (root.iterdir() if root.is_dir() else ())
        if entry.is_dir() and (locale_language(entry.name) or ("",))[0] in wanted
    )
    digest = hashlib.sha256()
    files = 0
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            relative = str(path.relative_to(root)).encode()
            if path.is_symlink():
                digest.update(relative + b" -> " + os.readlink(path).encode() + b"\x00")
            elif path.is_file():
                digest.update(relative + b"\x00" + hashlib.sha256(path.read_bytes()).digest())
                files += 1
    return {"folders": [f.name for f in folders], "files": files, "sha256": digest.hexdigest()}


# --- every file the parsers read ---------------------------------------------------------------------------


def catalogue_entries_fingerprint(root: Path) -> dict[str, Any]:
    """Every entry of every ``.mo`` catalogue under ``root`` (all locales), as :func:`parse_mo` reads it."""
    from polysparse.sparsify.corpora.gettext_mo import MoFormatError, parse_mo

    chunks: list[str] = []
    readable = unreadable = 0
    for path in sorted(root.glob("*/LC_MESSAGES/*.mo")):
        try:
            catalogue = parse_mo(path.read_bytes())
        except MoFormatError:
            unreadable += 1
            continue
        readable += 1
        chunks.append(str(path.relative_to(root)))
        for e in catalogue.entries:
            chunks.extend((e.context or "", e.msgid, e.msgid_plural or "", *e.msgstr))
    return {"catalogues": readable, "unreadable": unreadable, "sha256": _digest(chunks)}


def book_paragraphs_fingerprint(root: Path) -> dict[str, Any]:
    """The paragraphs :func:`extract_paragraphs` finds on every page of a book (all locales)."""
    from polysparse.sparsify.corpora.html_prose import extract_paragraphs

    chunks: list[str] = []
    pages = paragraphs = 0
    for path in sorted(root.glob("*/*.html")):
        found = extract_paragraphs(path.read_bytes().decode("utf-8", errors="replace"))
        pages += 1
        paragraphs += len(found)
        chunks.extend((str(path.relative_to(root)), *found))
    return {"pages": pages, "paragraphs": paragraphs, "sha256": _digest(chunks)}


def language_inputs_fingerprint(roots: Iterable[Path]) -> dict[str, Any]:
    """How every installed locale folder name and every ISO 639-1 and 639-2 code and English name of the
    language table normalises (``split_locale``)."""
    from polysparse.sparsify.corpora.languages import split_locale

    inputs = {entry.name for root in roots if root.is_dir() for entry in root.iterdir() if entry.is_dir()}
    for code in known_languages():
        inputs |= {code, language_name(code), iso639_2(code), iso639_2(code, bibliographic=True)}
    rows = []
    for text in sorted(inputs):
        try:
            rows.append("\t".join((text, *split_locale(text))))
        except UnknownLanguageError:
            rows.append(f"{text}\tunknown")
    return {"inputs": len(rows), "sha256": _digest(rows)}


def extraction_fingerprints() -> dict[str, Any]:
    """The parsers' output on every installed file they read, whatever the language."""
    roots = source_roots()
    return {
        "gettext catalogues": catalogue_entries_fingerprint(roots["gettext"]),
        "handbook pages": book_paragraphs_fingerprint(roots["handbook"]),
        "install-guide pages": book_paragraphs_fingerprint(roots["install-guide"]),
        "language inputs": language_inputs_fingerprint(roots.values()),
    }


# --- the whole set ----------------------------------------------------------------------------------------


def text_fingerprints(source_langs: dict[str, tuple[str, ...]], protocol: Protocol) -> dict[str, Any]:
    """Everything but the token windows (no tokenizer needed): documents, pairs, task items, languages."""
    roots = source_roots()
    out: dict[str, Any] = {
        "installed": {
            source: installed_digest(roots[source], langs) for source, langs in source_langs.items()
        },
        "languages": languages_fingerprint(),
        "documents": {},
        "parallel": {},
        "tasks": {},
    }
    for source, langs in source_langs.items():
        for lang in langs:
            out["documents"][f"{source}:{lang}"] = documents_fingerprint(f"{source}:{lang}")
            if source != "manpages" and lang != "en":
                out["parallel"][f"{source}:{lang}->en"] = parallel_fingerprint(f"{source}:{lang}->en")
    for lang in source_langs.get("gettext", ()):
        spec = f"translation-choice:{lang}->en:gettext"
        out["tasks"][spec] = tasks_fingerprint(spec, protocol)
    for lang in source_langs.get("handbook", ()):
        spec = f"continuation-choice:{lang}:handbook"
        out["tasks"][spec] = tasks_fingerprint(spec, protocol)
    return out


def window_fingerprints(
    tokenizer, source_langs: dict[str, tuple[str, ...]], protocol: Protocol
) -> dict[str, Any]:
    """The study's calibration and held-out evaluation windows of every source and language, the equal mix
    of the handbook's languages, and X->English gettext translation prompts."""
    p = protocol
    out: dict[str, Any] = {}

    def calibrate(spec: CalibrationSpec) -> Callable[[], Any]:
        return lambda: calibration_windows(spec, tokenizer, p.nsamples, p.seqlen, p.seed)

    for source, langs in source_langs.items():
        for lang in langs:
            parsed = SourceSpec.parse(f"{source}:{lang}")
            out[f"calibration {source}:{lang}"] = windows_fingerprint(
                calibrate(CalibrationSpec.of([SourcePart(parsed)]))
            )
            out[f"evaluation {source}:{lang}"] = windows_fingerprint(
                lambda parsed=parsed: evaluation_windows(
                    parsed, tokenizer, p.eval_windows, p.eval_seqlen, p.seed
                )
            )
    mix_langs = source_langs.get("handbook", ())
    if len(mix_langs) > 1:
        mix = CalibrationSpec.of(
            [SourcePart(SourceSpec.parse(f"handbook:{lang}"), 1.0 / len(mix_langs)) for lang in mix_langs]
        )
        out[f"calibration {mix.text}"] = windows_fingerprint(calibrate(mix))
    for lang in source_langs.get("gettext", ()):
        spec = CalibrationSpec.of([TranslatePart.of(lang, "en", "gettext", p.shots)])
        out[f"calibration {spec.text}"] = windows_fingerprint(calibrate(spec))
    return out


def study_calibration_hashes(results: Path) -> dict[str, dict[str, str]]:
    """The calibration window hashes the committed study JSON files recorded: spec -> {file: sha256}."""
    recorded: dict[str, dict[str, str]] = {}
    for path in sorted(results.glob("**/study-*.json")):
        for row in json.loads(path.read_text(encoding="utf-8")).get("rows", []):
            calibration = row.get("calibration") or {}
            if row.get("calib") and calibration.get("sha256"):
                recorded.setdefault(row["calib"], {})[str(path)] = calibration["sha256"]
    return recorded


def study_check(windows: dict[str, Any], recorded: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Per calibration spec of the study: the study files whose recorded hash equals this run's, and those
    whose hash differs."""
    check = {}
    for key, value in windows.items():
        spec = key.removeprefix("calibration ")
        if spec in recorded and "sha256" in value:
            files = recorded[spec]
            check[spec] = {
                "same": sorted(f for f, sha in files.items() if sha == value["sha256"]),
                "different": sorted(f for f, sha in files.items() if sha != value["sha256"]),
            }
    return check


SECTIONS = ("installed", "extraction", "documents", "parallel", "tasks", "windows")


def compare(payload: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Per section, the specs whose hash equals the baseline's, and those that differ or are missing."""
    out: dict[str, Any] = {"baseline_commit": baseline.get("environment", {}).get("commit")}
    for section in (*SECTIONS, "languages"):
        mine, theirs = payload.get(section), baseline.get(section)
        if mine is None or theirs is None:
            continue
        if section == "languages":
            mine, theirs = {"languages": mine}, {"languages": theirs}
        same = sorted(k for k in mine if k in theirs and mine[k] == theirs[k])
        out[section] = {
            "same": len(same),
            "different": sorted(k for k in mine if mine.get(k) != theirs.get(k)),
        }
        out[section]["different"] += sorted(k for k in theirs if k not in mine)
    return out


def markdown(payload: dict[str, Any]) -> str:
    env = payload["environment"]
    lines = [
        "# Fingerprints of the calibration and evaluation text",
        "",
        f"`{env['command']}` at commit `{env['commit']}` ({env['date']}); model `{payload['model']}`. Each "
        "hash is a sha256 (first 16 hex digits shown; the JSON has all 64).",
        "",
    ]
    comparison = payload.get("comparison")
    if comparison:
        rows = [
            [section, value["same"], ", ".join(f"`{k}`" for k in value["different"]) or "none"]
            for section, value in comparison.items()
            if isinstance(value, dict)
        ]
        lines.extend(
            [
                f"## Against the baseline (commit `{comparison['baseline_commit']}`)",
                "",
                markdown_table(["section", "same hash", "different or missing"], rows),
                "",
            ]
        )

    def table(title: str, section: dict[str, Any], count: str) -> None:
        rows = []
        for key, value in section.items():
            if "absent" in value:
                rows.append([f"`{key}`", "absent", value["absent"].split(";")[0]])
            else:
                rows.append([f"`{key}`", value.get(count), f"`{value['sha256'][:16]}`"])
        lines.extend([f"## {title}", "", markdown_table(["spec", count, "sha256"], rows), ""])

    table("Installed files", payload["installed"], "files")
    if "extraction" in payload:
        rows = [
            [f"`{k}`", ", ".join(f"{n} {v[n]}" for n in v if n != "sha256"), f"`{v['sha256'][:16]}`"]
            for k, v in payload["extraction"].items()
        ]
        lines.extend(
            [
                "## Every installed file the parsers read",
                "",
                markdown_table(["input", "count", "sha256"], rows),
                "",
            ]
        )
    table("Documents", payload["documents"], "documents")
    table("Parallel pairs", payload["parallel"], "pairs")
    table("Task items", payload["tasks"], "items")
    if "windows" in payload:
        table("Token windows", payload["windows"], "windows")
    check = payload.get("study_check", {})
    if check:
        rows = [
            [f"`{spec}`", len(value["same"]), ", ".join(f"`{f}`" for f in value["different"]) or "none"]
            for spec, value in check.items()
        ]
        lines.extend(
            [
                "## Calibration windows against the hashes the committed study files recorded",
                "",
                markdown_table(["calibration spec", "files with the same hash", "files with another"], rows),
                "",
            ]
        )
    lang = payload["languages"]
    lines.append(f"Language table: {lang['languages']} languages, `{lang['sha256'][:16]}`.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="gemma-3-270m", help="model whose tokenizer cuts the windows")
    parser.add_argument("--out", default="bench/results/corpora", help="folder for window-hashes.{json,md}")
    parser.add_argument("--name", default="window-hashes")
    parser.add_argument("--no-windows", action="store_true", help="text only: no tokenizer, no windows")
    parser.add_argument("--compare", help="an earlier window-hashes JSON to compare every hash with")
    parser.add_argument(
        "--study-results",
        default="bench/results/study",
        help="study JSON files whose recorded hashes to check",
    )
    args = parser.parse_args(argv)

    protocol = Protocol()
    run = environment()  # the commit and dirty flag of the code that reads the text, before any edit
    payload: dict[str, Any] = {"model": args.model, "protocol": protocol.__dict__, "sources": SOURCE_LANGS}
    payload.update(text_fingerprints(SOURCE_LANGS, protocol))
    payload["extraction"] = extraction_fingerprints()
    if not args.no_windows:
        from transformers import AutoTokenizer

        from polysparse.bench.assets import resolve_model

        tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model))
        payload["windows"] = window_fingerprints(tokenizer, SOURCE_LANGS, protocol)
        recorded = study_calibration_hashes(Path(args.study_results))
        payload["study_check"] = study_check(payload["windows"], recorded)
    if args.compare:
        payload["comparison"] = compare(payload, json.loads(Path(args.compare).read_text(encoding="utf-8")))
    payload["environment"] = run
    out = Path(args.out)
    write_json(out / f"{args.name}.json", payload)
    (out / f"{args.name}.md").write_text(markdown(payload), encoding="utf-8")
    print(f"wrote {out / args.name}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
