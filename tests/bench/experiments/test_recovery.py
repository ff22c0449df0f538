"""The recovery experiment: cells found again under the effective keys, legacy word-only cells reused only
where their recorded configuration matches."""

from dataclasses import dataclass, replace

from polysparse.bench import recipes as recipe_module
from polysparse.bench.experiments import recovery
from polysparse.bench.recipes import Recipe
from polysparse.bench.studies.cells import CellStore
from polysparse.sparsify.config import PruneConfig


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

    monkeypatch.setattr(recipe_module, "PruneConfig", NewDefault)  # the recipes' configurations
    monkeypatch.setattr(recovery, "PruneConfig", NewDefault)  # the legacy cells' defaults
    third = recovery.run_recipes(recipes, out=tmp_path / "c", **settings)
    assert len(pruned) == 2 and pruned[1].owl_m == 7.0  # the same words, recomputed
    assert third["rows"][1]["sparsity_profile"]["m"] == 7.0
