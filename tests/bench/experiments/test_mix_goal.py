import json

import pytest

from polysparse.bench.experiments import mix_goal

DENSE = {"en": 10.0, "de": 20.0}
LANGS = ("en", "de")


def _recovery(path, recipe, perplexity):
    rows = [{"recipe": "dense", "perplexity": DENSE}, {"recipe": recipe, "perplexity": perplexity}]
    path.write_text(json.dumps({"rows": rows}))


def _study(path, rows):
    payload = [{"kind": "dense", "perplexity": DENSE}] + rows
    path.write_text(json.dumps({"rows": payload}))


def test_worst_names_the_language():
    assert mix_goal.worst({"en": 30.0, "de": 40.0}, DENSE) == (3.0, "en")


def test_open_while_a_single_language_row_is_missing(tmp_path):
    _recovery(tmp_path / "mix-wanda-2-4.json", "wanda 2:4 +admm", {"en": 20.0, "de": 50.0})
    _recovery(tmp_path / "single-en-wanda-2-4.json", "wanda 2:4 +admm", {"en": 15.0, "de": 200.0})
    summary = mix_goal.setting_summary("wanda-2-4", tmp_path, None, LANGS)
    assert summary["mix"] == {"worst": 2.5, "lang": "de"}
    assert summary["singles"] == {"en": {"worst": 10.0, "lang": "de"}, "de": None}
    assert summary["verdict"] == "open: no best-recipe row calibrated on de"
    assert "not run" in mix_goal.markdown([summary], LANGS)


def test_met_only_when_every_row_is_worse_and_not_met_when_one_is_not(tmp_path):
    _recovery(tmp_path / "mix-wanda-50.json", "w", {"en": 20.0, "de": 50.0})  # 2.5x
    _recovery(tmp_path / "single-en-wanda-50.json", "w", {"en": 15.0, "de": 200.0})  # 10x
    _recovery(tmp_path / "single-de-wanda-50.json", "w", {"en": 26.0, "de": 30.0})  # 2.6x
    _study(
        tmp_path / "study-wanda-50.json",
        [
            {"kind": "language", "lang": "en", "perplexity": {"en": 30.0, "de": 80.0}},  # 4x
            {"kind": "mix", "perplexity": {"en": 30.0, "de": 60.0}},
            {"kind": "translate", "lang": "de", "perplexity": {"en": 11.0, "de": 21.0}},  # not a single row
        ],
    )
    summary = mix_goal.setting_summary("wanda-50", tmp_path, tmp_path, LANGS)
    assert summary["verdict"] == "met"
    assert summary["plain"] == {"en": {"worst": 4.0, "lang": "de"}, "mix": {"worst": 3.0, "lang": "en"}}
    _recovery(tmp_path / "single-de-wanda-50.json", "w", {"en": 24.0, "de": 30.0})  # 2.4x: below the mix
    verdict = mix_goal.setting_summary("wanda-50", tmp_path, tmp_path, LANGS)["verdict"]
    assert verdict.startswith("not met: de")


def test_a_single_row_of_another_recipe_is_refused(tmp_path):
    _recovery(tmp_path / "mix-wanda-50.json", "wanda 0.5 +admm", {"en": 20.0, "de": 50.0})
    _recovery(tmp_path / "single-en-wanda-50.json", "wanda 0.5", {"en": 15.0, "de": 200.0})
    with pytest.raises(ValueError, match="single-en-wanda-50.json ran 'wanda 0.5'"):
        mix_goal.setting_summary("wanda-50", tmp_path, None, LANGS)


def test_no_mix_row(tmp_path):
    summary = mix_goal.setting_summary("sparsegpt-50", tmp_path, None, LANGS)
    assert summary["mix"] is None and "missing" in summary["verdict"]
    assert "missing" in mix_goal.markdown([summary], LANGS)
