"""The text the committed results were calibrated and evaluated on is still the text the sources give.

``bench/results/corpora/window-hashes-before.json`` holds the fingerprints made with the hand-written .mo,
HTML and language-table code that polib, lxml and iso-codes replaced; a fast subset is recomputed here.
Installed files of another package version give other text, so a source whose installed files differ
from the recorded ones is skipped, saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polysparse.bench.experiments import window_hashes as wh

ROOT = Path(__file__).resolve().parents[3]
BASELINE = ROOT / "bench" / "results" / "corpora" / "window-hashes-before.json"


@pytest.fixture(scope="module")
def baseline():
    return json.loads(BASELINE.read_text(encoding="utf-8"))


def _same_installed_files(baseline, source: str, require_installed) -> None:
    root = wh.source_roots()[source]
    require_installed(str(root), f"the {source} source's files")
    if wh.installed_digest(root, wh.SOURCE_LANGS[source]) != baseline["installed"][source]:
        pytest.skip(f"the installed {source} files differ from those {BASELINE.name} was made from")


def test_the_baseline_is_the_study_protocol(baseline):
    assert baseline["protocol"] == wh.Protocol().__dict__
    assert baseline["environment"]["dirty"] is False  # made from a commit, not from edits


@pytest.mark.parametrize("spec", ["gettext:de", "handbook:de", "install-guide:ja"])
def test_documents_are_unchanged(baseline, require_installed, spec):
    _same_installed_files(baseline, spec.split(":")[0], require_installed)
    assert wh.documents_fingerprint(spec) == baseline["documents"][spec]


@pytest.mark.parametrize("spec", ["gettext:ja->en", "handbook:de->en"])
def test_parallel_pairs_are_unchanged(baseline, require_installed, spec):
    _same_installed_files(baseline, spec.split(":")[0], require_installed)
    assert wh.parallel_fingerprint(spec) == baseline["parallel"][spec]


def test_language_table_is_unchanged(baseline):
    assert wh.languages_fingerprint() == baseline["languages"]


def test_study_windows_are_unchanged(baseline, require_installed):
    """Two of the study's calibration window sets on Gemma 3 270M's tokenizer, where it is cached."""
    for source in ("handbook", "gettext"):
        _same_installed_files(baseline, source, require_installed)
    from polysparse.bench.assets import cache_dir

    folder = cache_dir() / baseline["model"]
    if not (folder / "tokenizer.json").is_file():
        pytest.skip(f"no converted {baseline['model']} in {cache_dir()} (`make demo` makes it)")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    subset = {"handbook": ("de",), "gettext": ("ja",)}
    windows = wh.window_fingerprints(tokenizer, subset, wh.Protocol())
    for key in ("calibration handbook:de", "calibration translate:ja->en:gettext,shots=4"):
        assert windows[key] == baseline["windows"][key], key
