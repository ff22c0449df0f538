"""The study summary: the three questions answered from matrices with known numbers."""

import json

import pytest

from helpers.studies import known_result
from polysparse.bench.studies.collect_study import collect, summarise


def study_json():
    return {**known_result().to_dict(), "environment": {"commit": "x"}}


def test_summary_answers_from_the_matrix():
    answers = summarise(study_json())
    assert answers["diagonal_wins"] == 2
    # en: 15 against the de row's 30; de: 40 against the en row's 60.
    assert answers["diagonal_over_median_other"] == pytest.approx((15 / 30 * 40 / 60) ** 0.5)
    assert answers["translation_over_target"] == pytest.approx(44 / 40)
    assert answers["translation_better_in"] == []
    assert answers["translation_over_english_calib"] == pytest.approx(44 / 60)  # de: prompts vs calib=en
    # Worst language ratio to dense: en row max(1.5, 3), de row max(3, 2), mix max(2, 2.25).
    assert answers["mix_worst_ratio"] == pytest.approx(2.25)
    assert answers["best_single_worst_ratio"] == pytest.approx(3.0)
    assert answers["median_single_worst_ratio"] == pytest.approx(3.0)
    assert (answers["method"], answers["sparsity"]) == ("wanda", "2:4")


def test_collect_writes_one_row_per_study(tmp_path):
    (tmp_path / "study-wanda-2-4.json").write_text(json.dumps(study_json()))
    payload = collect(tmp_path)
    assert [s["file"] for s in payload["studies"]] == ["study-wanda-2-4.json"]
    table = (tmp_path / "summary.md").read_text()
    assert "| wanda | 2:4 | 2/2 | 0.58 | 1.10 | 0/1 | 0.73 | 2.25 | 3.00 | 3.00 |" in table
    assert json.loads((tmp_path / "summary.json").read_text())["studies"][0]["diagonal_wins"] == 2


def test_collect_refuses_an_empty_folder(tmp_path):
    with pytest.raises(SystemExit, match="no study"):
        collect(tmp_path)
