"""Task columns of the study: expansion of X over the languages, cells per row and task, resumption."""

import json

import pytest

import polysparse.sparsify.tasks as tasks_module
from helpers.studies import tiny_study_plan
from polysparse.bench.plans import StudyPlan
from polysparse.bench.studies.study import run_study, study_rows
from polysparse.bench.studies.study_tasks import expand, is_template
from polysparse.sparsify.tasks import TaskError


def plan(model_dir, **overrides):
    return tiny_study_plan(model_dir, **{"translate_source": None, "mix": False, **overrides})


def test_templates_expand_over_languages():
    assert is_template("translation-choice:X->en:gettext") and not is_template("file:X.jsonl")
    assert expand("translation-choice:X->en:gettext", "de") == "translation-choice:de->en:gettext"
    assert expand("translation-choice:X->en:gettext", "en") is None
    assert expand("translation-choice:en->X:handbook", "ja") == "translation-choice:en->ja:handbook"
    assert expand("continuation-choice:X:text:data/*.txt", "de") == "continuation-choice:de:text:data/*.txt"
    assert expand("file:X.jsonl", "de") == "file:X.jsonl"


def test_bad_task_spec_fails_when_the_plan_is_made(tiny_model_dir):
    with pytest.raises(TaskError, match="unknown task"):
        plan(tiny_model_dir, tasks=("reading-choice:X:handbook",))
    with pytest.raises(ValueError, match="task-limit"):
        plan(tiny_model_dir, task_limit=0)


def write_items(path):
    records = [
        {
            "lang": "de",
            "context": f"Satz {i}: Der Hund",
            "choices": [" läuft", " Katze", " und"],
            "label": i % 3,
        }
        for i in range(6)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def write_texts(folder):
    folder.mkdir()
    for d in range(12):
        paragraphs = [
            " ".join(f"Paragraph {p} of file {d} tells story number {s} of the dog." for s in range(4))
            for p in range(3)
        ]
        (folder / f"doc{d:02d}.txt").write_text("\n\n".join(paragraphs * 3), encoding="utf-8")
    return folder


def test_study_with_tasks_runs_and_resumes(tiny_model_dir, tmp_path, monkeypatch):
    items = write_items(tmp_path / "items.jsonl")
    texts = write_texts(tmp_path / "texts")
    calls = []
    real = tasks_module.evaluate_task

    def counting(model, tokenizer, task, items, **kwargs):
        calls.append(task)
        return real(model, tokenizer, task, items, **kwargs)

    monkeypatch.setattr("polysparse.sparsify.tasks.evaluate_task", counting)
    tasks = (f"file:{items}", f"continuation-choice:X:text:{texts}/*.txt", "translation-choice:X->en:gettext")
    p = plan(tiny_model_dir, langs=("en", "fr"), tasks=tasks, task_limit=5)
    result = run_study(p, tmp_path / "out", quiet=True, plot=False)
    rows = study_rows(p)
    names = [t.name for t in result.tasks]
    assert names[0] == f"file:{items}"
    assert f"continuation-choice:en:text:{texts}/*.txt" in names
    # gettext with fr: runs where the machine has French catalogues; en->en is never a task.
    assert not any(n.startswith("translation-choice:en->en") for n in names)
    assert len(calls) == len(rows) * len(names)
    data = json.loads((tmp_path / "out" / "study-wanda-2-4.json").read_text())
    for row in data["rows"]:
        assert set(row["tasks"]) == set(names)
        cell = row["tasks"][f"file:{items}"]
        assert cell["n"] == 5 and len(cell["correct"]) == 5 and cell["chance"] == pytest.approx(1 / 3)
    assert "#### `file:" in (tmp_path / "out" / "study-wanda-2-4.md").read_text()
    calls.clear()
    run_study(p, tmp_path / "out", quiet=True, plot=False)
    assert calls == []  # every task cell was already there


def test_tables_read_continuation_by_acc_norm_and_translation_by_acc():
    from polysparse.bench.studies.study_tasks import task_tables
    from polysparse.sparsify.tasks import parse_task

    rows = study_rows(StudyPlan(model="m", langs=("en", "de")))
    continuation = parse_task("continuation-choice:de:handbook")
    translation = parse_task("translation-choice:de->en:gettext")
    results = {}
    for row in rows:
        for task in (continuation, translation):
            results[(row.label, task.name)] = {
                "n": 80, "chance": 0.25, "acc": 0.111, "acc_stderr": 0.01, "acc_norm": 0.999,
                "acc_norm_stderr": 0.02,
            }  # fmt: skip
    text = task_tables(rows, [continuation, translation], results, ("en", "de"))
    family_tables = text.split("####")[1:]
    assert "`acc_norm`" in family_tables[0] and "0.999 ± 0.020" in family_tables[0]
    assert "0.111" not in family_tables[0]
    assert "`acc`" in family_tables[1] and "0.111 ± 0.010" in family_tables[1]
    assert "0.999" not in family_tables[1]
