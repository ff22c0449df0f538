"""A task whose items carry several languages (a user's file: task) is summarised pooled and per language
(issue 23); the eval Markdown and the two-file comparison are tested in
tests/bench/studies/test_tasks_eval_languages.py."""

import json

import pytest

from polysparse.sparsify.tasks import Item, ItemScore, TaskResult, compare
from polysparse.sparsify.tasks.evaluate import summarise


def item(lang, label, choices=2, number=0):
    return Item(lang, f"context {number}", tuple(f" c{i}" for i in range(choices)), label, f"{lang}{number}")


def score(scored, prediction):
    """The score of ``scored`` (an item) whose highest log-likelihood is at ``prediction``."""
    choices = len(scored.choices)
    values = [-5.0] * choices
    values[prediction] = -1.0
    return ItemScore(tuple(values), (1,) * choices, (3,) * choices, scored.label)


def test_mixed_items_are_summarised_pooled_and_per_language():
    # de: 3 items, 2 right (2 choices each); ru: 2 items, 0 right (4 choices each).
    items = [item("de", 0, number=0), item("ru", 1, 4, 1), item("de", 1, number=2), item("de", 0, number=3)]
    items.append(item("ru", 2, 4, 4))
    predictions = [0, 0, 1, 1, 3]
    scores = [score(i, p) for p, i in zip(predictions, items)]
    result = summarise("file:x.jsonl", items, scores)
    assert (result.lang, result.n, result.acc) == ("mixed", 5, pytest.approx(2 / 5))
    de, ru = result.per_language
    assert (de.lang, de.n, de.acc, de.chance) == ("de", 3, pytest.approx(2 / 3), pytest.approx(0.5))
    assert (ru.lang, ru.n, ru.acc, ru.chance) == ("ru", 2, 0.0, pytest.approx(0.25))
    assert de.item_ids == ("de0", "de2", "de3") and de.correct == (1, 1, 0)
    assert not de.per_language
    again = TaskResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result and again.per_language[1].correct == ru.correct
    assert "per_language" not in summarise("t", items[:1], scores[:1]).to_dict()
    # Paired per language: the same split of the same items.
    assert compare(de, de).difference == 0.0
