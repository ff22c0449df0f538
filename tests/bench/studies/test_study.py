"""The study: rows, matrix, summary, and resumption cell by cell (real Debian text, tiny model)."""

import json

import pytest

from helpers.studies import tiny_study_plan
from polysparse.bench.studies import study as study_module
from polysparse.bench.studies.study import run_study, study_rows

plan = tiny_study_plan


def test_rows_cover_dense_magnitude_languages_mix_and_translation(tiny_model_dir):
    rows = study_rows(plan(tiny_model_dir, langs=("en", "de", "ja")))
    kinds = [r.kind for r in rows]
    assert kinds == [
        "dense",
        "magnitude",
        "language",
        "language",
        "language",
        "mix",
        "translate",
        "translate",
    ]
    assert str(rows[5].calib) == "handbook:en=0.333333,handbook:de=0.333333,handbook:ja=0.333333"
    assert str(rows[6].calib) == "translate:de->en:gettext,shots=4"
    keys = [r.key(plan(tiny_model_dir, langs=("en", "de", "ja"))) for r in rows]
    assert len(set(keys)) == len(keys)
    # The dense row does not depend on the method; pruned rows do.
    assert rows[0].key(plan(tiny_model_dir)) == rows[0].key(plan(tiny_model_dir, method="sparsegpt"))
    sparsegpt = plan(tiny_model_dir, method="sparsegpt")
    assert rows[2].key(plan(tiny_model_dir)) != study_rows(sparsegpt)[2].key(sparsegpt)
    other_model = plan(tiny_model_dir.parent)
    assert rows[0].key(plan(tiny_model_dir)) != rows[0].key(other_model)


def test_study_runs_and_resumes_cell_by_cell(tiny_model_dir, tmp_path, monkeypatch):
    calls = []
    real_perplexity = study_module.perplexity

    def counting_perplexity(model, windows, **kwargs):
        calls.append(windows.description)
        return real_perplexity(model, windows, **kwargs)

    monkeypatch.setattr(study_module, "perplexity", counting_perplexity)
    p = plan(tiny_model_dir)
    result = run_study(p, tmp_path, quiet=True, plot=False)
    rows = study_rows(p)
    assert len(calls) == len(rows) * 2
    data = json.loads((tmp_path / "study-wanda-2-4.json").read_text())
    assert [r["label"] for r in data["rows"]] == [r.label for r in rows]
    assert all(v > 1 for r in data["rows"] for v in r["perplexity"].values())
    assert data["eval_sources"]["de"] == {"spec": "install-guide:de", "fallback": False}
    assert "| calibration \\ eval |" in (tmp_path / "study-wanda-2-4.md").read_text()
    assert set(result.summary()["best_calibration_per_eval_language"]) == {"en", "de"}

    calls.clear()
    run_study(p, tmp_path, quiet=True, plot=False)
    assert calls == []  # every cell was already there

    # Lose one cell: exactly that one is recomputed, with the same number as before.
    cell = next((tmp_path / "cells").glob("wanda-calib-de-*/install-guide_en-*.json"))
    before = json.loads(cell.read_text())["perplexity"]
    cell.unlink()
    again = run_study(p, tmp_path, quiet=True, plot=False)
    assert calls == ["install-guide:en (held out)"]
    row = next(r for r in again.rows if r.label == "wanda calib=de")
    assert again.ppl(row, "en") == pytest.approx(before, rel=1e-6)


def test_missing_evaluation_language_falls_back_to_held_out_calibration_pages(tiny_model_dir, tmp_path):
    p = plan(tiny_model_dir, langs=("ar",), translate_source=None, mix=False)
    spec, fallback = study_module.eval_spec(p, "ar")
    assert (str(spec), fallback) == ("handbook:ar", True)


def test_heatmap_is_written(tiny_model_dir, tmp_path):
    pytest.importorskip("matplotlib")
    p = plan(tiny_model_dir, langs=("de",), translate_source=None, mix=False)
    run_study(p, tmp_path, quiet=True, plot=True)
    png = tmp_path / "study-wanda-2-4.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
