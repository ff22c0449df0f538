import json

import pytest

from polysparse.bench.cli import main

ITEMS = [
    {
        "lang": "de",
        "context": "Der kleine Hund",
        "choices": [" läuft", " Katze", " Abend"],
        "label": 0,
        "id": "a",
    },
    {"lang": "de", "context": "Die Katze schläft", "choices": [" lieber", " Hund"], "label": 1},
    {
        "lang": "de",
        "context": "Am Abend",
        "choices": [" kommen alle", " dunkel", " Wiese", " Haus"],
        "label": 0,
    },
]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_eval_tasks_writes_json_markdown_and_items(tiny_model_dir, german_text, tmp_path):
    items = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    out, dump = tmp_path / "eval.json", tmp_path / "dumped.jsonl"
    code = main(
        [
            "eval", "--model", str(tiny_model_dir), "--tasks", f"file:{items}", "--data",
            f"text:{german_text}:de", "--windows", "2", "--seqlen", "32", "--out", str(out),
            "--dump-items", str(dump), "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    payload = json.loads(out.read_text())
    (task,) = payload["tasks"]
    assert task["task"] == f"file:{items}" and task["n"] == 3 and task["lang"] == "de"
    assert task["chance"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 4) / 3)
    assert task["acc"] == sum(task["correct"]) / 3
    assert payload["results"][0]["spec"] == f"text:{german_text}:de"
    table = out.with_suffix(".md").read_text()
    assert f"file:{items}" in table and "acc ± se" in table
    dumped = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [d["context"] for d in dumped] == [r["context"] for r in ITEMS]
    # The dump is itself a task file that scores the same.
    again = tmp_path / "again.json"
    assert (
        main(
            [
                "eval",
                "--model",
                str(tiny_model_dir),
                "--tasks",
                f"file:{dump}",
                "--out",
                str(again),
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads(again.read_text())["tasks"][0]["correct"] == task["correct"]


def test_compare_files_pairs_the_items(tmp_path):
    from polysparse.bench.studies.tasks_eval import compare_files

    base = {"task": "t", "lang": "de", "n": 4, "acc": 0.75, "acc_stderr": 0.25, "acc_norm": 0.5,
            "acc_norm_stderr": 0.29, "chance": 0.25, "correct": [1, 1, 1, 0], "correct_norm": [1, 0, 1, 0],
            "item_ids": ["a", "b", "c", "d"]}  # fmt: skip
    worse = {**base, "acc": 0.25, "correct": [0, 0, 1, 0]}
    (tmp_path / "a.json").write_text(json.dumps({"tasks": [base]}))
    (tmp_path / "b.json").write_text(json.dumps({"tasks": [worse]}))
    text = compare_files(tmp_path / "a.json", tmp_path / "b.json", tmp_path / "cmp.md")
    assert "| t | 4 | 0.250 | 0.750 ± 0.250 | 0.250 ± 0.250 | +0.500 [" in text
    assert (tmp_path / "cmp.md").read_text().strip() == text.strip()


@pytest.mark.parametrize(
    "lines, extra, message",
    [
        (["{broken"], [], "line 1: not valid JSON"),
        ([json.dumps({"lang": "de", "context": "x", "choices": [" a", " b"]})], [], "missing field"),
        (
            [json.dumps({"lang": "de", "context": "x", "choices": [" a", " b"], "label": 5})],
            [],
            "out of range",
        ),
        (
            [json.dumps({"lang": "de", "context": "x", "choices": [" a"], "label": 0})],
            [],
            "at least two choices",
        ),
        ([], [], "holds no items"),
        ([json.dumps(ITEMS[0])], ["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_bad_task_input_exits_2_and_writes_nothing(tiny_model_dir, tmp_path, capsys, lines, extra, message):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    out, dump = tmp_path / "out.json", tmp_path / "dump.jsonl"
    args = ["eval", "--model", str(tiny_model_dir), "--tasks", f"file:{items}", "--out", str(out)]
    code = main(args + ["--dump-items", str(dump), "--quiet", *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not dump.exists() and not out.with_suffix(".md").exists()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("reading-choice:de:handbook", "unknown task"),
        ("translation-choice:de->klingon:gettext", "unknown language"),
        ("file:/nonexistent/items.jsonl", "does not exist"),
    ],
)
def test_bad_task_specs_exit_2(tiny_model_dir, tmp_path, capsys, spec, message):
    out = tmp_path / "out.json"
    assert main(["eval", "--model", str(tiny_model_dir), "--tasks", spec, "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err and not out.exists()
