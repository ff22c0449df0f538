import pytest

from polysparse.sparsify.corpora import MissingDependencyError, languages
from polysparse.sparsify.corpora.languages import (
    ISO_CODES_VARIABLE,
    NON_LATIN_SCRIPT,
    UNDETERMINED,
    UnknownLanguageError,
    iso639_2,
    known_languages,
    language_name,
    locale_language,
    normalize_language,
    select_locales,
    split_locale,
)


@pytest.mark.parametrize(
    "spelling",
    ["de", "DE", "de-DE", "de_DE", "de_DE.UTF-8", "de_DE@euro", "deu", "ger", "German", "german", " GERMAN "],
)
def test_every_spelling_of_german(spelling):
    assert normalize_language(spelling) == "de"


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("zh-CN", "zh"),
        ("zh_TW", "zh"),
        ("zh-Hant", "zh"),
        ("chi", "zh"),
        ("zho", "zh"),
        ("Chinese", "zh"),
        ("pt-BR", "pt"),
        ("pt_PT", "pt"),
        ("por", "pt"),
        ("fre", "fr"),
        ("fra", "fr"),
        ("Spanish", "es"),
        ("Castilian", "es"),
        ("ja_JP.eucJP", "ja"),
        ("sr@latin", "sr"),
        ("Norwegian Bokmål", "nb"),
        ("Farsi", "fa"),
        ("Persian", "fa"),
        ("ar-MA", "ar"),
        ("iw", "he"),
        ("Greek", "el"),
        ("gre", "el"),
    ],
)
def test_codes_names_and_regional_variants(spelling, expected):
    assert normalize_language(spelling) == expected


def test_variants_are_kept_apart_from_the_language():
    assert split_locale("zh_TW") == ("zh", "tw")
    assert split_locale("de_DE.UTF-8") == ("de", "de")
    assert split_locale("sr@latin") == ("sr", "@latin")
    assert split_locale("German") == ("de", "")


def test_unknown_language_says_what_is_accepted_and_where_to_look():
    # Not the ~180 known codes (issue 14): the forms accepted, and the command that lists what is installed.
    with pytest.raises(UnknownLanguageError) as error:
        normalize_language("Klingon")
    message = str(error.value)
    assert "Klingon" in message and "ISO 639-1" in message and "polysparse corpora" in message
    assert "zu (Zulu)" not in message and len(message) < 250


def test_undetermined_and_names():
    assert normalize_language("und") == UNDETERMINED
    assert language_name("de_DE") == "German"
    assert language_name("zh-TW") == "Chinese"
    assert language_name("und") == "Undetermined"
    assert iso639_2("fr") == "fra" and iso639_2("fr", bibliographic=True) == "fre"
    assert iso639_2("ja", bibliographic=True) == "jpn"


def test_table_covers_every_iso_639_1_language_of_the_sources():
    sources = {"ar", "ca", "cs", "da", "de", "el", "en", "es", "fa", "fr", "hr", "id", "it", "ja", "ko", "nb"}
    sources |= {"nl", "pl", "pt", "ro", "ru", "sv", "tr", "vi", "zh", "uk", "ka", "he", "hi", "th", "bn"}
    assert set(sources) <= set(known_languages())
    assert len(known_languages()) >= 180
    assert {"ja", "zh", "ru", "ar", "fa", "uk"} <= NON_LATIN_SCRIPT
    assert not {"de", "fr", "vi", "tr"} & NON_LATIN_SCRIPT


def test_locale_folders():
    assert locale_language("pt_BR") == ("pt", "br")
    assert locale_language("ja") == ("ja", "")
    for not_a_language in ("ast", "man1", "C", "LC_MESSAGES", "Common_Content", "images"):
        assert locale_language(not_a_language) is None


def test_select_locales_by_language_and_variant():
    installed = ["de-DE", "en-US", "zh-CN", "zh-TW", "sr", "sr@latin"]
    assert select_locales("zh", installed, "x") == ("zh", ["zh-CN", "zh-TW"])
    assert select_locales("zh_TW.UTF-8", installed, "x") == ("zh", ["zh-TW"])
    assert select_locales("German", installed, "x") == ("de", ["de-DE"])
    assert select_locales("de-AT", installed, "x") == ("de", ["de-DE"])  # no such variant: the language
    assert select_locales("sr", installed, "x") == ("sr", ["sr"])
    assert select_locales("sr@latin", installed, "x") == ("sr", ["sr@latin"])


def test_select_locales_error_lists_what_the_source_has():
    with pytest.raises(UnknownLanguageError) as error:
        select_locales("ar", ["de-DE", "en-US"], "handbook")
    assert "handbook" in str(error.value) and "de (German), en (English)" in str(error.value)
    assert error.value.available == ("de", "en")
    with pytest.raises(UnknownLanguageError) as error:
        select_locales("xx-YY", ["de-DE"], "handbook")
    assert "installed here: de (German)" in str(error.value)


# Every other name the hand-written table (before iso-codes) accepted, and its language.
FORMER_TABLE_NAMES = [
    ("Bokmål", "nb"), ("Castilian", "es"), ("Chewa", "ny"), ("Chuang", "za"), ("Church Slavic", "cu"),
    ("Divehi", "dv"), ("Farsi", "fa"), ("Flemish", "nl"), ("Gaelic", "gd"), ("Gikuyu", "ki"),
    ("Haitian", "ht"), ("Kalaallisut", "kl"), ("Kirghiz", "ky"), ("Kuanyama", "kj"), ("Letzeburgesch", "lb"),
    ("Limburgan", "li"), ("Limburger", "li"), ("Maldivian", "dv"), ("Modern Greek", "el"),
    ("Moldavian", "ro"), ("Moldovan", "ro"), ("Navaho", "nv"), ("Norwegian Bokmal", "nb"), ("Nuosu", "ii"),
    ("Nyanja", "ny"), ("Nynorsk", "nn"), ("Occidental", "ie"), ("Old Bulgarian", "cu"),
    ("Old Church Slavonic", "cu"), ("Old Slavonic", "cu"), ("Ossetic", "os"), ("Panjabi", "pa"),
    ("Provençal", "oc"), ("Pushto", "ps"), ("Sesotho", "st"), ("Sinhalese", "si"), ("Uighur", "ug"),
    ("Valencian", "ca"), ("in", "id"), ("iw", "he"), ("ji", "yi"),
]  # fmt: skip


@pytest.mark.parametrize("name, code", FORMER_TABLE_NAMES)
def test_names_the_former_table_accepted_still_give_their_language(name, code):
    assert normalize_language(name) == code


def test_short_english_names_where_iso_codes_lists_several_or_inverts_one():
    names = [language_name(code) for code in ("el", "ky", "nb", "to", "pa", "es", "bn")]
    assert names == ["Greek", "Kyrgyz", "Norwegian Bokmål", "Tonga", "Punjabi", "Spanish", "Bengali"]
    assert normalize_language("Greek, Modern (1453-)") == "el"  # iso-codes' own spelling is accepted too
    assert normalize_language("Bangla") == "bn"  # its common name


def test_a_missing_iso_codes_table_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv(ISO_CODES_VARIABLE, str(tmp_path))
    languages._languages.cache_clear()
    languages._index.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match=r"apt-get install iso-codes"):
            normalize_language("German")
    finally:
        monkeypatch.delenv(ISO_CODES_VARIABLE)
        languages._languages.cache_clear()
        languages._index.cache_clear()
    assert normalize_language("German") == "de"
