"""The scorer's cheaper passes (issue 23): choice rows in length groups, the output layer only at the scored
positions. Scores stay those of the one-forward-per-choice definition."""

import itertools
import math

import pytest
import torch

from helpers.tiny_models import tiny_model, tiny_tokenizer
from polysparse.sparsify.tasks import Item, encode_item, score_items, scoring
from polysparse.sparsify.tasks.scoring import length_groups, reference_loglikelihoods, slab_linear


def padded_cost(lengths, groups, pass_cost):
    return sum(len(g) * max(lengths[i] for i in g) + pass_cost for g in groups)


@pytest.mark.parametrize(
    "lengths", [[3, 3, 3], [1, 9, 2, 8, 1, 10], [0, 4, 0, 1], [5], [2, 30, 31, 2, 29, 3, 1, 1]]
)
@pytest.mark.parametrize("pass_cost", [0, 4, 16, 1000])
def test_length_groups_cover_every_row_once_at_the_least_cost(lengths, pass_cost):
    groups = length_groups(lengths, pass_cost)
    flat = sorted(i for g in groups for i in g)
    assert flat == [i for i, n in enumerate(lengths) if n > 0]  # rows of length 0 need no pass
    # Brute force over every split of the sorted rows into runs: none is cheaper.
    order = sorted((i for i, n in enumerate(lengths) if n > 0), key=lambda i: (lengths[i], i))
    best = math.inf
    for cuts in itertools.product([False, True], repeat=max(0, len(order) - 1)):
        runs, current = [], [order[0]]
        for row, cut in zip(order[1:], cuts):
            if cut:
                runs.append(current)
                current = []
            current.append(row)
        runs.append(current)
        best = min(best, padded_cost(lengths, runs, pass_cost))
    assert padded_cost(lengths, groups, pass_cost) == best
    if pass_cost == 0:
        assert all(len({lengths[i] for i in g}) == 1 for g in groups)  # no padding at all
    if pass_cost == 1000:
        assert len(groups) == 1


ITEMS = [
    Item("de", "Der Hund läuft", (" schnell über die Wiese", " laut", " und bellt laut.", " Katze"), 0, "a"),
    Item("fr", "Le chat dort sur le canapé pendant que", (" la pluie tombe.", " le modèle"), 0, "b"),
    Item("es", "El", (" modelo aprende a predecir la siguiente palabra", " texto"), 0, "d"),
    Item("de", "Die Katze", (" dort", " Hund läuft schnell über die Wiese und bellt laut.", " x"), 2, "e"),
]


@pytest.mark.parametrize("softcap", [None, 3.0])
def test_scores_equal_the_definition_with_post_processed_logits(softcap):
    """Gemma's soft-capping runs after the output layer: picking positions before it changes nothing."""
    tok = tiny_tokenizer()
    model = tiny_model("gemma3", seed=4, final_logit_softcapping=softcap)
    head_rows = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda module, args, out: head_rows.append(out.shape[:-1].numel())
    )
    batched = score_items(model, tok, ITEMS, batch_size=8, max_choice_tokens=10_000)
    hook.remove()
    encoded = [encode_item(tok, item) for item in ITEMS]
    for item, scored, enc in zip(ITEMS, batched, encoded):
        reference = reference_loglikelihoods(model, enc)
        for got, expected in zip(scored.loglikelihoods, reference):
            assert math.isclose(got, expected, rel_tol=1e-4, abs_tol=2e-4), (item.id, got, expected)
    # The output layer ran on the contexts' last tokens and the choices' input tokens, nothing else.
    scored_positions = len(ITEMS) + sum(len(c) - 1 for enc in encoded for c in enc.choices)
    assert sum(head_rows) == scored_positions


def test_a_model_without_output_embeddings_is_scored_from_its_full_logits(monkeypatch):
    tok = tiny_tokenizer()
    model = tiny_model("llama", seed=5)
    expected = score_items(model, tok, ITEMS)
    monkeypatch.setattr(type(model), "get_output_embeddings", lambda self: None)
    for a, b in zip(score_items(model, tok, ITEMS), expected):
        assert a.loglikelihoods == pytest.approx(b.loglikelihoods, abs=1e-5)


@pytest.mark.parametrize("shape", [(1, 7, 48), (5, 48), (2, 3, 48)])
@pytest.mark.parametrize("vocab", [1, 1023, 1024, 2500])
def test_slab_linear_equals_the_one_product(shape, vocab):
    generator = torch.Generator().manual_seed(vocab)
    hidden = torch.randn(shape, generator=generator)
    weight = torch.randn(vocab, shape[-1], generator=generator)
    got = slab_linear(hidden, weight)
    assert got.shape == (*shape[:-1], vocab)
    torch.testing.assert_close(got, torch.nn.functional.linear(hidden, weight), rtol=1e-6, atol=1e-5)


def test_scores_with_the_output_layer_in_slabs_equal_the_definition(monkeypatch):
    """Slabs smaller than the tiny vocabulary, so the scorer's products really are split; the output layer's
    own forward comes back afterwards."""
    tok = tiny_tokenizer()
    model = tiny_model("gemma3", seed=6)
    head = model.get_output_embeddings()
    assert type(head) is torch.nn.Linear and head.bias is None
    slab_rows = []
    real_mm = torch.mm
    monkeypatch.setattr(scoring, "HEAD_SLAB_ROWS", 7)
    monkeypatch.setattr(
        scoring.torch, "mm", lambda a, b, **kw: slab_rows.append(b.shape[1]) or real_mm(a, b, **kw)
    )
    scored = score_items(model, tok, ITEMS)
    monkeypatch.undo()
    assert slab_rows and max(slab_rows) == 7 and sum(slab_rows) % head.out_features == 0
    assert "forward" not in vars(head)
    for item, result in zip(ITEMS, scored):
        reference = reference_loglikelihoods(model, encode_item(tok, item))
        assert result.loglikelihoods == pytest.approx(reference, rel=1e-4, abs=2e-4), item.id
