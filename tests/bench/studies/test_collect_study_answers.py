"""Questions 3 (the mix's worst language) and 4 (recipe rows) asked of task accuracy, on a study JSON with
known per-item correctness."""

import json

import pytest

from polysparse.bench.plans import StudyPlan
from polysparse.bench.studies.collect_study import collect
from polysparse.bench.studies.collect_study_answers import (
    mix_answers,
    mix_markdown,
    paired_bootstrap_worst,
    recipe_answers,
    recipe_markdown,
    worst_drop,
)
from polysparse.bench.studies.study import StudyResult, study_rows
from polysparse.sparsify.tasks import parse_task

N = 100
RIGHT = {  # row label -> items right (of N) in (en, de): the first k items
    "dense": (80, 70),
    "magnitude 2:4": (30, 30),
    "wanda calib=en": (75, 40),  # worst: de, -0.30
    "wanda calib=de": (50, 65),  # worst: en, -0.30
    "wanda calib=mix(en+de)": (72, 62),  # worst: en, -0.08
    "wanda 2:4 +admm calib=de": (60, 69),
}
PERPLEXITY = {"en": 10.0, "de": 20.0}


def correct(k):
    return [int(i < k) for i in range(N)]


def study_json():
    plan = StudyPlan(
        model="m",
        langs=("en", "de"),
        translate_source=None,
        tasks=("continuation-choice:X:handbook",),
        recipe="wanda 2:4 +admm",
        recipe_calibs=("de",),
    )
    rows = study_rows(plan)
    result = StudyResult(plan, rows, {"en": ("install-guide:en", False), "de": ("install-guide:de", False)})
    result.tasks = [parse_task(f"continuation-choice:{lang}:handbook") for lang in ("en", "de")]
    for row in rows:
        for lang, task, k in zip(("en", "de"), result.tasks, RIGHT[row.label]):
            scale = 2.0 if row.kind == "recipe" and lang == "en" else 1.0
            result.cells[(row.label, lang)] = {"perplexity": PERPLEXITY[lang] * scale}
            result.task_cells[(row.label, task.name)] = {
                "task": task.name, "lang": lang, "n": N, "acc": 0.0, "acc_stderr": 0.0, "acc_norm": k / N,
                "acc_norm_stderr": 0.04, "chance": 0.25, "correct": [0] * N, "correct_norm": correct(k),
                "item_ids": [str(i) for i in range(N)],
            }  # fmt: skip
    return {**result.to_dict(), "environment": {"commit": "x"}}


def test_worst_drop_and_its_interval():
    dense = {"en": correct(80), "de": correct(70)}
    assert worst_drop({"en": correct(75), "de": correct(40)}, dense) == (pytest.approx(-0.30), "de")
    same = paired_bootstrap_worst(dense, dense, dense, resamples=200)
    assert (same["difference"], same["low"], same["high"], same["outside_zero"]) == (0.0, 0.0, 0.0, False)
    # The mix loses 8 points at worst, the English row 30 (on German): the interval excludes zero.
    found = paired_bootstrap_worst(
        {"en": correct(72), "de": correct(62)}, {"en": correct(75), "de": correct(40)}, dense, resamples=500
    )
    assert found["difference"] == pytest.approx(0.22) and found["outside_zero"]
    assert found["low"] < 0.22 < found["high"]
    assert (found["a_worst_lang"], found["b_worst_lang"]) == ("en", "de")
    with pytest.raises(ValueError, match="different languages"):
        paired_bootstrap_worst({"en": [1]}, {"de": [1]}, {"en": [1]})


def test_mix_and_recipe_answers():
    study = study_json()
    (entry,) = mix_answers(study)
    assert entry["family"] == "continuation-choice:X:handbook" and entry["metric"] == "acc_norm"
    assert entry["mix_worst"] == pytest.approx(-0.08) and entry["mix_worst_lang"] == "en"
    against = {a["calib"]: a for a in entry["against"]}
    assert set(against) == {"en", "de"}  # single-language rows only: not the recipe row
    assert against["en"]["difference"] == pytest.approx(0.22) and against["en"]["outside_zero"]
    assert against["de"]["b_worst_lang"] == "en" and against["de"]["difference"] == pytest.approx(0.22)

    answers = {e["lang"]: e for e in recipe_answers(study)}
    assert set(answers) == {"en", "de"}
    en, de = answers["en"], answers["de"]
    assert en["plain"] == "wanda calib=de" and not en["seen"] and de["seen"]
    assert en["recipe_acc"] == 0.6 and en["plain_acc"] == 0.5 and en["dense_acc"] == 0.8
    assert (
        en["recipe_minus_plain"]["difference"] == pytest.approx(0.10)
        and en["recipe_minus_plain"]["outside_zero"]
    )
    assert de["recipe_minus_plain"]["difference"] == pytest.approx(0.04)
    assert en["perplexity_recipe_over_plain"] == pytest.approx(2.0)


def test_collect_writes_questions_3_and_4(tmp_path):
    (tmp_path / "study-wanda-2-4.json").write_text(json.dumps(study_json()))
    payload = collect(tmp_path)
    assert len(payload["tasks_mix"]) == 1 and len(payload["tasks_recipe"]) == 2
    text = (tmp_path / "summary.md").read_text()
    assert (
        "Question 3" in text
        and "| wanda 2:4 | `continuation-choice:X:handbook` | acc_norm | -0.080 (en) |" in text
    )
    assert (
        "| wanda 2:4 | wanda 2:4 +admm calib=de | `continuation-choice:en:handbook` | en | no | 100 |" in text
    )


def test_answer_tables_put_each_value_under_its_header():
    interval = {"difference": 0.01, "low": -0.02, "high": 0.03, "outside_zero": False}
    mix = {"study": "s", "family": "f", "metric": "acc", "mix_worst": -0.1, "mix_worst_lang": "de"}
    mix["against"] = [{"calib": "en", "b_worst": -0.2, "b_worst_lang": "ru", **interval}]
    header, _, row = mix_markdown([mix]).strip().splitlines()
    cells = dict(zip(header.strip("| ").split(" | "), row.strip("| ").split(" | "), strict=True))
    assert cells["mix: worst drop (lang)"] == "-0.100 (de)" and cells["its worst drop"] == "-0.200 (ru)"
    assert (
        cells["single-language row"] == "calib=en"
        and cells["mix - single (95% CI)"] == "+0.010 [-0.020, +0.030]"
    )
    recipe = {"study": "s", "recipe": "r", "task": "t", "lang": "de", "seen": False, "n": 3}
    recipe |= {"dense_acc": None, "plain_acc": 0.5, "recipe_acc": 0.6, "recipe_minus_plain": interval}
    header, _, row = recipe_markdown([{**recipe, "perplexity_recipe_over_plain": 0.8}]).strip().splitlines()
    cells = dict(zip(header.strip("| ").split(" | "), row.strip("| ").split(" | "), strict=True))
    assert cells["calibration language?"] == "no" and cells["dense"] == "-" and cells["plain"] == "0.500"
    assert cells["recipe"] == "0.600" and cells["ppl recipe / plain"] == "0.800" and cells["n"] == "3"
