import re

import pytest
import torch

from helpers.tiny_models import tiny_tokenizer
from polysparse.sparsify.calibration import (
    TokenWindows,
    allocate,
    calibration_windows,
    evaluation_windows,
    windows_from_documents,
    windows_from_texts,
)
from polysparse.sparsify.calibration_spec import CalibrationSpec
from polysparse.sparsify.corpora import Document, EmptyCorpusError, SourceSpec

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


def documents(count=12, words=60):
    return [
        Document(" ".join(WORDS[(i + j) % len(WORDS)] for j in range(words)), "en", "test", f"doc{i}")
        for i in range(count)
    ]


def test_windows_have_bos_fixed_length_and_are_deterministic():
    tok = tiny_tokenizer()
    a = windows_from_documents(tok, documents(), nsamples=5, seqlen=16, seed=3)
    b = windows_from_documents(tok, documents(), nsamples=5, seqlen=16, seed=3)
    c = windows_from_documents(tok, documents(), nsamples=5, seqlen=16, seed=4)
    assert a.input_ids.shape == (5, 16)
    assert (a.input_ids[:, 0] == tok.bos_token_id).all()
    assert (a.attention_mask == 1).all()
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_too_little_text_is_a_clear_error_and_short_text_is_a_warning(caplog):
    tok = tiny_tokenizer()
    with pytest.raises(EmptyCorpusError, match="fewer than one window"):
        windows_from_documents(tok, documents(count=1, words=3), nsamples=4, seqlen=64)
    with pytest.raises(EmptyCorpusError):
        windows_from_documents(tok, [], nsamples=4, seqlen=64)
    few = windows_from_documents(tok, documents(count=2, words=40), nsamples=50, seqlen=16)
    assert 0 < len(few) < 50
    assert "only" in caplog.text


def test_texts_become_right_padded_windows():
    tok = tiny_tokenizer()
    w = windows_from_texts(tok, ["alpha beta", "alpha beta gamma delta epsilon"], seqlen=64)
    assert w.attention_mask[0].sum() < w.attention_mask[1].sum()
    assert (w.input_ids[:, 0] == tok.bos_token_id).all()
    assert (w.input_ids[w.attention_mask == 0] == tok.pad_token_id).all()


def test_mixture_parsing_and_allocation():
    def parse_mixture(text: str) -> list[tuple[str, float]]:
        return [(part.spec, part.weight) for part in CalibrationSpec.parse(text).parts]

    assert parse_mixture("text:a.txt:de") == [("text:a.txt:de", 1.0)]
    assert parse_mixture("handbook:de=0.5,handbook:en=0.5") == [("handbook:de", 0.5), ("handbook:en", 0.5)]
    assert parse_mixture("a:x=3,b:y=1") == [("a:x", 0.75), ("b:y", 0.25)]
    assert parse_mixture("translate:de->en:gettext,shots=4") == [("translate:de->en:gettext,shots=4", 1.0)]
    assert allocate(10, [0.75, 0.25]) == [8, 2]
    assert sum(allocate(7, [1 / 3] * 3)) == 7
    with pytest.raises(ValueError):
        parse_mixture("a:x=-1,b:y=1")


def test_calibration_and_evaluation_windows_never_share_a_document(tmp_path):
    tok = tiny_tokenizer()
    for i in range(10):
        (tmp_path / f"part{i}.txt").write_text(" ".join(f"w{i}x{j}" for j in range(400)), encoding="utf-8")
    spec = f"text:{tmp_path}/*.txt:en"
    calib = calibration_windows(CalibrationSpec.parse(spec), tok, nsamples=50, seqlen=32)
    held_out = evaluation_windows(SourceSpec.parse(spec), tok, nwindows=50, seqlen=32)

    def files(w: TokenWindows) -> set[str]:
        found = set()
        for row in tok.batch_decode(w.input_ids, skip_special_tokens=True):
            inner = row.split()[1:-1]  # words at the window edges may be cut
            found |= {m.group(1) for m in map(re.compile(r"w(\d+)x\d+$").match, inner) if m}
        return found

    calib_files, held_out_files = files(calib), files(held_out)
    assert calib_files and held_out_files
    assert calib_files.isdisjoint(held_out_files)


def alpha_beta_windows(folder, beta_lang):
    """8 windows of 16 tokens from a 3:1 mix of ``a.txt`` (English "alpha" paragraphs) and ``b.txt`` ("beta",
    labelled ``beta_lang``): the tokenizer, the windows and their decoded text (which shows the file)."""
    for name, word in (("a.txt", "alpha"), ("b.txt", "beta")):
        (folder / name).write_text("\n\n".join(" ".join([word] * 300) for _ in range(6)), encoding="utf-8")
    tok = tiny_tokenizer()
    spec = CalibrationSpec.parse(f"text:{folder}/a.txt:en=0.75,text:{folder}/b.txt:{beta_lang}=0.25")
    windows = calibration_windows(spec, tok, 8, 16)
    return tok, windows, tok.batch_decode(windows.input_ids, skip_special_tokens=True)


def test_mixture_windows_follow_the_proportions(tmp_path):
    tok, w, rows = alpha_beta_windows(tmp_path, "en")
    assert sum("alpha" in r for r in rows) == 6 and sum("beta" in r for r in rows) == 2


def test_mixture_windows_are_labelled_with_their_parts_language(tmp_path):
    tok, w, rows = alpha_beta_windows(tmp_path, "de")
    assert w.languages == ("en",) * 6 + ("de",) * 2
    assert all(("alpha" in row) == (lang == "en") for row, lang in zip(rows, w.languages))
    unlabelled = calibration_windows(CalibrationSpec.parse(f"text:{tmp_path}/a.txt"), tok, 2, 16)
    assert unlabelled.languages == (f"text:{tmp_path}/a.txt",) * 2  # the spec names no language
    assert TokenWindows.concatenate([w, unlabelled]).languages == w.languages + unlabelled.languages
    bare = TokenWindows(w.input_ids[:1], w.attention_mask[:1])
    assert TokenWindows.concatenate([w, bare]).languages is None
    assert w.fingerprint() == TokenWindows(w.input_ids, w.attention_mask).fingerprint()


def test_token_windows_validate_shapes():
    with pytest.raises(ValueError):
        TokenWindows(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="1 window languages for 2 windows"):
        TokenWindows(
            torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long), languages=("de",)
        )
    with pytest.raises(EmptyCorpusError):
        TokenWindows(torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, 3, dtype=torch.long))
