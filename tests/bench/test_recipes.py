"""Recipe words map onto PruneConfig fields, bad words are refused, cells key on the effective config."""

from dataclasses import dataclass, replace

import pytest

from polysparse.bench import recipes
from polysparse.bench.recipes import Recipe
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
    key = recipes.recipe_cell_key(recipe, recipe.config(16, 512, 0), **where)
    assert key == recipes.recipe_cell_key(
        Recipe.parse("wanda  2:4 +admm +recon"), recipe.config(16, 512, 0), **where
    )
    assert key.startswith("wanda-2-4--admm--recon-")

    @dataclass(frozen=True)
    class NewDefault(PruneConfig):
        reconstruct_lr: float = 1e-3

    monkeypatch.setattr(recipes, "PruneConfig", NewDefault)
    changed = recipe.config(16, 512, 0)
    assert changed.reconstruct_lr == 1e-3 and recipe.settings == Recipe.parse(recipe.text).settings
    assert recipes.recipe_cell_key(recipe, changed, **where) != key
    monkeypatch.undo()
    # Defaults of the steps outside PruneConfig count too: the ADMM solve's and reconstruction's.
    monkeypatch.setattr(recipes, "EVAL_BATCHES", recipes.EVAL_BATCHES + 1)
    assert recipes.recipe_cell_key(recipe, recipe.config(16, 512, 0), **where) != key
    monkeypatch.undo()
    kwdefaults = dict(recipes.admm_update.__kwdefaults__, rho_end=20.0)
    monkeypatch.setattr(recipes.admm_update, "__kwdefaults__", kwdefaults)
    assert recipes.effective_settings(recipe.config(16, 512, 0))["admm_defaults"]["rho_end"] == 20.0
    assert recipes.recipe_cell_key(recipe, recipe.config(16, 512, 0), **where) != key
    monkeypatch.undo()
    # Where activations wait between blocks does not change the weights, nor the key.
    offloaded = replace(recipe.config(16, 512, 0), offload="cpu")
    assert recipes.recipe_cell_key(recipe, offloaded, **where) == key
