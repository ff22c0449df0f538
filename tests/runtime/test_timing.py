"""Timing helpers: the hand-written generation loop, spreads, bytes read per step."""

import pytest
import torch

from helpers.sparse_models import sparse_tiny_model, token_ids
from polysparse.runtime.swap import set_backend, sparsify_model
from polysparse.runtime.timing import PeakMemory, Spread, time_generation, weight_bytes_per_step


def test_spread_and_rates():
    spread = Spread.of([2.0, 1.0, 4.0])
    assert (spread.median, spread.min, spread.max, spread.n) == (2.0, 1.0, 4.0, 3)
    rate = spread.scaled(8.0)  # durations -> rates: the slowest run is the lowest rate
    assert (rate.median, rate.min, rate.max) == (4.0, 2.0, 8.0)
    with pytest.raises(ValueError):
        Spread.of([])


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_time_generation_matches_generate(arch):
    model = sparse_tiny_model(arch)
    sparsify_model(model)
    ids = token_ids(2, 7)
    timed = time_generation(model, ids, 6)
    expected = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)[:, 7:]
    assert torch.equal(timed.tokens, expected)
    assert timed.decode_steps == 5 and timed.prefill_s > 0 and timed.decode_s > 0
    with pytest.raises(ValueError):
        time_generation(model, ids, 0)


def test_weight_bytes_per_step():
    model = sparse_tiny_model("llama", dtype=torch.float16)  # untied: embedding rows only, lm_head in full
    params = sum(p.numel() * 2 for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel() * 2
    assert weight_bytes_per_step(model) == params - embedding
    report = sparsify_model(model, backend="triton")
    saved = report.layer_bytes_before - report.layer_bytes_after
    # triton at m=1 runs on the interpreter here for the 64-aligned layers; k/v (out 32) run dense
    kv = sum(s.dense_bytes - s.sparse_bytes for s in report.swapped if s.out_features == 32)
    assert weight_bytes_per_step(model, m=1) == params - embedding - saved + kv
    set_backend(model, "dense")
    assert weight_bytes_per_step(model, m=1) == params - embedding


def test_tied_embedding_counts_once():
    model = sparse_tiny_model("gemma3")
    params = sum(p.numel() * 4 for p in model.parameters())  # parameters() yields the tied weight once
    assert weight_bytes_per_step(model) == params


def test_peak_memory_is_none_on_cpu():
    with PeakMemory("cpu") as peak:
        torch.ones(10)
    assert peak.bytes is None
