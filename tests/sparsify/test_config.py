import pytest

from polysparse.sparsify.config import ConfigError, NMPattern, PruneConfig


@pytest.mark.parametrize("sparsity", [0, 1, -0.1, 1.5, float("nan"), "0.5"])
def test_sparsity_outside_open_interval_is_refused(sparsity):
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        PruneConfig(sparsity=sparsity)


@pytest.mark.parametrize("text", ["2-4", "2:", ":4", "a:b", "4:2", "2:2", "0:4", "2:4:8", ""])
def test_malformed_patterns_are_refused(text):
    with pytest.raises(ConfigError):
        PruneConfig(pattern=text)


def test_pattern_parsing_and_labels():
    config = PruneConfig(pattern=" 4 : 8 ")
    assert config.pattern == NMPattern(4, 8)
    assert config.target_sparsity == 0.5
    assert config.sparsity_label == "4:8"
    assert PruneConfig(sparsity=0.3).sparsity_label == "30% unstructured"
    assert PruneConfig(pattern="1:4").target_sparsity == 0.25


def test_exactly_one_of_sparsity_or_pattern():
    with pytest.raises(ConfigError, match="exactly one"):
        PruneConfig()
    with pytest.raises(ConfigError, match="exactly one"):
        PruneConfig(sparsity=0.5, pattern="2:4")


def test_other_fields_are_validated():
    with pytest.raises(ConfigError, match="unknown method"):
        PruneConfig(method="obs", sparsity=0.5)
    with pytest.raises(ConfigError, match="nsamples"):
        PruneConfig(sparsity=0.5, nsamples=0)
    with pytest.raises(ConfigError, match="regular expression"):
        PruneConfig(sparsity=0.5, targets=("mlp[",))
    with pytest.raises(ConfigError, match="multiple of M"):
        PruneConfig(method="sparsegpt", pattern="3:7", blocksize=128)
    with pytest.raises(ConfigError, match="percdamp"):
        PruneConfig(sparsity=0.5, percdamp=0)


def test_config_is_frozen_and_serialisable():
    config = PruneConfig(pattern="2:4", targets="mlp")
    assert config.targets == ("mlp",)
    with pytest.raises(AttributeError):
        config.method = "magnitude"
    data = config.to_dict()
    assert data["pattern"] == "2:4" and data["targets"] == ["mlp"]
