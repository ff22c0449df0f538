"""save_sparse / load_sparse / export: layout, exact round trips, no dense weights on load, bad files."""

import json
import shutil
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoModelForCausalLM

from helpers.sparse_models import sparse_tiny_model, token_ids
from polysparse.kernels import sparse24 as s24
from polysparse.runtime import checkpoint as ckpt
from polysparse.runtime.checkpoint import (
    CheckpointError,
    CheckpointExistsError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    NotSparse24Error,
    SparsityMetadata,
    describe_calibration,
    export,
    load_sparse,
    read_header,
    save_sparse,
)
from polysparse.runtime.checkpoint import load as checkpoint_load
from polysparse.runtime.swap import sparse_layers, sparsify_model


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def same_sparse_layers(a, b):
    la, lb = sparse_layers(a), sparse_layers(b)
    assert la.keys() == lb.keys() and la
    for name in la:
        assert torch.equal(la[name].values, lb[name].values), name
        assert torch.equal(la[name].meta, lb[name].meta), name
        assert la[name].layout == lb[name].layout


def copy_folder(src, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(src, target)
    return target


def rewrite(folder, weights, mutate):
    """Change the tensors of a weight file and update the manifest, as a consistent but wrong file."""
    path = folder / weights
    tensors = load_file(path)
    mutate(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["sparsity_config"]["files"][weights] = ckpt.file_digest(path)
    (folder / "config.json").write_text(json.dumps(config))


# ----------------------------------------------------------------------------------------------------------
# Layout and round trips
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------------------------


def test_provenance_from_the_pruning_report(tmp_path):
    source = tmp_path / "pruned"
    source.mkdir()
    report = {
        "polysparse_version": "0.1.0",
        "config": {"method": "wanda", "pattern": "2:4"},
        "calibration": {"spec": "handbook:de", "windows": 32},
        "summary": {"sparsity_of_pruned_layers": 0.5},
    }
    (source / "polysparse.json").write_text(json.dumps(report))
    model = sparse_tiny_model("llama", dtype=torch.float16)
    sparsify_model(model)
    save_sparse(model, tmp_path / "ckpt", source=source)
    block = json.loads((tmp_path / "ckpt" / "config.json").read_text())["sparsity_config"]
    assert block["method"] == "wanda" and block["sparsity"] == 0.5 and block["polysparse_version"] == "0.1.0"
    assert block["calibration"] == {"spec": "handbook:de", "language": "de", "source": "handbook"}
    assert (tmp_path / "ckpt" / "polysparse.json").is_file()
    # exports keep it
    out = export(tmp_path / "ckpt", tmp_path / "dense", "dense")
    assert json.loads((out / "config.json").read_text())["sparsity_config"]["method"] == "wanda"


@pytest.mark.parametrize(
    "spec, language, source",
    [
        ("handbook:de", "de", "handbook"),
        ("text:notes/*.txt:fr", "fr", "text"),
        ("text:notes.txt", None, "text"),
        ("handbook:de=0.5,handbook:en=0.5", "de+en", "handbook"),
        ("translate:de->en:gettext,shots=4", "de->en", "gettext (translation prompts)"),
        (None, None, None),
    ],
)
def test_describe_calibration(spec, language, source):
    assert describe_calibration(spec) == {"spec": spec, "language": language, "source": source}


def test_provenance_reads_the_structured_calibration_record_and_old_spec_strings():
    structured = {
        "spec": "handbook:de=0.5,manpages:fr=0.5",
        "language": "de+fr",
        "source": "handbook+manpages",
    }
    parts = [{"kind": "source", "spec": "handbook:de", "weight": 0.5}]
    recorded = SparsityMetadata.from_report({"calibration": {**structured, "parts": parts}})
    assert (recorded.calibration_language, recorded.calibration_source) == ("de+fr", "handbook+manpages")
    old = SparsityMetadata.from_report({"calibration": {"spec": "translate:de->en:gettext,shots=4"}})
    assert (old.calibration_language, old.calibration_source) == ("de->en", "gettext (translation prompts)")


# ----------------------------------------------------------------------------------------------------------
# Loading without dense weights
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# Bad checkpoints
# ----------------------------------------------------------------------------------------------------------

WEIGHTS = "model.sparse24.safetensors"


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


def test_flipped_bytes_in_the_header(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    data = bytearray((folder / WEIGHTS).read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + length]
    header[header.index(b"{") + 1 : header.index(b"{") + 4] = b"\xff\xfe\x00"
    data[8 : 8 + length] = header
    (folder / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="sha256"):
        load_sparse(folder)
    with pytest.raises(CorruptCheckpointError, match="unreadable safetensors header"):
        load_sparse(folder, verify=False)  # the header is checked even without hashing


def test_header_shape_that_does_not_fit_the_data(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    data = bytearray((folder / WEIGHTS).read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header["model.layers.0.mlp.up_proj.values"]["shape"] = [128, 16]
    raw = json.dumps(header, separators=(",", ":")).encode().ljust(length)
    data[8 : 8 + length] = raw
    (folder / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="spans"):
        load_sparse(folder, verify=False)


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
