"""A task whose items carry several languages (a user's file: task) is summarised pooled and per language
(issue 23), in the library, the eval JSON and Markdown, and the two-file comparison."""

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


def test_eval_markdown_and_comparison_show_each_language(tmp_path):
    from polysparse.bench.tasks_eval import compare_files, tasks_markdown

    items = [item("de", 0, number=n) for n in range(4)] + [item("zh", 0, number=n) for n in range(4)]
    first = summarise(
        "file:x.jsonl", items, [score(i, 0) for i in items[:4]] + [score(i, 1) for i in items[4:]]
    )
    second = summarise("file:x.jsonl", items, [score(i, 1) for i in items]).to_dict()
    first = first.to_dict()
    table = tasks_markdown([{**first, "choices": 2}])
    assert "| file:x.jsonl | mixed (pooled) | 0.500 ± 0.189 |" in table
    assert (
        "| file:x.jsonl | de | 1.000 ± 0.000 |" in table and "| file:x.jsonl | zh | 0.000 ± 0.000 |" in table
    )
    (tmp_path / "a.json").write_text(json.dumps({"tasks": [first]}))
    (tmp_path / "b.json").write_text(json.dumps({"tasks": [second]}))
    text = compare_files(tmp_path / "a.json", tmp_path / "b.json")
    assert "| file:x.jsonl (de) | 4 | 0.500 | 1.000 ± 0.000 | 0.000 ± 0.000 | +1.000 [" in text
    assert "| file:x.jsonl (zh) | 4 | 0.500 | 0.000 ± 0.000 | 0.000 ± 0.000 | +0.000 [" in text
