"""Random-weight 2:4 checkpoints at real shapes (the end-to-end step of bench/scripts/gpu_all.sh)."""

import pytest
import torch

from polysparse.bench.speed import shape_models
from polysparse.runtime import load_sparse
from polysparse.runtime.swap import sparse_layers


@pytest.mark.parametrize("name", sorted(shape_models.CONFIGS))
def test_published_configs_build(name):
    config = shape_models.build_config(name, layers=2)
    assert config.num_hidden_layers == 2
    fields = shape_models.CONFIGS[name]
    assert config.hidden_size == fields["hidden_size"] and config.vocab_size == fields["vocab_size"]


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "gemma3_text"])
def test_small_checkpoint_loads_sparse(tmp_path, model_type):
    fields = dict(
        model_type=model_type, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=256, max_position_embeddings=128,
    )  # fmt: skip
    out = tmp_path / "ckpt"
    summary = shape_models.build_sparse_checkpoint(fields, out, dtype=torch.float16, device="cpu")
    assert summary["layers"] == 2 and summary["pruned_linear_layers"] == 14  # 7 linear layers per block
    model = load_sparse(tmp_path / "ckpt")
    layers = sparse_layers(model)
    assert len(layers) == 14
    assert all((layer.dense_weight().reshape(-1, 4) != 0).sum(-1).max() <= 2 for layer in layers.values())
