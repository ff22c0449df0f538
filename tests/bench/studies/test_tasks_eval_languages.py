"""The eval Markdown and the two-file comparison show a mixed-language task (a user's file: task) pooled and
per language (issue 23)."""

import json

from polysparse.bench.studies.tasks_eval import compare_files, tasks_markdown
from polysparse.sparsify.tasks import Item, ItemScore
from polysparse.sparsify.tasks.evaluate import summarise


def item(lang, number):
    return Item(lang, f"context {number}", (" c0", " c1"), 0, f"{lang}{number}")


def score(prediction):
    """A two-choice item's score whose highest log-likelihood is at ``prediction`` (the label is 0)."""
    values = [-5.0, -5.0]
    values[prediction] = -1.0
    return ItemScore(tuple(values), (1, 1), (3, 3), 0)


def test_eval_markdown_and_comparison_show_each_language(tmp_path):
    items = [item("de", n) for n in range(4)] + [item("zh", n) for n in range(4)]
    first = summarise("file:x.jsonl", items, [score(0)] * 4 + [score(1)] * 4)
    second = summarise("file:x.jsonl", items, [score(1)] * 8).to_dict()
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
