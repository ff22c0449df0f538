import math

import pytest
import torch

from helpers.tiny_models import tiny_model, tiny_tokenizer
from polysparse.sparsify.tasks import Item, ItemScore, TaskError, encode_item, score_items
from polysparse.sparsify.tasks.scoring import reference_loglikelihoods, split_pair

ITEMS = [
    Item("de", "Der Hund läuft", (" schnell über die Wiese", " laut", " und bellt laut.", " Katze"), 0, "a"),
    Item("fr", "Le chat dort sur le canapé pendant que", (" la pluie tombe.", " le modèle"), 0, "b"),
    Item("en", "Polysparse prunes ", ("language models", "the word"), 1, "c"),  # trailing space moves
    Item("es", "El", (" modelo aprende a predecir la siguiente palabra", " texto"), 0, "d"),
    Item("de", "Die Katze", (" dort", " Hund läuft schnell über die Wiese und bellt laut.", " x"), 2, "e"),
]


def test_choice_tokens_are_those_past_the_context():
    tok = tiny_tokenizer()
    encoded = encode_item(tok, ITEMS[0])
    context_ids = tok("Der Hund läuft", add_special_tokens=False)["input_ids"]
    assert encoded.context == (tok.bos_token_id, *context_ids)
    for choice, ids in zip(ITEMS[0].choices, encoded.choices):
        whole = tok("Der Hund läuft" + choice, add_special_tokens=False)["input_ids"]
        assert ids == tuple(whole[len(context_ids) :])
    assert split_pair("Polysparse prunes ", "language") == ("Polysparse prunes", " language")
    moved = encode_item(tok, ITEMS[2])
    assert moved.context[1:] == tuple(tok("Polysparse prunes", add_special_tokens=False)["input_ids"])
    assert encoded.choice_bytes == tuple(len(c.encode()) for c in ITEMS[0].choices)  # "über": 5 bytes


def test_hand_computed_loglikelihood():
    """Sum over the choice's tokens of log softmax of the logits one position earlier, by hand."""
    tok = tiny_tokenizer()
    model = tiny_model("llama", seed=1)
    item = ITEMS[1]
    encoded = encode_item(tok, item)
    scores = score_items(model, tok, [item])[0]
    for choice_ids, got in zip(encoded.choices, scores.loglikelihoods):
        ids = list(encoded.context) + list(choice_ids)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].double()
        expected = 0.0
        for position in range(len(encoded.context), len(ids)):
            row = logits[position - 1]
            expected += float(row[ids[position]] - torch.logsumexp(row, 0))
        assert math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3", "gpt2", "mistral"])
def test_batched_equals_unbatched_and_padding_does_not_change_scores(arch):
    tok = tiny_tokenizer()
    model = tiny_model(arch, seed=2)
    one_at_a_time = [score_items(model, tok, [item], batch_size=1)[0] for item in ITEMS]
    batched = score_items(model, tok, ITEMS, batch_size=8, max_choice_tokens=10_000)
    small_budget = score_items(model, tok, ITEMS, batch_size=3, max_choice_tokens=12)
    for item, a, b, c in zip(ITEMS, one_at_a_time, batched, small_budget):
        reference = reference_loglikelihoods(model, encode_item(tok, item))
        for x, y, z, r in zip(a.loglikelihoods, b.loglikelihoods, c.loglikelihoods, reference):
            assert math.isclose(x, r, rel_tol=1e-4, abs_tol=2e-4), (item.id, x, r)
            assert math.isclose(y, r, rel_tol=1e-4, abs_tol=2e-4), (item.id, y, r)
            assert math.isclose(z, r, rel_tol=1e-4, abs_tol=2e-4), (item.id, z, r)


def test_acc_norm_divides_by_utf8_bytes():
    # Choice 0: -6 over 6 bytes ("ü" is two) = -1.0/byte; choice 1: -4 over 3 bytes = -1.33/byte.
    score = ItemScore(loglikelihoods=(-6.0, -4.0), tokens=(2, 1), choice_bytes=(6, 3), label=0)
    assert score.prediction == 1 and score.prediction_norm == 0
    assert not score.correct and score.correct_norm
    tok = tiny_tokenizer()
    assert encode_item(tok, Item("de", "x", (" über", " uber"), 0)).choice_bytes == (6, 5)


def test_empty_context_needs_bos():
    tok = tiny_tokenizer()
    encoded = encode_item(tok, Item("en", "", ("Der Hund", "Katze"), 0))
    assert encoded.context == (tok.bos_token_id,)
    tok.bos_token = None
    with pytest.raises(TaskError, match="without BOS"):
        encode_item(tok, Item("en", "", ("Der Hund", "Katze"), 0))


def test_long_context_keeps_its_end_and_bos():
    tok = tiny_tokenizer()
    item = Item("de", "Der Hund läuft schnell über die Wiese und bellt laut.", (" Wiese", " Hund"), 0)
    full = encode_item(tok, item)
    cut = encode_item(tok, item, max_length=8)
    room = 8 - max(len(c) for c in full.choices)
    assert cut.context[0] == tok.bos_token_id and cut.context[1:] == full.context[-(room - 1) :]
    assert len(full.context) > room and len(cut.context) + max(len(c) for c in cut.choices) <= 8
