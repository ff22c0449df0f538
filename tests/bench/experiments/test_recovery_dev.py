"""The recovery tables' dev column (where settings are chosen) and the reconstruction's recipe words."""

import pytest

from polysparse.bench import recipes
from polysparse.bench.experiments import recovery
from polysparse.bench.recipes import Recipe
from polysparse.sparsify.config import ConfigError


def test_dev_windows_come_from_the_calibration_side_only(tiny_model_dir, fortune_root):
    """The dev windows (where settings are chosen) share no entry with the held-out windows reported."""
    from transformers import AutoTokenizer

    from polysparse.sparsify.calibration import evaluation_windows, split_source
    from polysparse.sparsify.corpora import SourceSpec

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    spec = SourceSpec.of("fortunes", "de")
    _, held_out = split_source(spec)

    def text(windows):
        return "".join(tokenizer.decode(row, skip_special_tokens=True) for row in windows.input_ids)

    dev = text(recovery.dev_windows_of(spec, tokenizer, 4, 64, 0))
    reported = text(evaluation_windows(spec, tokenizer, 4, 64, 0))
    assert held_out and not any(doc.text in dev for doc in held_out)
    assert any(doc.text in reported for doc in held_out)


def test_reconstruction_words_and_their_cells():
    """``loss=`` and ``prox=`` reach PruneConfig; at the values that mean the old behaviour they stay out of
    the cell key, so cells written before the fields existed are found again."""
    plain = Recipe.parse("wanda 2:4 +admm +recon")
    words = Recipe.parse("wanda 2:4 +admm +recon loss=relative prox=10")
    config = words.config(16, 512, 0)
    assert (config.reconstruct_loss, config.reconstruct_prox) == ("relative", 10.0)
    where = {"model": "gemma-3-270m", "calib": "handbook:de"}
    settings = recipes.effective_settings(plain.config(16, 512, 0))
    assert "reconstruct_loss" not in settings and "reconstruct_prox" not in settings
    assert recipes.effective_settings(config)["reconstruct_prox"] == 10.0
    spelled = Recipe.parse("wanda 2:4 +admm +recon loss=mse prox=0")
    key = recipes.recipe_cell_key(plain, plain.config(16, 512, 0), **where)
    assert recipes.recipe_cell_key(spelled, spelled.config(16, 512, 0), **where).endswith(key[-12:])
    assert recipes.recipe_cell_key(words, config, **where)[-12:] != key[-12:]
    with pytest.raises(ConfigError, match="reconstruct_loss"):
        Recipe.parse("wanda 2:4 +recon loss=l1")
    with pytest.raises(ConfigError, match="reconstruct_prox"):
        Recipe.parse("wanda 2:4 +recon prox=-1")


def test_the_dev_column_is_scored_and_kept_in_its_own_cells(tiny_model_dir, tmp_path, fortune_root):
    recipes_run = [Recipe.parse("wanda 2:4"), Recipe.parse("wanda 2:4 +recon steps=2 loss=relative prox=1")]
    payload = recovery.run_recipes(
        recipes_run, model=str(tiny_model_dir), calib="de", langs=("de",), eval_langs=("de",),
        cells=tmp_path / "cells", out=tmp_path / "out", nsamples=2, seqlen=32, eval_windows=2,
        eval_seqlen=32, ood_windows=3, dev_windows=2, quiet=True,
    )  # fmt: skip
    dense, plain, recon = payload["rows"]
    assert payload["plan"]["dev_windows"] == 2
    assert plain["dev_ratio_to_plain"] == {"de": 1.0}
    assert recon["dev_ratio_to_plain"]["de"] == recon["dev_perplexity"]["de"] / plain["dev_perplexity"]["de"]
    assert dense["dev_perplexity"]["de"] != dense["ood_perplexity"]["de"]  # other windows
    assert len(list((tmp_path / "cells").rglob("fortunes_de-dev-2x32-s0.json"))) == 3
    assert recon["blocks"][0]["reconstruction"]["loss"] == "relative"
    table = (tmp_path / "out" / "recipes.md").read_text()
    assert "de dev (x plain)" in table and "calibration side" in table
