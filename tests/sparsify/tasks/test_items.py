import json

import pytest

from polysparse.sparsify.tasks import Item, TaskError, read_items, write_items


def test_round_trip(tmp_path):
    items = [
        Item("de", "Kontext", (" ja", " nein"), 1, "x1"),
        Item("ja", "文脈", ("はい", "いいえ", "多分"), 0, "x2"),
    ]
    path = write_items(tmp_path / "items.jsonl", items)
    assert read_items(path) == items
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[1])["choices"] == [
        "はい",
        "いいえ",
        "多分",
    ]


def test_missing_id_gets_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('\n{"lang": "German", "context": "a", "choices": ["b", "c"], "label": 0}\n')
    (item,) = read_items(path)
    assert item.id == "x.jsonl:2" and item.lang == "de"


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "line 2: not valid JSON"),
        ('{"lang": "de", "context": "a", "label": 0}', r"line 2: missing field\(s\) choices"),
        ('{"lang": "de", "context": "a", "choices": ["b", "c"], "label": 2}', "label 2 is out of range"),
        ('{"lang": "de", "context": "a", "choices": ["b"], "label": 0}', "at least two choices"),
        ('{"lang": "de", "context": "a", "choices": ["b", ""], "label": 0}', "empty string"),
        (
            '{"lang": "xx-klingon", "context": "a", "choices": ["b", "c"], "label": 0}',
            "line 2: unknown language",
        ),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"lang": "de", "context": "a", "choices": ["b", "c"], "label": 0}\n' + line + "\n")
    with pytest.raises(TaskError, match=message) as error:
        read_items(path)
    assert str(path) in str(error.value)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(TaskError, match="holds no items"):
        read_items(tmp_path / "empty.jsonl")
    with pytest.raises(TaskError, match="does not exist"):
        read_items(tmp_path / "nope.jsonl")
