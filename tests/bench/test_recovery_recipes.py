"""The recipe words of bench/recovery.py map onto PruneConfig fields; unknown or bad words are refused."""

import pytest

from polysparse.bench.recovery import Recipe
from polysparse.sparsify.config import ConfigError


def test_recipe_words_map_onto_the_configuration():
    recipe = Recipe.parse("sparsegpt 2:4 +admm +recon=prefix steps=8 lr=1e-3 targets=layers\\.[0-5]\\.")
    config = recipe.config(nsamples=4, seqlen=16, seed=0)
    assert (config.method, str(config.pattern), config.update) == ("sparsegpt", "2:4", "admm")
    assert (config.reconstruct, config.reconstruct_target) == ("blockwise", "prefix")
    assert (config.reconstruct_steps, config.reconstruct_lr) == (8, 1e-3)
    assert config.targets == ("layers\\.[0-5]\\.",)
    owl = Recipe.parse("wanda 0.5 +owl m=7 lambda=0.1").config(4, 16, 0)
    assert (owl.sparsity, owl.sparsity_profile, owl.owl_m, owl.owl_lambda) == (0.5, "owl", 7.0, 0.1)


@pytest.mark.parametrize(
    "text, message",
    [("wanda", "write '<method>"), ("wanda 2:4 +fast", "unknown word"), ("wanda 2:4 steps=-1", "steps")],
)
def test_bad_recipes_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        Recipe.parse(text)
