"""Issue 23's study design: which rows run (translation languages, recipe rows), per-kind item limits, a
pinned task column (en->de as English translation), and tables rewritten after every row."""

import json

import pytest

import polysparse.sparsify.tasks as tasks_module
from polysparse.bench.cli import main
from polysparse.bench.plans import TASK_LIMIT_KINDS, StudyInputError, StudyPlan, parse_task_limits
from polysparse.bench.studies.collect_study import collect
from polysparse.bench.studies.study import run_study, study_rows
from polysparse.bench.studies.study_tasks import study_tasks, task_tables
from polysparse.sparsify.tasks import TaskError
from polysparse.sparsify.tasks.builders import TASK_KINDS


def plan(model_dir, **overrides):
    settings = dict(
        model=str(model_dir),
        langs=("en", "de", "ru"),
        method="sparsegpt",
        pattern="2:4",
        nsamples=2,
        seqlen=32,
        eval_windows=2,
        eval_seqlen=32,
    )
    settings.update(overrides)
    return StudyPlan(**settings)


def test_translation_rows_for_chosen_languages_and_recipe_rows(tiny_model_dir):
    p = plan(
        tiny_model_dir,
        translate_langs=("ru",),
        recipe="sparsegpt 2:4 +admm +recon",
        recipe_calibs=("de", "mix"),
    )
    rows = study_rows(p)
    assert [(r.kind, r.lang) for r in rows] == [
        ("dense", None),
        ("magnitude", None),
        ("language", "en"),
        ("language", "de"),
        ("language", "ru"),
        ("mix", None),
        ("translate", "ru"),
        ("recipe", "de"),
        ("recipe", None),
    ]
    assert rows[-2].label == "sparsegpt 2:4 +admm +recon calib=de"
    assert str(rows[-1].calib) == str(rows[5].calib)  # the recipe's mix is the study's mix
    recipe_config = rows[-2].prune_config(p)
    assert (recipe_config.update, recipe_config.reconstruct) == ("admm", "blockwise")
    assert (recipe_config.nsamples, recipe_config.seqlen) == (2, 32)
    assert rows[3].prune_config(p).update == "none"
    keys = [r.key(p) for r in rows]
    assert len(set(keys)) == len(keys)
    # The new options leave the keys of every other row as they were (their cells stay valid).
    plain = plan(tiny_model_dir)
    before = {r.label: r.key(plain) for r in study_rows(plain)}
    assert all(before[r.label] == r.key(p) for r in rows if r.kind != "recipe")
    assert [r.lang for r in study_rows(plain) if r.kind == "translate"] == ["de", "ru"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(translate_langs=("en",)), "--translate-langs en"),
        (dict(translate_langs=("ja",)), "--translate-langs ja"),
        (dict(recipe="sparsegpt 2:4 +admm"), "together"),
        (dict(recipe_calibs=("de",)), "together"),
        (dict(recipe="sparsegpt 2:4 +admm", recipe_calibs=("ja",)), "--recipe-calib ja"),
        (dict(recipe="sparsegpt 0.6 +admm", recipe_calibs=("de",)), "share the study's sparsity"),
        (dict(task_limits=(("reading-choice", 10),)), "task kind"),
        (dict(task_limits=(("file", 0),)), "at least 1"),
    ],
)
def test_bad_row_and_limit_options_are_refused_when_the_plan_is_made(tiny_model_dir, overrides, message):
    with pytest.raises(StudyInputError, match=message):
        plan(tiny_model_dir, **overrides)


def test_task_limit_text():
    assert parse_task_limits("300") == (300, ())
    assert parse_task_limits(40) == (40, ())
    default, per_kind = parse_task_limits("translation-choice=300, continuation-choice=200")
    assert per_kind == (("translation-choice", 300), ("continuation-choice", 200))
    assert parse_task_limits("7,file=3") == (7, (("file", 3),))
    with pytest.raises(StudyInputError, match="KIND=N"):
        parse_task_limits("translation-choice=lots")
    assert set(TASK_LIMIT_KINDS) == set(TASK_KINDS)  # plans.py stays torch-free, so it keeps its own list


def test_pinned_column_fills_the_language_a_template_leaves_out(tiny_model_dir):
    specs = ("translation-choice:X->en:gettext", "en=translation-choice:en->de:gettext")
    prepared, skipped = study_tasks(specs, ("en", "de"), limit=5, seed=0)
    columns = {(t.family, t.lang): t.name for t, _ in prepared}
    assert columns == {
        ("translation-choice:X->en:gettext", "de"): "translation-choice:de->en:gettext",
        ("translation-choice:X->en:gettext", "en"): "translation-choice:en->de:gettext",
    }
    assert not skipped
    pinned = next(t for t, _ in prepared if t.lang == "en")
    assert pinned.header == "en (en->de)" and pinned.metric == "acc"
    rows = study_rows(plan(tiny_model_dir, langs=("en", "de"), translate_source=None, mix=False))
    results = {
        (r.label, t.name): {"n": 5, "chance": 0.25, "acc": 0.4, "acc_stderr": 0.1}
        for r in rows
        for t, _ in prepared
    }
    table = task_tables(rows, [t for t, _ in prepared], results, ("en", "de"))
    assert "| calibration \\ task language | en (en->de) | de |" in table
    assert table.count("####") == 1  # one table: the pinned task is that family's English column

    StudyPlan(model="m", langs=("en", "de"), tasks=specs)  # valid
    with pytest.raises(TaskError, match="not a study language"):
        StudyPlan(model="m", langs=("de", "ru"), tasks=specs)
    with pytest.raises(TaskError, match="leaves the en column empty"):
        StudyPlan(model="m", langs=("en", "de"), tasks=("en=translation-choice:en->de:gettext",))
    with pytest.raises(TaskError, match="not a language"):
        StudyPlan(model="m", langs=("en", "de"), tasks=("english!=translation-choice:en->de:gettext",))


def write_items(path, count):
    records = [
        {"lang": "de", "context": f"Satz {i}: Der Hund", "choices": [" läuft", " Katze"], "label": i % 2}
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_per_kind_limits_and_tables_written_after_every_row(tiny_model_dir, tmp_path, monkeypatch):
    items = write_items(tmp_path / "items.jsonl", 9)
    p = plan(
        tiny_model_dir,
        langs=("en", "de"),
        method="wanda",
        translate_source=None,
        mix=False,
        tasks=(f"file:{items}", "continuation-choice:X:handbook"),
        task_limit=3,
        task_limits=(("file", 7),),
    )
    real = tasks_module.evaluate_task
    calls = []

    def failing_on_the_third_row(model, tokenizer, task, items, **kwargs):
        calls.append(task)
        if len(calls) > 2 * 3:  # three tasks per row: dense and magnitude finish, the next row fails
            raise KeyboardInterrupt
        return real(model, tokenizer, task, items, **kwargs)

    monkeypatch.setattr("polysparse.sparsify.tasks.evaluate_task", failing_on_the_third_row)
    with pytest.raises(KeyboardInterrupt):
        run_study(p, tmp_path / "out", cells=tmp_path / "cells", quiet=True, plot=False)
    data = json.loads((tmp_path / "out" / "study-wanda-2-4.json").read_text())
    done = {r["label"]: r for r in data["rows"]}
    assert done["dense"]["tasks"][f"file:{items}"]["n"] == 7  # the file kind's own limit
    assert done["dense"]["tasks"]["continuation-choice:de:handbook"]["n"] == 3
    assert done["magnitude 2:4"]["perplexity"]["de"] > 1
    assert done["wanda calib=en"]["tasks"] == {} and done["wanda calib=en"]["perplexity"]["en"] is None
    assert "7 items of file (3 of others)" in (tmp_path / "out" / "study-wanda-2-4.md").read_text()
    # The partial tables can be collected while the rest runs.
    partial = collect(tmp_path / "out")["studies"][0]
    assert partial["diagonal_wins"] == 0 and partial["best_single_worst_ratio"] is None

    monkeypatch.setattr("polysparse.sparsify.tasks.evaluate_task", real)
    run_study(p, tmp_path / "out", cells=tmp_path / "cells", quiet=True, plot=False)
    data = json.loads((tmp_path / "out" / "study-wanda-2-4.json").read_text())
    assert all(len(r["tasks"]) == 3 for r in data["rows"])


def test_study_command_takes_the_new_options(tiny_model_dir, tmp_path, capsys):
    common = ["study", "--model", str(tiny_model_dir), "--nsamples", "2", "--seqlen", "32"]
    common += ["--eval-windows", "2", "--eval-seqlen", "32", "--no-plot", "--quiet", "--no-mix"]
    common += ["--langs", "en,de"]
    out = tmp_path / "study"
    for extra, message in [
        (["--task-limit", "continuation-choice=many"], "KIND=N"),
        (["--translate-langs", "en"], "--translate-langs en"),
        (["--recipe", "wanda 2:4 +admm"], "together"),
    ]:
        assert main([*common, "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert not out.exists()
    args = [*common, "--out", str(out), "--translate-langs", "de", "--method", "wanda"]
    args += ["--recipe", "wanda 2:4 +admm", "--recipe-calib", "de"]
    assert main(args) == 0
    data = json.loads((out / "study-wanda-2-4.json").read_text())
    assert [r["label"] for r in data["rows"]][-2:] == [
        "wanda calib=translate de->en",
        "wanda 2:4 +admm calib=de",
    ]
    # Tables written before these options existed are read with their defaults, not refused.
    plan_without = {k: v for k, v in data["plan"].items() if k not in ("recipe", "recipe_calibs")}
    (out / "study-wanda-2-4.json").write_text(json.dumps({**data, "plan": plan_without}))
    assert main([*common, "--out", str(out), "--method", "wanda", "--translate-langs", "de"]) == 0
    assert main([*args]) == 2
    assert "recipe=None there, 'wanda 2:4 +admm' here" in capsys.readouterr().err
