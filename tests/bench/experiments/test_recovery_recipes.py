"""Recipe words map onto PruneConfig fields, bad words are refused, cells key on the effective config."""

from dataclasses import dataclass, replace

import pytest

from polysparse.bench.cells import CellStore
from polysparse.bench.experiments import recovery
from polysparse.bench.experiments.recovery import Recipe
from polysparse.sparsify.config import ConfigError, PruneConfig


def test_recipe_words_map_onto_the_configuration():
    recipe = Recipe.parse("sparsegpt 2:4 +admm +recon=prefix steps=8 lr=1e-3 targets=layers\\.[0-5]\\.")
    config = recipe.config(nsamples=4, seqlen=16, seed=0)
    assert (config.method, str(config.pattern), config.update) == ("sparsegpt", "2:4", "admm")
    assert (config.reconstruct, config.reconstruct_target) == ("blockwise", "prefix")
    assert (config.reconstruct_steps, config.reconstruct_lr) == (8, 1e-3)
    assert config.targets == ("layers\\.[0-5]\\.",)
    owl = Recipe.parse("wanda 0.5 +owl m=7 lambda=0.1").config(4, 16, 0)
    assert (owl.sparsity, owl.sparsity_profile, owl.owl_m, owl.owl_lambda) == (0.5, "owl", 7.0, 0.1)
    assert Recipe.parse("sparsegpt 0.5 +owl-lang").config(4, 16, 0).sparsity_profile == "owl-lang"


@pytest.mark.parametrize(
    "text, message",
    [("wanda", "write '<method>"), ("wanda 2:4 +fast", "unknown word"), ("wanda 2:4 steps=-1", "steps")],
)
def test_bad_recipes_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        Recipe.parse(text)


def test_cells_are_keyed_on_the_effective_configuration(monkeypatch):
    """Same words, a changed default: a different key (the old word-only key could not tell them apart)."""
    recipe = Recipe.parse("wanda 2:4 +admm +recon")
    where = {"model": "gemma-3-270m", "calib": "handbook:de"}
    key = recovery.recipe_cell_key(recipe, recipe.config(16, 512, 0), **where)
    assert key == recovery.recipe_cell_key(
        Recipe.parse("wanda  2:4 +admm +recon"), recipe.config(16, 512, 0), **where
    )
    assert key.startswith("wanda-2-4--admm--recon-")

    @dataclass(frozen=True)
    class NewDefault(PruneConfig):
        reconstruct_lr: float = 1e-3

    monkeypatch.setattr(recovery, "PruneConfig", NewDefault)
    changed = recipe.config(16, 512, 0)
    assert changed.reconstruct_lr == 1e-3 and recipe.settings == Recipe.parse(recipe.text).settings
    assert recovery.recipe_cell_key(recipe, changed, **where) != key
    monkeypatch.undo()
    # Defaults of the steps outside PruneConfig count too: the ADMM solve's and reconstruction's.
    monkeypatch.setattr(recovery, "EVAL_BATCHES", recovery.EVAL_BATCHES + 1)
    assert recovery.recipe_cell_key(recipe, recipe.config(16, 512, 0), **where) != key
    monkeypatch.undo()
    kwdefaults = dict(recovery.admm_update.__kwdefaults__, rho_end=20.0)
    monkeypatch.setattr(recovery.admm_update, "__kwdefaults__", kwdefaults)
    assert recovery.effective_settings(recipe.config(16, 512, 0))["admm_defaults"]["rho_end"] == 20.0
    assert recovery.recipe_cell_key(recipe, recipe.config(16, 512, 0), **where) != key
    monkeypatch.undo()
    # Where activations wait between blocks does not change the weights, nor the key.
    offloaded = replace(recipe.config(16, 512, 0), offload="cpu")
    assert recovery.recipe_cell_key(recipe, offloaded, **where) == key


def test_legacy_cells_are_reused_only_where_their_recorded_configuration_matches(tmp_path):
    store = CellStore(tmp_path)
    recipe = Recipe.parse("wanda 2:4 +recon")
    config = recipe.config(16, 512, 0)
    new = recovery.recipe_cell_key(recipe, config, model="m", calib="handbook:de")
    legacy = recovery.legacy_cell_key(recipe, model="m", calib="handbook:de", nsamples=16, seqlen=512, seed=0)
    assert recovery.cell_group(store, new, legacy, config) == new  # nothing stored yet
    recorded = config.to_dict()
    store.put(legacy, "row", {"config": {**recorded, "reconstruct_lr": 1e-4}})  # written under an old default
    assert recovery.cell_group(store, new, legacy, config) == new
    del recorded["owl_m"]  # a field added to PruneConfig since, at its default
    store.put(legacy, "row", {"config": recorded})
    assert recovery.cell_group(store, new, legacy, config) == legacy
    assert recovery.cell_group(store, new, legacy, replace(config, owl_m=7.0)) == new
    store.put(new, "row", {"config": config.to_dict()})
    assert recovery.cell_group(store, new, legacy, config) == new  # cells under the new key come first


def test_run_recipes_reuses_its_cells_and_recomputes_after_a_changed_default(
    tiny_model_dir, tmp_path, monkeypatch
):
    """End to end (tiny model, real Debian text): cells are found again, and a changed default is seen."""
    pruned = []
    real_prune = recovery.prune_model

    def counting_prune(model, config, windows, **kwargs):
        pruned.append(config)
        return real_prune(model, config, windows, **kwargs)

    monkeypatch.setattr(recovery, "prune_model", counting_prune)
    settings = dict(
        model=str(tiny_model_dir), calib="de", langs=("de",), eval_langs=("de",), cells=tmp_path / "cells",
        nsamples=2, seqlen=32, eval_windows=2, eval_seqlen=32, quiet=True,
    )  # fmt: skip
    recipes = [Recipe.parse("wanda 0.5 +owl")]
    first = recovery.run_recipes(recipes, out=tmp_path / "a", **settings)
    assert len(pruned) == 1 and first["rows"][1]["effective_settings"]["owl_m"] == 5.0
    second = recovery.run_recipes(recipes, out=tmp_path / "b", **settings)
    assert len(pruned) == 1  # every cell found
    assert second["rows"][1]["perplexity"] == first["rows"][1]["perplexity"]

    @dataclass(frozen=True)
    class NewDefault(PruneConfig):
        owl_m: float = 7.0

    monkeypatch.setattr(recovery, "PruneConfig", NewDefault)
    third = recovery.run_recipes(recipes, out=tmp_path / "c", **settings)
    assert len(pruned) == 2 and pruned[1].owl_m == 7.0  # the same words, recomputed
    assert third["rows"][1]["sparsity_profile"]["m"] == 7.0
