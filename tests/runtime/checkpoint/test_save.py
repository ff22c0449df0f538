"""save_sparse: the layout of a saved folder, its size, exact round trips, what it refuses."""

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers.checkpoint_files import WEIGHTS, logits, same_sparse_layers
from helpers.sparse_models import sparse_tiny_model, token_ids
from polysparse.kernels import sparse24 as s24
from polysparse.runtime.checkpoint import (
    CheckpointError,
    CheckpointExistsError,
    export,
    load_sparse,
    read_header,
    save_sparse,
)
from polysparse.runtime.swap import sparse_layers, sparsify_model


def test_layout_of_a_saved_checkpoint(saved_sparse):
    folder = saved_sparse("llama")
    files = sorted(p.name for p in folder.iterdir())
    assert files == [
        "config.json",
        "generation_config.json",
        "model.sparse24.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    block = json.loads((folder / "config.json").read_text())["sparsity_config"]
    assert (
        block["format"] == "polysparse-sparse24"
        and block["format_version"] == 2
        and block["pattern"] == "2:4"
    )
    assert len(block["layers"]) == 21
    assert block["layers"]["model.layers.0.self_attn.q_proj"] == {
        "in_features": 64,
        "out_features": 64,
        "layout": "linear",
        "bias": False,
    }
    assert (
        block["files"]["model.sparse24.safetensors"]["bytes"]
        == (folder / "model.sparse24.safetensors").stat().st_size
    )
    header = read_header(folder / "model.sparse24.safetensors")
    assert header["model.layers.0.mlp.down_proj.values"].shape == (64, 64)
    assert header["model.layers.0.mlp.down_proj.meta"].dtype == torch.int16
    assert "model.layers.0.mlp.down_proj.weight" not in header


def test_sparse_layers_take_nine_sixteenths_of_the_dense_bytes(saved_sparse, tmp_path):
    folder = saved_sparse("llama")  # float16, no biases in the blocks
    dense = export(folder, tmp_path / "dense", "dense")
    sparse_h, dense_h = (
        read_header(folder / "model.sparse24.safetensors"),
        read_header(dense / "model.safetensors"),
    )

    def nbytes(header, suffixes):
        return sum(
            torch.Size(i.shape).numel() * torch.empty(0, dtype=i.dtype).element_size()
            for k, i in header.items()
            if k.startswith("model.layers.") and k.endswith(suffixes)
        )

    ratio = nbytes(sparse_h, (".values", ".meta")) / nbytes(dense_h, ("proj.weight",))
    # 9/16 (1 + 1/8 bytes against 2) when in_features is a multiple of 128; format version 2 pads each
    # metadata row to 16 bytes, so these tiny 64-column layers pay 1/8 byte more per weight.
    padded = sum(
        i.shape[0] * (i.shape[1] // 2 + -(-i.shape[1] // 128) * 8) * 2
        for k, i in dense_h.items()
        if k.startswith("model.layers.") and k.endswith("proj.weight")
    )
    assert ratio == pytest.approx(padded / nbytes(dense_h, ("proj.weight",)))
    assert 9 / 16 <= ratio <= 10 / 16


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3", "gpt2"])
def test_save_load_round_trip_is_exact(arch, tmp_path):
    model = sparse_tiny_model(arch, dtype=torch.float16)
    sparsify_model(model)
    save_sparse(model, tmp_path / "ckpt")
    loaded = load_sparse(tmp_path / "ckpt")
    same_sparse_layers(model, loaded)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(logits(loaded, token_ids()), logits(model, token_ids()))
    if model.config.tie_word_embeddings:
        assert loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight


def test_metadata_rows_are_stored_padded_to_16_bytes(saved_sparse):
    """Format version 2: ``out x ceil(in/128)*8`` int16 words, zero past each row's last word; loaded back
    as a view with 16-byte aligned rows over that storage (what the kernels load as whole vectors)."""
    folder = saved_sparse("llama")
    stored = load_file(folder / WEIGHTS)
    loaded = load_sparse(folder)
    for name, layer in sparse_layers(loaded).items():
        words = layer.in_features // 16
        meta = stored[f"{name}.meta"]
        assert meta.shape == (layer.out_features, -(-words // 8) * 8)
        assert not meta[:, words:].any()
        assert torch.equal(meta[:, :words], layer.meta)
        assert s24.is_aligned_meta(layer.meta)


def test_save_refuses_a_model_without_sparse_layers_and_an_existing_folder(saved_sparse, tmp_path):
    with pytest.raises(CheckpointError, match="sparsify_model"):
        save_sparse(sparse_tiny_model("llama"), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    model = load_sparse(saved_sparse("llama"))
    (tmp_path / "taken").mkdir()
    with pytest.raises(CheckpointExistsError):
        save_sparse(model, tmp_path / "taken")
    save_sparse(model, tmp_path / "taken", overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
