"""Issue 26, item 7: every part of a calibration mixture gets windows, the windows each part got are
recorded, and mixtures where every part already got windows (the study's equal mixes) are unchanged."""

import random

import pytest
import torch

from helpers.tiny_models import tiny_tokenizer
from polysparse.sparsify.calibration import (
    TokenWindows,
    allocate,
    allocate_parts,
    calibration_windows,
    split_source,
    windows_from_documents,
)
from polysparse.sparsify.calibration_spec import CalibrationSpec
from polysparse.sparsify.config import ConfigError

WORDS = ("the", "small", "dog", "runs", "over", "meadow", "behind", "house", "every", "morning", "barks")


def text_file(path, seed):
    rng = random.Random(seed)
    paragraphs = [" ".join(rng.choice(WORDS) for _ in range(400)) for _ in range(12)]
    path.write_text("\n\n".join(paragraphs), encoding="utf-8")
    return path


def windows_as_before_issue_26(spec, tokenizer, nsamples, seqlen, seed):
    """calibration_windows as it was: allocate(), parts with no window skipped, the rest concatenated."""
    parts = []
    for part, count in zip(spec.parts, allocate(nsamples, [p.weight for p in spec.parts])):
        if count:
            calibration, _ = split_source(part.parsed)
            parts.append(windows_from_documents(tokenizer, calibration, count, seqlen, seed, part.spec))
    return parts[0] if len(parts) == 1 else TokenWindows.concatenate(parts)


@pytest.mark.parametrize("weights, nsamples", [((1, 1), 8), ((1, 1, 1), 32), ((0.3, 0.7), 5), ((1,), 4)])
def test_windows_of_a_mixture_without_empty_parts_are_unchanged(tmp_path, weights, nsamples):
    files = [text_file(tmp_path / f"part{i}.txt", seed=i) for i in range(len(weights))]
    spec = CalibrationSpec.parse(",".join(f"text:{f}:de={w}" for f, w in zip(files, weights)))
    tokenizer = tiny_tokenizer()
    now = calibration_windows(spec, tokenizer, nsamples, 32, seed=3)
    before = windows_as_before_issue_26(spec, tokenizer, nsamples, 32, seed=3)
    assert now.fingerprint() == before.fingerprint()
    assert torch.equal(now.input_ids, before.input_ids)
    assert [n for _, n in now.part_windows] == allocate(nsamples, [p.weight for p in spec.parts])


def test_a_part_that_rounds_to_no_window_gets_one(tmp_path, caplog):
    small, large = text_file(tmp_path / "de.txt", 0), text_file(tmp_path / "en.txt", 1)
    spec = CalibrationSpec.parse(f"text:{small}:de=0.01,text:{large}:en=0.99")
    windows = calibration_windows(spec, tiny_tokenizer(), 8, 32)
    assert windows.part_windows == ((f"text:{small}:de", 1), (f"text:{large}:en", 7))
    assert windows.languages.count("de") == 1 and len(windows) == 8
    assert windows.summary()["windows_per_part"][0] == {"part": f"text:{small}:de", "windows": 1}
    assert "rounds to none; it gets 1 window" in caplog.text


def test_allocate_parts_keeps_allocate_where_no_part_is_empty_and_fills_empty_ones():
    rng = random.Random(0)
    for _ in range(2000):
        raw = [rng.random() + 1e-3 for _ in range(rng.randint(1, 6))]
        weights = [w / sum(raw) for w in raw]  # normalised, as CalibrationSpec gives them
        total = rng.randint(len(weights), 40)
        names = [f"p{i}" for i in range(len(weights))]
        plain, parts = allocate(total, weights), allocate_parts(total, weights, names)
        assert sum(parts) == total and min(parts) >= 1
        if min(plain) >= 1:
            assert parts == plain
    with pytest.raises(ConfigError, match="--nsamples 1 cannot give each of the 2 parts"):
        allocate_parts(1, [0.5, 0.5], ["a", "b"])
