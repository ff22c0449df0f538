import math

import torch

from helpers.tiny_models import random_windows, tiny_model, tiny_tokenizer
from polysparse.sparsify.calibration import TokenWindows, evaluation_windows
from polysparse.sparsify.corpora import SourceSpec
from polysparse.sparsify.evaluate import perplexity


def test_perplexity_equals_the_models_own_loss():
    model = tiny_model("llama")
    windows = random_windows(n=3, length=10, seed=2)
    with torch.no_grad():
        losses = [model(input_ids=row[None], labels=row[None]).loss.item() for row in windows.input_ids]
    result = perplexity(model, windows, batch_size=2)
    assert result.tokens == 3 * 9
    assert math.isclose(result.perplexity, math.exp(sum(losses) / 3), rel_tol=1e-5)


def test_padding_is_not_scored():
    model = tiny_model("qwen2")
    full = random_windows(n=2, length=12, seed=3)
    short = TokenWindows(full.input_ids[:, :8], full.attention_mask[:, :8])
    padded_ids = full.input_ids.clone()
    padded_ids[:, 8:] = 0
    mask = torch.zeros_like(padded_ids)
    mask[:, :8] = 1
    padded = TokenWindows(padded_ids, mask)
    a, b = perplexity(model, short), perplexity(model, padded, batch_size=2)
    assert a.tokens == b.tokens == 2 * 7
    assert math.isclose(a.perplexity, b.perplexity, rel_tol=1e-5)


def test_evaluation_is_reproducible_by_seed(tmp_path):
    tok = tiny_tokenizer()
    for i in range(8):
        (tmp_path / f"d{i}.txt").write_text(f"Dokument {i}: " + "ein Hund und eine Katze " * 60)
    spec = f"text:{tmp_path}/*.txt:de"
    model = tiny_model("llama")
    first = perplexity(model, evaluation_windows(SourceSpec.parse(spec), tok, 3, 16, seed=5))
    again = perplexity(model, evaluation_windows(SourceSpec.parse(spec), tok, 3, 16, seed=5))
    assert first == again
