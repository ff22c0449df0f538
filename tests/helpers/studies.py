"""Studies for tests: a tiny real one (tiny model, real Debian text) and a two-language result with known
perplexities (no model at all)."""

from __future__ import annotations

from polysparse.bench.plans import StudyPlan
from polysparse.bench.studies.study import StudyResult, study_rows

PERPLEXITY = {  # row label -> (en, de)
    "dense": (10.0, 20.0),
    "magnitude 2:4": (900.0, 800.0),
    "wanda calib=en": (15.0, 60.0),
    "wanda calib=de": (30.0, 40.0),
    "wanda calib=mix(en+de)": (20.0, 45.0),
    "wanda calib=translate de->en": (18.0, 44.0),
}


def tiny_study_plan(model_dir, **overrides) -> StudyPlan:
    """Wanda 2:4 in English and German on two windows of 32 tokens, scored on two of 32."""
    settings = dict(
        model=str(model_dir), langs=("en", "de"), method="wanda", pattern="2:4", nsamples=2, seqlen=32,
        eval_windows=2, eval_seqlen=32,
    )  # fmt: skip
    return StudyPlan(**{**settings, **overrides})


def known_result(**plan_settings) -> StudyResult:
    """An en/de Wanda 2:4 study whose perplexity cells are :data:`PERPLEXITY` (rows in that order)."""
    plan = StudyPlan(model="m", langs=("en", "de"), **plan_settings)
    rows = study_rows(plan)
    assert [r.label for r in rows] == list(PERPLEXITY)
    result = StudyResult(plan, rows, {"en": ("install-guide:en", False), "de": ("install-guide:de", False)})
    for row in rows:
        for lang, value in zip(("en", "de"), PERPLEXITY[row.label]):
            result.cells[(row.label, lang)] = {"perplexity": value}
    return result
