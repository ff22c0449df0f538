"""The handbook / installation guide rules, on a synthetic book and on the installed packages."""

import pytest

from polysparse.sparsify.corpora import SourceSpec, load_documents, split_by_document
from polysparse.sparsify.corpora.handbook import handbook, load_handbook_documents, load_handbook_parallel
from polysparse.sparsify.corpora.html_book import (
    HtmlBook,
    _locale_pages,
    book_documents,
    book_parallel,
    book_statistics,
    english_paragraphs,
    installed_locales,
)
from polysparse.sparsify.corpora.install_guide import (
    install_guide,
    load_install_guide_documents,
    load_install_guide_parallel,
)
from polysparse.sparsify.corpora.languages import UnknownLanguageError


def para(text: str) -> str:
    return f'<div class="para">{text}</div>'


EN_ORCHARD = [
    "The orchard robot waters seven pear trees every morning.",
    "Each robot reports its battery level to the shed computer.",
    "Watering schedules are described in Chapter 9, Rainy Days.",
]
DE_ORCHARD = [
    "Der Obstgarten-Roboter gießt jeden Morgen sieben Birnbäume.",
    EN_ORCHARD[1],  # left untranslated: English
    "Watering schedules are described in Kapitel 9, Rainy Days.",  # English with a translated cross-reference
]
EN_SHED = ["The shed keeps spare wheels.", "Its door squeaks in winter."]
DE_SHED = [
    "Im Schuppen liegen Ersatzräder.",
    "Seine Tür quietscht im Winter.",
    "Der Obstgarten-Roboter gießt jeden Morgen sieben Birnbäume.",  # repeated from the first page
]
JA_ORCHARD = [
    "果樹園のロボットは毎朝七本の梨の木に水をやる。",
    "Robot battery levels go to the shed.",
    "散水の予定は第9章にある。",
]


@pytest.fixture
def book(tmp_path, page_writer):
    page_writer(
        tmp_path,
        "en-US",
        {
            "orchard.html": '<div class="titlepage"><h2 class="title">Orchard</h2></div>'
            + "".join(para(p) for p in EN_ORCHARD)
            + '<pre class="screen">$ robot --water</pre>',
            "shed.html": "".join(para(p) for p in EN_SHED),
        },
    )
    page_writer(
        tmp_path,
        "de-DE",
        {
            "orchard.html": "".join(para(p) for p in DE_ORCHARD) + '<pre class="screen">$ roboter</pre>',
            "shed.html": "".join(para(p) for p in DE_SHED),
        },
    )
    page_writer(tmp_path, "ja-JP", {"orchard.html": "".join(para(p) for p in JA_ORCHARD)})
    (tmp_path / "Common_Content").mkdir()
    return HtmlBook(name="book", package="fake-book", root=str(tmp_path))


def test_synthetic_documents_exclude_english_and_duplicates(book):
    assert installed_locales(book) == ["de-DE", "en-US", "ja-JP"]
    docs = book_documents(book, "de")
    assert [d.doc_id for d in docs] == ["book/de-DE/orchard.html", "book/de-DE/shed.html"]
    assert docs[0].text == DE_ORCHARD[0]  # untranslated and near-copy paragraphs are English
    assert docs[1].text == "\n\n".join(DE_SHED[:2])  # the repeated paragraph is kept once
    assert {d.lang for d in docs} == {"de"} and {d.source for d in docs} == {"book"}
    english = book_documents(book, "en-US")
    assert [d.text.split("\n\n") for d in english] == [EN_ORCHARD, EN_SHED]
    assert english_paragraphs(book) == frozenset(EN_ORCHARD + EN_SHED)


def test_synthetic_script_rule_drops_latin_only_paragraphs_in_japanese(book):
    (doc,) = book_documents(book, "Japanese")
    assert doc.text.split("\n\n") == [JA_ORCHARD[0], JA_ORCHARD[2]]


def test_synthetic_parallel_only_on_pages_whose_counts_match(book):
    pairs = book_parallel(book, "de", "en")
    # orchard.html: 3 = 3 paragraphs, two of them English in the German edition; shed.html: 3 != 2, skipped.
    assert [(p.src, p.tgt, p.pair_id) for p in pairs] == [
        (DE_ORCHARD[0], EN_ORCHARD[0], "book/de-DE+en-US/orchard.html#0")
    ]
    reverse = book_parallel(book, "en", "de")
    assert [(p.src, p.tgt, p.src_lang, p.tgt_lang) for p in reverse] == [
        (EN_ORCHARD[0], DE_ORCHARD[0], "en", "de")
    ]
    between = book_parallel(book, "ja", "de")
    assert [(p.src, p.tgt) for p in between] == [(JA_ORCHARD[0], DE_ORCHARD[0])]
    with pytest.raises(ValueError):
        book_parallel(book, "de", "de-DE")


def test_synthetic_unknown_and_missing_languages(book):
    with pytest.raises(UnknownLanguageError) as error:
        book_documents(book, "fr")
    assert "de (German), en (English), ja (Japanese)" in str(error.value)
    with pytest.raises(UnknownLanguageError):
        book_documents(book, "Elvish")


def test_synthetic_book_statistics_are_the_full_parse(book):
    stats = book_statistics(book)
    assert set(stats) == {"de", "en", "ja"}
    for lang in stats:
        docs = book_documents(book, lang)
        assert stats[lang] == (len(docs), sum(len(d.text.encode()) for d in docs))


# --- the installed packages ---------------------------------------------------------------------------------


@pytest.fixture
def real_handbook(require_installed):
    require_installed("/usr/share/doc/debian-handbook/html/en-US", "debian-handbook")
    return handbook()


@pytest.fixture
def real_guide(require_installed):
    require_installed("/usr/share/doc/installation-guide-amd64/en", "installation-guide-amd64")
    return install_guide()


def test_real_handbook_german(real_handbook):
    assert len(installed_locales(real_handbook)) >= 20
    docs = load_handbook_documents("de-DE")
    assert len(docs) > 80
    assert all(d.doc_id.startswith("handbook/de-DE/") and d.doc_id.endswith(".html") for d in docs)
    paragraphs = [p for d in docs for p in d.text.split("\n\n")]
    assert len(paragraphs) == len(set(paragraphs))  # deduplicated
    assert not set(paragraphs) & english_paragraphs(real_handbook)  # no English original
    assert sum(len(p) for p in paragraphs) > 300_000
    assert docs == load_documents(SourceSpec.parse("handbook:German"))
    calibration, evaluation = split_by_document(docs, eval_fraction=0.2, seed=3)
    assert {d.doc_id for d in calibration}.isdisjoint(d.doc_id for d in evaluation)
    assert len(calibration) + len(evaluation) == len(docs)


def test_real_handbook_parallel_pages_have_equal_counts(real_handbook):
    pairs = load_handbook_parallel("de", "en")
    assert len(pairs) > 1000
    german = dict(_locale_pages(real_handbook, "de-DE"))
    english = dict(_locale_pages(real_handbook, "en-US"))
    for pair in pairs[::50]:
        page, index = pair.pair_id.split("/")[-1].split("#")
        assert len(german[page]) == len(english[page])
        assert german[page][int(index)] == pair.src and english[page][int(index)] == pair.tgt


def test_real_handbook_mostly_untranslated_language_is_small(real_handbook):
    # The Danish edition is almost entirely untranslated: little Danish text is left.
    danish = sum(len(d.text) for d in load_handbook_documents("da"))
    german = sum(len(d.text) for d in load_handbook_documents("de"))
    assert danish < german / 5


def test_real_install_guide(real_guide):
    assert "apf.html" not in {p for p, _ in _locale_pages(real_guide, "en")}  # the GPL appendix
    docs = load_install_guide_documents("ja")
    assert len(docs) > 50 and all(d.doc_id.startswith("install-guide/ja/") for d in docs)
    assert sum(len(d.text) for d in docs) > 50_000
    pairs = load_install_guide_parallel("ja", "en")
    assert len(pairs) > 300 and pairs[0].src_lang == "ja" and pairs[0].tgt_lang == "en"
    with pytest.raises(UnknownLanguageError) as error:
        load_install_guide_documents("ar")
    assert "zh (Chinese)" in str(error.value)
