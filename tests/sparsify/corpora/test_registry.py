import subprocess
import sys

import pytest

from polysparse.sparsify.corpora import (
    SOURCES,
    Document,
    EmptyCorpusError,
    SourceSpec,
    available_corpora,
    load_documents,
    missing_corpora_hint,
    split_by_document,
)


def toy_documents(n: int, text: str = "kite") -> list[Document]:
    return [Document(text=f"{text} {i}", lang="en", source="toy", doc_id=f"toy/{i}") for i in range(n)]


def test_every_source_is_registered():
    assert set(SOURCES) == {"text", "handbook", "install-guide", "manpages", "gettext", "fortunes", "hf"}


def test_bad_specs():
    with pytest.raises(ValueError, match="NAME:ARGUMENT"):
        load_documents(SourceSpec.parse("handbook"))
    with pytest.raises(
        ValueError, match="known sources: fortunes, gettext, handbook, hf, install-guide, manpages, text"
    ):
        load_documents(SourceSpec.parse("wiki:de"))


def test_split_is_deterministic_disjoint_and_by_document_id():
    docs = toy_documents(200)
    calibration, evaluation = split_by_document(docs, eval_fraction=0.25, seed=5)
    assert len(evaluation) == 50 and len(calibration) == 150
    assert {d.doc_id for d in calibration}.isdisjoint({d.doc_id for d in evaluation})
    assert calibration == [d for d in docs if d in calibration]  # order kept
    assert (calibration, evaluation) == split_by_document(docs, eval_fraction=0.25, seed=5)
    assert evaluation != split_by_document(docs, eval_fraction=0.25, seed=6)[1]
    # only the id decides: other text, other order, a subset -> the same side for each document
    renamed = toy_documents(200, text="string")[::-1]
    assert {d.doc_id for d in split_by_document(renamed, 0.25, 5)[1]} == {d.doc_id for d in evaluation}
    with pytest.raises(EmptyCorpusError):
        split_by_document(docs[:1])


def test_available_corpora_lists_installed_sources(require_installed):
    require_installed("/usr/share/doc/debian-handbook/html", "debian-handbook")
    require_installed("/usr/share/doc/installation-guide-amd64", "installation-guide-amd64")
    require_installed("/usr/share/man/de", "manpages-de")
    found = {(c.source, c.lang): c for c in available_corpora()}
    for key in [
        ("handbook", "de"),
        ("handbook", "zh"),
        ("install-guide", "ja"),
        ("manpages", "de"),
        ("gettext", "de"),
    ]:
        assert key in found and found[key].documents > 0 and found[key].text_bytes > 10_000
    assert found[("handbook", "de")].package == "debian-handbook"
    assert found[("handbook", "zh")].locales == ("zh-CN", "zh-TW")
    assert found[("install-guide", "ja")].package == "installation-guide-amd64"
    assert found[("manpages", "de")].package == "manpages-de"
    assert found[("handbook", "de")].spec == "handbook:de" and found[("handbook", "de")].name == "German"
    assert len([c for c in found if c[0] == "gettext"]) >= 45
    assert found[("handbook", "da")].text_bytes < found[("handbook", "de")].text_bytes / 5  # mostly English


def test_hints_name_the_debian_package():
    assert "apt-get install debian-handbook" in missing_corpora_hint("handbook")
    assert "apt-get install installation-guide-amd64" in missing_corpora_hint("install-guide")
    assert "apt-get install manpages-pl" in missing_corpora_hint("manpages", "Polish")
    assert "apt-get install manpages-pt-br" in missing_corpora_hint("manpages", "pt-BR")
    assert "no manpages-th package" in missing_corpora_hint("manpages", "th")
    assert "/usr/share/locale" in missing_corpora_hint("gettext")
    assert "pip install datasets" in missing_corpora_hint("hf")
    with pytest.raises(ValueError):
        missing_corpora_hint("wiki")


def test_corpora_do_not_import_torch():
    code = "import sys, polysparse.sparsify.corpora; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-P", "-c", code], check=True)
