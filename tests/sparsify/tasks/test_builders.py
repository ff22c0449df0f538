import os
from pathlib import Path

import pytest

from helpers.mo_files import mo_bytes
from helpers.tiny_models import tiny_tokenizer
from polysparse.sparsify.calibration import split_source, translation_windows
from polysparse.sparsify.calibration_spec import TranslatePart
from polysparse.sparsify.corpora import SourceSpec, pair_document_ids
from polysparse.sparsify.corpora.gettext_mo import ROOT_VARIABLE
from polysparse.sparsify.tasks import TaskError, build_items, parse_task, split_sentences
from polysparse.sparsify.tasks.builders import LENGTH_TOLERANCE, pick_distractors

ANIMALS = ["dog", "cat", "horse", "goat", "sheep", "duck", "mouse", "fox", "bear", "wolf", "owl", "crow"]
PLACES = ["garden", "kitchen", "forest", "river", "barn", "field", "roof", "cellar", "meadow", "lake"]
TIERE = ["Hund", "Katze", "Pferd", "Ziege", "Schaf", "Ente", "Maus", "Fuchs", "Bär", "Wolf", "Eule", "Krähe"]
ORTE = ["Garten", "Küche", "Wald", "Fluss", "Scheune", "Feld", "Dach", "Keller", "Wiese", "See"]


@pytest.fixture
def catalogues(tmp_path, monkeypatch):
    """40 German catalogues of 12 sentence messages each, under a private locale root."""
    root = tmp_path / "locale"
    for d in range(40):
        pairs = []
        for m in range(12):
            a, p = (d * 7 + m) % len(ANIMALS), (d * 3 + m * 5) % len(PLACES)
            extra = " today" * (m % 3)
            pairs.append(
                (
                    f"The {ANIMALS[a]} sleeps in the {PLACES[p]}{extra} ({d}.{m})",
                    f"Der {TIERE[a]} schläft im {ORTE[p]}{' heute' * (m % 3)} ({d}.{m})",
                )
            )
        folder = root / "de" / "LC_MESSAGES"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"domain{d:02d}.mo").write_bytes(mo_bytes(pairs))
    monkeypatch.setenv(ROOT_VARIABLE, str(root))
    return root


def held_out_catalogues() -> set[str]:
    return {d.doc_id for d in split_source(SourceSpec.parse("gettext:de"))[1]}


def test_translation_items_from_held_out_catalogues_only(catalogues):
    held_out = held_out_catalogues()
    assert 0 < len(held_out) < 40
    for direction in ("de->en", "en->de"):
        items = build_items(f"translation-choice:{direction}:gettext", seed=3)
        assert items and all(i.lang == "de" for i in items)
        for item in items:
            pair_id = item.id
            assert all(doc in held_out for doc in pair_document_ids(pair_id))
            answer = item.choices[item.label]
            assert len(item.choices) == 4 and len(set(item.choices)) == 4
            for choice in item.choices:
                assert choice.startswith(" ") and choice.strip() != ""
                assert abs(len(choice) - len(answer)) <= LENGTH_TOLERANCE * (len(answer) - 1) + 1
        first = items[0]
        src, tgt = ("German", "English") if direction == "de->en" else ("English", "German")
        assert first.context.startswith(f"{src}: ") and first.context.endswith(f"\n{tgt}:")
    # Deterministic by seed; a smaller limit gives a prefix.
    again = build_items("translation-choice:de->en:gettext", seed=3)
    assert again == build_items("translation-choice:de->en:gettext", seed=3)
    assert build_items("translation-choice:de->en:gettext", seed=3, limit=5) == again[:5]
    assert build_items("translation-choice:de->en:gettext", seed=4) != again


def test_translation_prompts_never_hold_held_out_catalogues(catalogues):
    held_out = held_out_catalogues()
    tok = tiny_tokenizer()
    windows = translation_windows(
        TranslatePart.parse("translate:de->en:gettext,shots=2"), tok, 200, 512, seed=0
    )
    text = "".join(tok.batch_decode(windows.input_ids, skip_special_tokens=True))
    for doc in held_out:
        number = int(doc.rsplit("domain", 1)[1])
        assert f"({number}." not in text
    assert "(" in text


def test_hard_negatives_share_words():
    import random

    answer = "The dog sleeps in the garden"
    candidates = ["The cat sleeps in the garden", "A red car drives very fast", "The dog sleeps in the barn"]
    candidates += [f"Zzz qqq www eee rrr {i:05d}" for i in range(20)]
    picked = pick_distractors(
        answer, candidates + [answer, "THE DOG sleeps in the garden"], "en", random.Random(0), count=2
    )
    assert set(picked) <= set(candidates[:3]) | set(candidates[3:]) and answer not in picked
    assert "THE DOG sleeps in the garden" not in picked  # equal to the answer but for case
    assert pick_distractors(answer, ["short"], "en", random.Random(0)) is None


def write_book(folder: Path, lang: str, documents: int = 20) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(documents):
        paragraphs = []
        for p in range(4):
            sentences = [
                f"Paragraph {p} of file {d} says that the {ANIMALS[(d + p + s) % 12]} "
                f"found the {PLACES[(d + 2 * p + s) % 10]} number {s}."
                for s in range(4)
            ]
            paragraphs.append(" ".join(sentences))
        (folder / f"doc{d:02d}.txt").write_text("\n\n".join(paragraphs * 3), encoding="utf-8")
    return f"text:{folder}/*.txt"


def test_continuation_items_from_held_out_documents(tmp_path):
    source = write_book(tmp_path / "book", "en")
    items = build_items(f"continuation-choice:en:{source}", seed=1)
    held_out = {d.doc_id for d in split_source(SourceSpec.parse(f"{source}:en"))[1]}
    assert items
    for item in items:
        doc_id = item.id.rsplit("#", 1)[0]
        assert doc_id in held_out
        assert len(split_sentences(item.context)) >= 2
        answer = item.choices[item.label]
        assert answer.startswith(" ") and len(set(item.choices)) == 4
        assert all(abs(len(c) - len(answer)) <= LENGTH_TOLERANCE * len(answer) for c in item.choices)
        # All choices from the same document (file); distractors from its other paragraphs.
        file_number = int(doc_id.split("/")[1][3:5])
        assert all(f" of file {file_number} " in c for c in item.choices)
        paragraph = item.context.split(" of file", 1)[0]
        assert answer.startswith(f" {paragraph} ")
        assert all(not c.startswith(f" {paragraph} ") for i, c in enumerate(item.choices) if i != item.label)
    assert items == build_items(f"continuation-choice:en:{source}", seed=1)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The dog runs. It barks! Does it? Yes.", ["The dog runs.", "It barks!", "Does it?", "Yes."]),
        (
            "Siehe z.B. den Hund. Er bellt, d.h. laut. Ende.",
            ["Siehe z.B. den Hund.", "Er bellt, d.h. laut.", "Ende."],
        ),
        ("Version 1.2 is out. see below.", ["Version 1.2 is out. see below."]),
        ("狗在跑。它在叫！真的吗？是的。", ["狗在跑。", "它在叫！", "真的吗？", "是的。"]),
        ("犬が走る。「本当？」と聞いた。はい。", ["犬が走る。", "「本当？」と聞いた。", "はい。"]),
        ("هل الكلب هنا؟ نعم، إنه هنا. شكرا.", ["هل الكلب هنا؟", "نعم، إنه هنا.", "شكرا."]),
    ],
)
def test_sentence_splitting(text, expected):
    assert split_sentences(text) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("reading-choice:de:handbook", "unknown task"),
        ("translation-choice:de-en:gettext", "malformed task"),
        ("translation-choice:de->en:manpages", "has no parallel text"),
        ("translation-choice:de->klingon:gettext", "unknown language 'klingon'"),
        ("continuation-choice:de:nowhere", "unknown source 'nowhere'"),
        ("continuation-choice:de", "malformed task"),
    ],
)
def test_bad_task_specs(spec, message):
    with pytest.raises(TaskError, match=message):
        parse_task(spec)


def test_language_the_source_lacks_lists_what_it_has(catalogues):
    with pytest.raises(TaskError, match=r"gettext has these languages here: de"):
        build_items("translation-choice:fr->en:gettext")
    with pytest.raises(TaskError, match="--limit must be at least 1"):
        build_items("translation-choice:de->en:gettext", limit=0)


def test_real_text_items(catalogues, monkeypatch):
    """On the installed Debian text: items from held-out documents only (skipped without the packages
    unless POLYSPARSE_REQUIRE_DEBIAN_TEXT is set, as in CI)."""
    monkeypatch.delenv(ROOT_VARIABLE)
    if not Path("/usr/share/doc/debian-handbook").exists() or not Path("/usr/share/locale/de").exists():
        if os.environ.get("POLYSPARSE_REQUIRE_DEBIAN_TEXT", "") not in ("", "0"):
            pytest.fail("debian-handbook or German catalogues missing (make debian-packages)")
        pytest.skip("debian-handbook or German catalogues missing (make debian-packages)")
    items = build_items("continuation-choice:zh:handbook", seed=0, limit=30)
    held_out = {d.doc_id for d in split_source(SourceSpec.parse("handbook:zh"))[1]}
    assert len(items) == 30
    assert all(i.id.rsplit("#", 1)[0] in held_out for i in items)
    assert all(not c.startswith(" ") for i in items for c in i.choices)  # no spaces in Chinese
    assert all("。" in i.context or "？" in i.context or "！" in i.context for i in items)
