"""fortunes:LANG: entries of fortune's collections, technical ones left out, classical Chinese found."""

import os

import pytest

from polysparse.sparsify.corpora import SourceSpec, available_corpora, load_documents, missing_corpora_hint
from polysparse.sparsify.corpora.fortunes import (
    installed_locales,
    load_fortune_documents,
    quick_statistics,
    split_entries,
)
from polysparse.sparsify.corpora.languages import UnknownLanguageError


@pytest.fixture
def fortune_root(tmp_path, monkeypatch):
    (tmp_path / "wisdom").write_text("A penny saved.\n%\nHaste makes waste.\n\t\t-- Someone\n%\n", "utf-8")
    (tmp_path / "wisdom.dat").write_bytes(b"\x00\x00\x00\x02index")
    os.symlink(tmp_path / "wisdom", tmp_path / "wisdom.u8")
    (tmp_path / "linux").write_text("Use the source, Luke.\n%\n", "utf-8")
    (tmp_path / "chinese").write_text("在 Debian 这种规模的项目中\n%\n", "utf-8")  # the Debian Reference
    poem = "\x1b[32m《静夜思》\x1b[m\n床前明月光，疑是地上霜。\n%\nNo Chinese here.\n"
    (tmp_path / "tang300").write_text(poem, "utf-8")
    german = tmp_path / "de"
    german.mkdir()
    saying = "Wer A sagt, muss auch B sagen."
    (german / "zitate").write_text(f"{saying}   \n%\n{saying}\n", "utf-8")
    (german / "computer").write_text("Der Rechner stürzt ab.\n%\n", "utf-8")
    monkeypatch.setenv("POLYSPARSE_FORTUNES_ROOT", str(tmp_path))
    return tmp_path


def test_entries_split_at_percent_lines_without_colour_codes():
    text = "\x1b[33mOne\x1b[m line.  \n%\n\n%\nTwo\n  lines.\n%   \nlast"
    assert split_entries(text) == ["One line.", "Two\n  lines.", "last"]


def test_documents_are_entries_and_technical_collections_are_left_out(fortune_root):
    assert installed_locales() == ["de", "en", "zh"]
    english = load_documents(SourceSpec.parse("fortunes:en"))
    assert [d.text for d in english] == ["A penny saved.", "Haste makes waste.\n\t\t-- Someone"]
    assert [d.doc_id for d in english] == ["fortunes/en/wisdom#0", "fortunes/en/wisdom#1"]
    assert {d.source for d in english} == {"fortunes"} and {d.lang for d in english} == {"en"}
    german = load_fortune_documents("German")  # computer left out, the repeated saying kept once
    assert [d.text for d in german] == ["Wer A sagt, muss auch B sagen."]
    chinese = load_fortune_documents("zh")  # the poems, not the Debian Reference; English entry dropped
    assert [d.text for d in chinese] == ["《静夜思》\n床前明月光，疑是地上霜。"]
    assert quick_statistics()["en"] == (3, len("A penny saved.\n%\nHaste makes waste.\n\t\t-- Someone\n%\n"))


def test_a_language_without_collections_is_refused_with_what_is_there(fortune_root):
    with pytest.raises(UnknownLanguageError, match=r"de \(German\), en \(English\), zh \(Chinese\)"):
        load_fortune_documents("ja")


def test_hints_name_the_debian_package():
    assert "apt-get install fortunes-de" in missing_corpora_hint("fortunes", "German")
    assert "apt-get install fortunes-zh" in missing_corpora_hint("fortunes", "zh")
    assert "no fortune collection in Japanese" in missing_corpora_hint("fortunes", "ja")


def test_installed_collections(require_installed):
    require_installed("/usr/share/games/fortunes/de", "fortunes-de")
    require_installed("/usr/share/games/fortunes/ru", "fortunes-ru")
    found = {c.lang: c for c in available_corpora(("fortunes",))}
    assert {"en", "de", "ru", "zh"} <= set(found)
    assert found["de"].package == "fortunes-de" and found["de"].documents > 10_000
    chinese = load_fortune_documents("zh")
    assert len(chinese) > 300 and all("Debian" not in d.text for d in chinese)
    german = load_fortune_documents("de")
    assert not any(d.doc_id.startswith(("fortunes/de/computer#", "fortunes/de/debian#")) for d in german)
