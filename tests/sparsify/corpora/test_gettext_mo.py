import pytest

from helpers.mo_files import write_mo
from polysparse.sparsify.corpora.gettext_mo import (
    MoFormatError,
    accelerator,
    clean_message,
    installed_locales,
    load_gettext_documents,
    load_gettext_parallel,
    load_parallel_pairs,
    only_directives,
    parse_mo,
    quick_statistics,
)
from polysparse.sparsify.corpora.languages import UnknownLanguageError

KITE_ENTRIES = [
    (None, "Fly the kite", None, ["Den Drachen steigen lassen"]),
    (None, "_Open", None, ["Ö_ffnen"]),
    (None, "&Quit", None, ["&Beenden"]),
    (None, "%s: %s", None, ["%s: %s"]),  # only directives
    (None, "{count} kites", None, ["{count} Drachen"]),
    (None, "Kite", None, ["Kite"]),  # identical: untranslated
    (None, "Untranslated sentence", None, [""]),
    ("menu", "String", None, ["Schnur"]),
    ("tool", "String", None, ["Zeichenkette"]),
    (None, "One kite flies", "%d kites fly", ["Ein Drachen fliegt", "%d Drachen fliegen"]),
    (None, "<b>Strong</b> wind", None, ["<b>Starker</b> Wind"]),
]


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_parse_mo_both_byte_orders(byteorder):
    catalogue = parse_mo(write_mo(KITE_ENTRIES, byteorder=byteorder))
    assert catalogue.header["Language"] == "de"
    assert len(catalogue.entries) == len(KITE_ENTRIES)  # the header entry is not an entry
    by_key = {(e.context, e.msgid): e for e in catalogue.entries}
    plural = by_key[(None, "One kite flies")]
    assert plural.msgid_plural == "%d kites fly" and plural.msgstr == (
        "Ein Drachen fliegt",
        "%d Drachen fliegen",
    )
    assert by_key[("menu", "String")].msgstr == ("Schnur",)
    assert by_key[("tool", "String")].msgstr == ("Zeichenkette",)


def test_parse_mo_other_charset_and_bad_files():
    data = write_mo([(None, "Kite", None, ["Cerf-volant élancé"])], lang="fr", charset="ISO-8859-1")
    assert parse_mo(data).entries[0].msgstr == ("Cerf-volant élancé",)
    with pytest.raises(MoFormatError):
        parse_mo(b"not a catalogue at all, sorry")
    with pytest.raises(MoFormatError):
        parse_mo(write_mo(KITE_ENTRIES)[:60])


def test_accelerators_and_directives():
    assert (
        accelerator("_Open") == "_" and accelerator("&Quit") == "&" and accelerator("file_name_here") is None
    )
    assert accelerator("Tom & Jerry") is None and accelerator("&amp; more") is None
    assert clean_message("Ö_ffnen", "_") == "Öffnen"
    assert clean_message("開く(_O)", "_") == "開く"
    assert clean_message("開く(_O)...", "_") == "開く..."
    assert clean_message("&Beenden", "&") == "Beenden"
    assert clean_message("<b>Starker</b> Wind", None) == "Starker Wind"
    assert only_directives("%s: %s") and only_directives("%1$s (%2$d)") and only_directives("{0} - {name}")
    assert not only_directives("%d kites")


@pytest.fixture
def locale_root(tmp_path):
    def install(locale, domain, entries, lang):
        folder = tmp_path / locale / "LC_MESSAGES"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{domain}.mo").write_bytes(write_mo(entries, lang=lang))

    install("de", "kite", KITE_ENTRIES, "de")
    install("de", "shed", [(None, "Fly the kite", None, ["Den Drachen steigen lassen"])], "de")  # repeated
    install("de_AT", "kite", [(None, "Open the shed door", None, ["Die Schuppentür öffnen"])], "de")
    install("fr", "kite", [(None, "Fly the kite", None, ["Faire voler le cerf-volant"])], "fr")
    install("fr", "empty", [], "fr")
    install(
        "ja", "kite", [(None, "Fly the kite", None, ["凧を揚げる"]), (None, "Wind", None, ["Wind!"])], "ja"
    )
    install("sr@latin", "kite", [(None, "Fly the kite", None, ["Pusti zmaja"])], "sr")
    install("ast", "kite", [(None, "Fly the kite", None, ["Xugar col cometa"])], "ast")
    (tmp_path / "de" / "LC_MESSAGES" / "broken.mo").write_bytes(b"\x00" * 40)
    (tmp_path / "de" / "LC_MESSAGES" / "alias.mo").symlink_to(tmp_path / "de" / "LC_MESSAGES" / "kite.mo")
    return str(tmp_path)


def test_synthetic_pairs(locale_root):
    assert installed_locales(locale_root) == ["de", "de_AT", "fr", "ja", "sr@latin"]
    pairs = load_parallel_pairs("de", root=locale_root)
    assert [(p.src, p.tgt) for p in pairs] == [
        ("Quit", "Beenden"),  # in the catalogue's (sorted) order
        ("Strong wind", "Starker Wind"),
        ("Fly the kite", "Den Drachen steigen lassen"),
        ("One kite flies", "Ein Drachen fliegt"),
        ("Open", "Öffnen"),
        ("String", "Schnur"),
        ("String", "Zeichenkette"),
        ("{count} kites", "{count} Drachen"),
        (
            "Open the shed door",
            "Die Schuppentür öffnen",
        ),  # de_AT joins de; shed.mo repeats, alias.mo is a link
    ]
    assert {(p.src_lang, p.tgt_lang) for p in pairs} == {("en", "de")}
    assert pairs[0].pair_id.startswith("gettext/de/kite#") and pairs[-1].pair_id.startswith(
        "gettext/de_AT/kite#"
    )
    assert [p.tgt for p in load_parallel_pairs("ja", root=locale_root)] == [
        "凧を揚げる"
    ]  # "Wind!": no kana/kanji
    assert [p.tgt for p in load_parallel_pairs("sr@latin", root=locale_root)] == ["Pusti zmaja"]
    with pytest.raises(UnknownLanguageError) as error:
        load_parallel_pairs("sr", root=locale_root)  # only the @latin variant: asked for by name only
    assert "de (German), fr (French), ja (Japanese), sr (Serbian)" in str(error.value)


def test_synthetic_directions_and_pivot(locale_root):
    to_english = load_gettext_parallel("de", "en", root=locale_root)
    assert to_english[2].src == "Den Drachen steigen lassen" and to_english[2].tgt == "Fly the kite"
    assert to_english[2].src_lang == "de" and to_english[2].tgt_lang == "en"
    pivot = load_gettext_parallel("fr", "de", root=locale_root)
    assert [(p.src, p.tgt, p.src_lang, p.tgt_lang) for p in pivot] == [
        ("Faire voler le cerf-volant", "Den Drachen steigen lassen", "fr", "de")
    ]


def test_synthetic_documents(locale_root):
    docs = load_gettext_documents("de", root=locale_root)
    assert [d.doc_id for d in docs] == ["gettext/de/kite", "gettext/de_AT/kite"]
    assert docs[0].text.split("\n")[:2] == ["Beenden", "Starker Wind"]
    assert "Kite" not in docs[0].text.split("\n") and "%s: %s" not in docs[0].text
    stats = quick_statistics(locale_root)
    assert stats["de"][0] == 3  # kite, shed and de_AT/kite; not the link nor the unreadable file
    assert stats["fr"][0] == 1  # the catalogue with only a header does not count
    assert "ast" not in stats


def test_real_catalogues(require_installed):
    require_installed("/usr/share/locale/de/LC_MESSAGES", "gettext catalogues (e.g. coreutils, apt)")
    pairs = load_parallel_pairs("de")
    assert len(pairs) > 1000
    assert all(p.src != p.tgt and p.src_lang == "en" and p.tgt_lang == "de" for p in pairs)
    assert len({(p.src, p.tgt) for p in pairs}) == len(pairs)
    docs = load_gettext_documents("de")
    assert len(docs) > 10 and all(d.doc_id.startswith("gettext/de") for d in docs)
    assert len(installed_locales()) >= 45
