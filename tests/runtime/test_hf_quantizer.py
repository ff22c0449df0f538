"""A compressed folder through transformers' own from_pretrained / pipeline / save_pretrained (issue 25).

polysparse is imported in this process (the test session imports it), so its quantizer is registered; the
refusal without ``import polysparse`` runs in a fresh interpreter.
"""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
from transformers.quantizers.auto import AUTO_QUANTIZATION_CONFIG_MAPPING, AUTO_QUANTIZER_MAPPING

from helpers.sparse_models import token_ids
from polysparse.runtime.checkpoint import (
    CheckpointError,
    CorruptCheckpointError,
    NotSparse24Error,
    export,
    file_digest,
    load_sparse,
)
from polysparse.runtime.hf_quantizer import (
    PLAIN_LOAD_REFUSAL,
    QUANT_METHOD,
    PolysparseConfig,
    PolysparseHfQuantizer,
)
from polysparse.runtime.linear import Sparse24Linear
from polysparse.runtime.swap import sparse_layers


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def same_model(a, b):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key, tensor in state_a.items():
        assert tensor.dtype == state_b[key].dtype and torch.equal(tensor, state_b[key]), key


def copy_folder(src, tmp_path, name="copy"):
    return shutil.copytree(src, tmp_path / name)


def test_the_method_is_registered_with_transformers_registries():
    assert AUTO_QUANTIZATION_CONFIG_MAPPING[QUANT_METHOD] is PolysparseConfig
    assert AUTO_QUANTIZER_MAPPING[QUANT_METHOD] is PolysparseHfQuantizer


def test_the_folder_declares_the_method_and_names_no_loadable_weights(saved_sparse):
    config = json.loads((saved_sparse("llama") / "config.json").read_text())
    assert config["quantization_config"] == {"quant_method": "polysparse", "format": "polysparse-sparse24"}
    assert config["transformers_weights"] == PLAIN_LOAD_REFUSAL
    assert not PLAIN_LOAD_REFUSAL.endswith(".safetensors")
    assert not (saved_sparse("llama") / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("arch", "dtype"),
    [("llama", torch.float16), ("gemma3", torch.bfloat16), ("gpt2", torch.float32)],
)
def test_from_pretrained_gives_the_sparse_model_load_sparse_gives(saved_sparse, arch, dtype):
    folder = saved_sparse(arch, dtype)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    reference = load_sparse(folder)
    assert len(sparse_layers(model)) == len(sparse_layers(reference)) > 0
    same_model(model, reference)
    assert torch.equal(logits(model, token_ids()), logits(reference, token_ids()))
    assert model.config.quantization_config.quant_method == QUANT_METHOD
    if model.config.tie_word_embeddings:
        assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    for layer in sparse_layers(model).values():
        assert "weight" not in vars(layer)  # the loading stand-in is gone
        assert layer.meta.shape == (layer.out_features, layer.in_features // 16)


def test_no_dense_weight_is_built_for_a_sparse_layer(saved_sparse, monkeypatch):
    built = []
    original = Sparse24Linear.dense_weight
    monkeypatch.setattr(Sparse24Linear, "dense_weight", lambda self: built.append(self) or original(self))
    model = AutoModelForCausalLM.from_pretrained(saved_sparse("llama"), dtype=torch.float16)
    assert not built
    assert all(layer._dense is None for layer in sparse_layers(model).values())


def test_dtype_and_device_map(saved_sparse):
    folder = saved_sparse("llama", torch.float16)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, device_map="cpu")
    layer = next(iter(sparse_layers(model).values()))
    assert layer.values.dtype == torch.float32 and layer.meta.dtype == torch.int16
    assert layer.values.device.type == "cpu"
    reference = load_sparse(folder, dtype=torch.float32)
    assert torch.equal(logits(model, token_ids()), logits(reference, token_ids()))


def test_disk_offload_is_refused(saved_sparse, tmp_path):
    with pytest.raises(ValueError, match="offloaded to disk"):
        AutoModelForCausalLM.from_pretrained(
            saved_sparse("llama"), device_map={"": "disk"}, offload_folder=str(tmp_path)
        )


def test_pipeline_generates_what_the_model_generates(saved_sparse):
    folder = saved_sparse("llama", torch.float32)
    generator = pipeline("text-generation", model=str(folder), dtype=torch.float32)
    assert sparse_layers(generator.model)
    answer = generator("Der Hund", max_new_tokens=6, do_sample=False, return_full_text=False)
    text = answer[0]["generated_text"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("Der Hund", return_tensors="pt")
    model = load_sparse(folder)
    out = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert text == tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_save_pretrained_round_trip_keeps_the_compressed_layout(saved_sparse, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(saved_sparse("gemma3", torch.bfloat16))
    out = tmp_path / "saved"
    out.mkdir()
    (out / "tokenizer_config.json").write_text("{}")  # saved there before: kept
    save_file({"x": torch.zeros(1)}, str(out / "model.safetensors"))  # a stale dense file: removed
    model.save_pretrained(out)
    assert (out / "tokenizer_config.json").is_file() and not (out / "model.safetensors").exists()
    assert (out / "model.sparse24.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["transformers_weights"] == PLAIN_LOAD_REFUSAL
    again = AutoModelForCausalLM.from_pretrained(out)
    same_model(model, again)
    same_model(load_sparse(out), load_sparse(saved_sparse("gemma3", torch.bfloat16)))
    with pytest.raises(CheckpointError, match="push_to_hub"):
        model.save_pretrained(tmp_path / "hub", push_to_hub=True)
    with pytest.raises(TypeError, match="variant"):
        model.save_pretrained(tmp_path / "variant", variant="fp16")


def test_without_import_polysparse_a_plain_load_refuses_and_says_what_to_import(saved_sparse):
    script = (
        "import sys, transformers\n"
        "try:\n"
        f"    transformers.AutoModelForCausalLM.from_pretrained({str(saved_sparse('llama'))!r})\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
        "    sys.exit(3)\n"
        "print('polysparse' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr[-2000:]
    assert "`import polysparse`" in proc.stdout and "ValueError" in proc.stdout


def test_a_folder_written_before_quantization_config_loads_with_an_explicit_one(saved_sparse, tmp_path):
    old = copy_folder(saved_sparse("llama"), tmp_path, "old")
    config = json.loads((old / "config.json").read_text())
    del config["quantization_config"], config["transformers_weights"]
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(OSError, match="model.safetensors"):
        AutoModelForCausalLM.from_pretrained(old)
    model = AutoModelForCausalLM.from_pretrained(old, quantization_config=PolysparseConfig())
    same_model(model, load_sparse(saved_sparse("llama")))
    converted = export(old, tmp_path / "converted", "compressed")  # or converted once: polysparse export
    same_model(AutoModelForCausalLM.from_pretrained(converted), model)


def test_an_explicit_config_on_a_dense_export_is_refused(saved_sparse, tmp_path):
    dense = export(saved_sparse("llama"), tmp_path / "dense", "dense")
    with pytest.raises(CheckpointError, match="dense export"):
        AutoModelForCausalLM.from_pretrained(dense, quantization_config=PolysparseConfig())


def test_a_tampered_file_is_refused_before_loading(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    with (folder / "model.sparse24.safetensors").open("r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(CorruptCheckpointError, match="sha256"):
        AutoModelForCausalLM.from_pretrained(folder)


def test_corrupt_metadata_is_refused(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    path = folder / "model.sparse24.safetensors"
    tensors = load_file(path)
    tensors["model.layers.0.mlp.up_proj.meta"][0, 0] = 0  # positions (0, 0): not two distinct ones
    save_file(tensors, str(path), metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["sparsity_config"]["files"][path.name] = file_digest(path)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(NotSparse24Error, match="up_proj"):
        AutoModelForCausalLM.from_pretrained(folder)
