"""export: dense and compressed-tensors folders that round-trip exactly and load elsewhere."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from helpers.checkpoint_files import logits, same_sparse_layers
from helpers.sparse_models import token_ids
from polysparse.runtime.checkpoint import CheckpointError, export, load_sparse
from polysparse.runtime.swap import sparse_layers


@pytest.mark.parametrize("fmt", ["dense", "compressed", "compressed-tensors"])
def test_export_round_trips_exactly(saved_sparse, tmp_path, fmt):
    folder = saved_sparse("gemma3")
    original = load_sparse(folder)
    out = export(folder, tmp_path / fmt, fmt)
    again = load_sparse(out)
    same_sparse_layers(original, again)
    assert torch.equal(logits(again, token_ids()), logits(original, token_ids()))
    assert (out / "tokenizer.json").is_file()
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))


def test_dense_export_loads_in_plain_transformers(saved_sparse, tmp_path):
    folder = saved_sparse("gpt2")  # Conv1D layers go back to their (in, out) layout
    out = export(folder, tmp_path / "dense", "dense")
    plain = AutoModelForCausalLM.from_pretrained(out)
    sparse = load_sparse(folder)
    w = plain.transformer.h[0].mlp.c_fc.weight
    assert w.shape == (64, 256) and torch.equal(
        w.t(), sparse_layers(sparse)["transformer.h.0.mlp.c_fc"].dense_weight()
    )
    torch.testing.assert_close(logits(plain, token_ids()), logits(sparse, token_ids()), atol=2e-3, rtol=2e-3)


def test_compressed_tensors_layout(saved_sparse, tmp_path):
    out = export(saved_sparse("qwen2"), tmp_path / "ct", "compressed-tensors")
    config = json.loads((out / "config.json").read_text())
    sparsity = config["quantization_config"]["sparsity_config"]
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert sparsity["format"] == "sparse-24-bitmask" and sparsity["sparsity_structure"] == "2:4"
    assert "model.layers.0.self_attn.q_proj" in sparsity["targets"] and len(sparsity["targets"]) == 21
    tensors = load_file(out / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj"
    assert tensors[f"{name}.shape"].tolist() == [[64], [64]]
    assert tensors[f"{name}.compressed"].shape == (64, 32)
    assert tensors[f"{name}.bitmask"].dtype == torch.uint8 and tensors[f"{name}.bitmask"].shape == (64, 8)
    bits = (tensors[f"{name}.bitmask"].int().unsqueeze(-1) >> torch.arange(8)) & 1
    assert (bits.reshape(64, 16, 4).sum(-1) == 2).all()
    assert f"{name}.bias" in tensors and f"{name}.weight" not in tensors  # qwen2: q/k/v have biases


def test_compressed_tensors_refuses_conv1d(saved_sparse, tmp_path):
    with pytest.raises(CheckpointError, match="Conv1D"):
        export(saved_sparse("gpt2"), tmp_path / "ct", "compressed-tensors")
    assert not (tmp_path / "ct").exists()
