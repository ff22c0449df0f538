"""Questions 1 and 2 asked of task accuracy, on a study JSON with known per-item correctness."""

import json

import pytest

from helpers.studies import known_result
from polysparse.bench.studies.collect_study import collect
from polysparse.bench.studies.collect_study_tasks import spearman, task_answers
from polysparse.sparsify.tasks import TaskSpec, parse_task

N = 200
CORRECT_DE = {  # row label -> items right (of N) on the German task; the first k items right
    "dense": 180,
    "magnitude 2:4": 52,
    "wanda calib=en": 100,
    "wanda calib=de": 104,  # diagonal: wins perplexity, wins accuracy by a hair
    "wanda calib=mix(en+de)": 102,
    "wanda calib=translate de->en": 150,  # far ahead of both
}


def study_json():
    result = known_result(tasks=("continuation-choice:X:handbook",))
    task: TaskSpec = parse_task("continuation-choice:de:handbook")
    result.tasks = [task]
    for row in result.rows:
        k = CORRECT_DE[row.label]
        # The de row is right on other items than the en row (many discordant pairs), the others nest.
        start = 60 if row.label == "wanda calib=de" else 0
        correct = [int(start <= i < start + k) for i in range(N)]
        result.task_cells[(row.label, task.name)] = {
            "task": task.name, "lang": "de", "n": N, "acc": k / N, "acc_stderr": 0.03,
            "acc_norm": k / N, "acc_norm_stderr": 0.03, "chance": 0.25, "correct": correct,
            "correct_norm": correct, "item_ids": [str(i) for i in range(N)],
        }  # fmt: skip
    return {**result.to_dict(), "environment": {"commit": "x"}}


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1, 2], [2, 1]) is None


def test_answers_with_intervals():
    (entry,) = task_answers(study_json())
    assert entry["lang"] == "de" and entry["n"] == N and entry["chance"] == 0.25
    assert entry["dense_acc"] == 0.9 and entry["magnitude_acc"] == 0.26
    assert entry["diagonal_wins_ppl"] and entry["diagonal_wins_acc"]
    diagonal = entry["diagonal_minus_best_other"]
    assert entry["best_other_calib"] == "en"
    assert diagonal["difference"] == pytest.approx(0.02) and not diagonal["outside_zero"]
    # Perplexity of de over calibrated rows (en 60, de 40, mix 45, translate 44) against accuracy
    # (0.50, 0.52, 0.51, 0.75): ranks (4, 1, 3, 2) vs (1, 3, 2, 4): rho = -0.8.
    assert entry["rank_correlation_ppl_acc"] == pytest.approx(-0.8)
    english = entry["translate_minus_english_calib"]
    target = entry["translate_minus_target_calib"]
    assert english["difference"] == pytest.approx(0.25) and english["outside_zero"]
    assert english["low"] < 0.25 < english["high"]
    assert target["difference"] == pytest.approx(0.23) and target["outside_zero"]


def test_collect_adds_the_task_table(tmp_path):
    (tmp_path / "study-wanda-2-4.json").write_text(json.dumps(study_json()))
    payload = collect(tmp_path)
    assert payload["tasks"][0]["study"] == "wanda 2:4"
    text = (tmp_path / "summary.md").read_text()
    assert "## Task accuracy" in text and "`continuation-choice:de:handbook`" in text and "+0.250 [" in text


def _with_only(study, metric):
    """The study with the other metric's numbers wiped (zero accuracy, no item right)."""
    other, other_items = ("acc", "correct") if metric == "acc_norm" else ("acc_norm", "correct_norm")
    for row in study["rows"]:
        for cell in row["tasks"].values():
            cell[other], cell[other_items] = 0.0, [0] * len(cell[other_items])
    return study


def test_continuation_is_read_by_acc_norm_translation_by_acc():
    assert parse_task("continuation-choice:de:handbook").metric == "acc_norm"
    assert parse_task("translation-choice:de->en:gettext").metric == "acc"
    expected = task_answers(study_json())
    (entry,) = task_answers(_with_only(study_json(), "acc_norm"))
    assert entry["metric"] == "acc_norm" and entry == expected[0]
    # A study JSON written before the metric was recorded: the task spec decides it.
    old = _with_only(study_json(), "acc_norm")
    for task in old["tasks"]:
        del task["metric"]
    assert task_answers(old) == expected
    # Read by acc instead, the wiped numbers show: the metric really is acc_norm above.
    forced = _with_only(study_json(), "acc_norm")
    forced["tasks"][0]["metric"] = "acc"
    (wrong,) = task_answers(forced)
    assert wrong["dense_acc"] == 0.0
