"""load_sparse: older format versions, no dense weights on load, and bad checkpoints caught before use."""

import json

import pytest
import torch
from safetensors.torch import load_file
from torch.utils._python_dispatch import TorchDispatchMode

from helpers.checkpoint_files import WEIGHTS, copy_folder, logits, rewrite, same_sparse_layers
from helpers.sparse_models import sparse_tiny_model, token_ids
from polysparse.kernels import sparse24 as s24
from polysparse.runtime import checkpoint as ckpt
from polysparse.runtime.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    NotSparse24Error,
    export,
    load_sparse,
    save_sparse,
)
from polysparse.runtime.checkpoint import load as checkpoint_load
from polysparse.runtime.swap import sparse_layers, sparsify_model


def _as_version_1(folder):
    """Rewrite a version-2 folder the way version 1 stored it: unpadded metadata, format_version 1."""

    def unpad(tensors):
        for key in [k for k in tensors if k.endswith(".meta")]:
            in_features = tensors[key.removesuffix(".meta") + ".values"].shape[1] * 2
            tensors[key] = tensors[key][:, : in_features // 16].contiguous()

    rewrite(folder, WEIGHTS, unpad)
    config = json.loads((folder / "config.json").read_text())
    config["sparsity_config"]["format_version"] = 1
    (folder / "config.json").write_text(json.dumps(config))


def test_version_1_checkpoints_still_load(saved_sparse, tmp_path):
    original = saved_sparse("llama")
    folder = copy_folder(original, tmp_path)
    _as_version_1(folder)
    assert load_file(folder / WEIGHTS)["model.layers.0.mlp.down_proj.meta"].shape[1] == 128 // 16
    old, new = load_sparse(folder), load_sparse(original)
    same_sparse_layers(old, new)
    assert all(s24.is_aligned_meta(layer.meta) for layer in sparse_layers(old).values())  # padded on load
    assert torch.equal(logits(old, token_ids()), logits(new, token_ids()))
    # Saving it again writes version 2.
    save_sparse(old, tmp_path / "again")
    assert ckpt.read_sparsity_config(tmp_path / "again")["format_version"] == 2


def test_version_1_metadata_shape_is_checked(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["sparsity_config"]["format_version"] = 1  # but the tensors are padded (version 2)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError, match=r"\.meta' has shape"):
        load_sparse(folder)


def test_unknown_format_version(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["sparsity_config"]["format_version"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="format version 3; this polysparse reads 1, 2"):
        load_sparse(folder)


def test_nonzero_metadata_padding_is_corrupt(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    name = "model.layers.0.self_attn.o_proj.meta"

    def dirty(tensors):
        tensors[name][0, -1] = 0x4  # a nibble past the row's last word

    rewrite(folder, WEIGHTS, dirty)
    with pytest.raises(NotSparse24Error, match="o_proj.*padding past a row's last word is not zero"):
        load_sparse(folder)


class ShapeRecorder(TorchDispatchMode):
    """Shapes of every real (non-meta) tensor an operation produces."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self.shapes.append(tuple(t.shape))
        return out


def test_loading_never_creates_a_dense_weight_of_a_sparse_layer(tmp_path):
    # MLP width 192: no values/meta shape of one layer equals the dense shape of another.
    model = sparse_tiny_model("llama", dtype=torch.float16, intermediate_size=192)
    sparsify_model(model)
    folder = save_sparse(model, tmp_path / "ckpt")
    block = json.loads((folder / "config.json").read_text())["sparsity_config"]
    dense_shapes = {(e["out_features"], e["in_features"]) for e in block["layers"].values()}
    with ShapeRecorder() as recorder:
        model = load_sparse(folder)
    assert {(64, 32), (192, 32), (64, 96)} <= set(recorder.shapes)  # it sees the values being loaded ...
    assert not dense_shapes & set(recorder.shapes)  # ... and no (out, in) tensor
    assert len(sparse_layers(model)) == 21
    # the control: loading the dense export (whose file holds the dense weights) is seen creating them
    dense = export(folder, tmp_path / "dense", "dense")
    with ShapeRecorder() as recorder:
        load_sparse(dense)
    assert dense_shapes <= set(recorder.shapes)


def test_truncated_file(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    path = folder / WEIGHTS
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptCheckpointError, match="truncated"):
        load_sparse(folder)


def test_tampered_tensor_data_fails_the_hash(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[-10] ^= 0xFF
    (folder / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="sha256"):
        load_sparse(folder)


def test_meta_of_the_wrong_shape_is_caught_before_any_data_is_read(saved_sparse, tmp_path, monkeypatch):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    name = "model.layers.1.mlp.gate_proj.meta"
    rewrite(folder, WEIGHTS, lambda t: t.__setitem__(name, t[name][:, :2].contiguous()))

    def no_reading(*args, **kwargs):
        raise AssertionError("tensor data was read before the metadata was validated")

    monkeypatch.setattr(checkpoint_load, "read_tensors", no_reading)
    with pytest.raises(CheckpointMismatchError, match=name.replace(".", r"\.")):
        load_sparse(folder)


def test_sparsity_config_that_does_not_match_the_model(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    config = json.loads((folder / "config.json").read_text())
    entry = config["sparsity_config"]["layers"]["model.layers.0.mlp.up_proj"]
    entry["in_features"] = 128
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError):
        load_sparse(folder)
    entry["in_features"] = 64
    config["sparsity_config"]["layers"]["model.layers.0.mlp.act_fn"] = entry
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError, match="act_fn"):
        load_sparse(folder)


def test_missing_dense_tensor(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    rewrite(folder, WEIGHTS, lambda t: t.pop("model.norm.weight"))
    with pytest.raises(CheckpointMismatchError, match=r"missing \['model\.norm\.weight'\]"):
        load_sparse(folder)


def test_corrupt_positions_in_native_metadata(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    name = "model.layers.0.self_attn.o_proj.meta"

    def corrupt(tensors):
        tensors[name][3, 1] = 0x5  # nibble 0b0101: positions (1, 1)

    rewrite(folder, WEIGHTS, corrupt)
    with pytest.raises(NotSparse24Error, match="o_proj.*corrupt 2:4 metadata"):
        load_sparse(folder)


def test_bitmask_with_three_bits_in_a_group(saved_sparse, tmp_path):
    out = export(saved_sparse("llama"), tmp_path / "ct", "compressed-tensors")
    name = "model.layers.2.mlp.down_proj.bitmask"

    def corrupt(tensors):
        tensors[name][0, 0] = 0b0111

    rewrite(out, "model.safetensors", corrupt)
    with pytest.raises(NotSparse24Error, match="down_proj.*3 bits set"):
        load_sparse(out)


def test_dense_tensor_declared_24_that_is_not(saved_sparse, tmp_path):
    out = export(saved_sparse("llama"), tmp_path / "dense", "dense")
    name = "model.layers.1.self_attn.q_proj.weight"

    def corrupt(tensors):
        tensors[name][2, 4:8] = 1.0

    rewrite(out, "model.safetensors", corrupt)
    with pytest.raises(NotSparse24Error, match="q_proj.*row 2, columns 4..7"):
        load_sparse(out)


def test_plain_folder_is_not_a_sparse_checkpoint(tmp_path):
    model = sparse_tiny_model("llama")
    model.save_pretrained(tmp_path / "plain")
    with pytest.raises(CheckpointError, match="not a polysparse sparse checkpoint"):
        load_sparse(tmp_path / "plain")
