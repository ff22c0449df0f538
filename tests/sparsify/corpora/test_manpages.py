import gzip
import os

import pytest

from polysparse.sparsify.corpora.languages import UnknownLanguageError
from polysparse.sparsify.corpora.manpages import (
    installed_locales,
    load_manpage_documents,
    quick_statistics,
)


def write_page(root, locale, name, text):
    folder = root / locale / "man1" if locale else root / "man1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.gz").write_bytes(gzip.compress(text.encode()))
    return folder / f"{name}.gz"


ENGLISH = (
    ".TH KITE 1\n.SH NAME\nkite \\- fly a kite\n.SH DESCRIPTION\nKites need wind.\n.PP\nStrings may tangle.\n"
)
GERMAN = (
    ".TH KITE 1\n.SH BEZEICHNUNG\nkite \\- einen Drachen steigen lassen\n.SH BESCHREIBUNG\n"
    "Drachen brauchen Wind.\n.PP\nStrings may tangle.\n.PP\nDrachen brauchen Wind.\n"
)
JAPANESE = ".TH KITE 1\n.SH 名前\nkite \\- 凧を揚げる\n.SH 説明\n凧には風が要る。\n.PP\nStrings may tangle.\n"


@pytest.fixture
def man_root(tmp_path):
    write_page(tmp_path, "", "kite.1", ENGLISH)
    german = write_page(tmp_path, "de", "kite.1", GERMAN)
    write_page(tmp_path, "de", "other.1", ".TH OTHER 1\n.SH BESCHREIBUNG\nDrachen brauchen Wind.\n")
    write_page(tmp_path, "de", "redirect.1", ".so man1/kite.1\n")
    os.symlink(german, german.parent / "alias.1.gz")
    write_page(tmp_path, "ja", "kite.1", JAPANESE)
    write_page(tmp_path, "zh_CN", "kite.1", ".SH 描述\n风筝需要风。\n")
    write_page(tmp_path, "zh_TW", "kite.1", ".SH 描述\n風箏需要風。\n")
    (tmp_path / "ast" / "man1").mkdir(parents=True)  # no ISO 639-1 code: not offered
    return str(tmp_path)


def test_synthetic_pages(man_root):
    assert installed_locales(man_root) == ["de", "en", "ja", "zh_CN", "zh_TW"]
    docs = load_manpage_documents("de_DE.UTF-8", root=man_root)
    # other.1 repeats a paragraph (deduplicated: no document), redirect.1 has no text, alias.1 is a link.
    assert [d.doc_id for d in docs] == ["manpages/de/man1/kite.1"]
    # The paragraph identical to the English original is dropped; the repeated one kept once.
    assert docs[0].text == "kite - einen Drachen steigen lassen\n\nDrachen brauchen Wind."
    (japanese,) = load_manpage_documents("ja", root=man_root)
    assert japanese.text == "kite - 凧を揚げる\n\n凧には風が要る。"
    chinese = load_manpage_documents("zh", root=man_root)
    assert [d.doc_id for d in chinese] == ["manpages/zh_CN/man1/kite.1", "manpages/zh_TW/man1/kite.1"]
    assert [d.doc_id for d in load_manpage_documents("zh-TW", root=man_root)] == [
        "manpages/zh_TW/man1/kite.1"
    ]
    english = load_manpage_documents("en", root=man_root)
    assert english[0].text.split("\n\n") == ["kite - fly a kite", "Kites need wind.", "Strings may tangle."]
    with pytest.raises(UnknownLanguageError) as error:
        load_manpage_documents("fr", root=man_root)
    assert "de (German), en (English), ja (Japanese), zh (Chinese)" in str(error.value)


def test_synthetic_statistics(man_root):
    stats = quick_statistics(man_root)
    assert stats["de"][0] == 3  # page files, links excluded
    assert stats["de"][1] == len(GERMAN) + len(".TH OTHER 1\n.SH BESCHREIBUNG\nDrachen brauchen Wind.\n") + 16
    assert stats["zh"][0] == 2


def test_real_russian_pages(require_installed):
    require_installed("/usr/share/man/ru/man1", "manpages-ru")
    docs = load_manpage_documents("ru")
    assert len(docs) > 100
    assert all(d.doc_id.startswith("manpages/ru/man") and not d.doc_id.endswith(".gz") for d in docs)
    paragraphs = [p for d in docs for p in d.text.split("\n\n")]
    assert len(paragraphs) == len(set(paragraphs))
    # every paragraph holds Cyrillic: untranslated English ones are gone
    assert all(any("\u0400" <= c <= "\u04ff" for c in p) for p in paragraphs)
    # No roff left, but for the few pages about roff itself (man(7) quotes ".SH" and "\\fB" as examples).
    roff_like = [p for p in paragraphs if p.startswith(".") or "\\f" in p or "\\(" in p]
    assert len(roff_like) < len(paragraphs) / 1000
    assert sum(len(p) for p in paragraphs) > 500_000
