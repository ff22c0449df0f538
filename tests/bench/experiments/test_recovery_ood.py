"""Recovery tables score every row out of domain too; recipes may bring their own calibration windows."""

import pytest

from polysparse.bench.experiments import recovery
from polysparse.bench.recipes import Recipe
from polysparse.sparsify.config import ConfigError


def test_recipe_words_for_its_own_calibration():
    recipe = Recipe.parse("sparsegpt 2:4 +admm windows=64 calib=handbook:de=0.5,manpages:de=0.5")
    assert recipe.windows == 64 and recipe.calib == "handbook:de=0.5,manpages:de=0.5"
    assert recipe.config(nsamples=16, seqlen=512, seed=0).nsamples == 64
    assert Recipe.parse("wanda 2:4").config(16, 512, 0).nsamples == 16
    assert Recipe.parse("sparsegpt 2:4 +admm damp=0.1").config(16, 512, 0).percdamp == 0.1
    with pytest.raises(ConfigError, match="windows"):
        Recipe.parse("wanda 2:4 windows=0")
    with pytest.raises(ConfigError, match="calib=handbook.*NAME:ARGUMENT"):
        Recipe.parse("wanda 2:4 calib=handbook")


def test_plain_row_is_the_recipe_s_method_and_pattern():
    rows = [{"recipe": "dense"}, {"recipe": "wanda 2:4"}, {"recipe": "sparsegpt 2:4 +admm"}]
    assert recovery.plain_row(rows, "wanda 2:4 +admm +recon windows=64")["recipe"] == "wanda 2:4"
    assert recovery.plain_row(rows, "wanda 2:4")["recipe"] == "wanda 2:4"
    assert recovery.plain_row(rows, "sparsegpt 2:4 +admm") is None  # its plain row is not in the table
    assert recovery.plain_row(rows, "dense") is None


def test_ood_specs_keep_the_languages_the_source_has(fortune_root):
    found = recovery.ood_specs("fortunes", ("de", "ja"))
    assert {lang: str(spec) for lang, spec in found.items()} == {"de": "fortunes:de"}
    assert recovery.ood_specs(None, ("de",)) == {}


def test_rows_are_scored_out_of_domain_beside_the_study_windows(tiny_model_dir, tmp_path, fortune_root):
    """End to end (tiny model): an out-of-domain column per language, ratios to dense and to the plain row,
    and a recipe's own calibration spec and window count."""
    recipes = [Recipe.parse("wanda 2:4"), Recipe.parse("wanda 2:4 +admm windows=3 calib=gettext:de")]
    payload = recovery.run_recipes(
        recipes, model=str(tiny_model_dir), calib="de", langs=("de",), eval_langs=("de",),
        cells=tmp_path / "cells", out=tmp_path / "out", nsamples=2, seqlen=32, eval_windows=2,
        eval_seqlen=32, ood_windows=3, quiet=True,
    )  # fmt: skip
    dense, plain, admm = payload["rows"]
    assert payload["plan"]["ood_eval"] == {"de": "fortunes:de"} and payload["plan"]["ood_windows"] == 3
    assert plain["ood_ratio_to_dense"]["de"] == plain["ood_perplexity"]["de"] / dense["ood_perplexity"]["de"]
    assert plain["ood_ratio_to_plain"] == {"de": 1.0} and dense["ood_ratio_to_plain"] == {}
    assert admm["ood_ratio_to_plain"]["de"] == admm["ood_perplexity"]["de"] / plain["ood_perplexity"]["de"]
    assert admm["calibration"]["windows"] == 3 and admm["calib"] == "gettext:de"
    assert admm["config"]["nsamples"] == 3 and plain["config"]["nsamples"] == 2
    held_out = [path.name for path in (tmp_path / "cells").rglob("fortunes_de-3x32-s0.json")]
    assert len(held_out) == 3  # one out-of-domain cell per row, beside the in-domain one
    table = (tmp_path / "out" / "recipes.md").read_text()
    assert "de out of domain (x dense, x plain)" in table and "`fortunes:de`" in table
    rerun = recovery.run_recipes(
        recipes, model=str(tiny_model_dir), calib="de", langs=("de",), eval_langs=("de",),
        cells=tmp_path / "cells", out=tmp_path / "again", nsamples=2, seqlen=32, eval_windows=2,
        eval_seqlen=32, ood_windows=3, quiet=True,
    )  # fmt: skip
    assert [r["ood_perplexity"] for r in rerun["rows"]] == [r["ood_perplexity"] for r in payload["rows"]]
