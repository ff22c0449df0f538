"""``polysparse.prune`` and ``polysparse.evaluate`` (polysparse/api.py): a folder goes through the jobs of
``polysparse prune`` / ``eval`` and gives the same result; a loaded model is pruned and scored in place."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import polysparse
from helpers.tiny_models import tiny_model, tiny_tokenizer
from polysparse.bench.cli import main
from polysparse.sparsify.config import PruneConfig

TEXT = "Der kleine Hund läuft jeden Morgen über die Wiese hinter dem Haus, und die Katze schläft.\n\n" * 60


@pytest.fixture(autouse=True)
def reference_kernels(monkeypatch):
    monkeypatch.setenv("POLYSPARSE_KERNELS", "reference")


@pytest.fixture(scope="module")
def folder_and_text(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    tiny_model("llama").save_pretrained(root / "tiny", safe_serialization=True)
    tiny_tokenizer().save_pretrained(root / "tiny")
    (root / "de.txt").write_text(TEXT, encoding="utf-8")
    return root / "tiny", root / "de.txt"


def test_prune_of_a_folder_is_the_prune_command(folder_and_text, tmp_path):
    model, text = folder_and_text
    calib = f"text:{text}:de"
    settings = dict(method="wanda", pattern="2:4", nsamples=2, seqlen=32)
    report = polysparse.prune(model, out=tmp_path / "api", calib=calib, quiet=True, **settings)
    argv = ["prune", "--model", model, "--out", tmp_path / "cli", "--calib", calib, "--quiet"]
    argv += ["--method", "wanda", "--pattern", "2:4", "--nsamples", 2, "--seqlen", 32]
    assert main([str(a) for a in argv]) == 0
    assert report == json.loads((tmp_path / "api" / "polysparse.json").read_text())
    assert report["config"] == json.loads((tmp_path / "cli" / "polysparse.json").read_text())["config"]
    api = AutoModelForCausalLM.from_pretrained(tmp_path / "api").state_dict()
    cli = AutoModelForCausalLM.from_pretrained(tmp_path / "cli").state_dict()
    assert all(torch.equal(api[name], cli[name]) for name in api)


def test_prune_of_a_loaded_model_works_in_place(folder_and_text):
    _, text = folder_and_text
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    config = PruneConfig(method="wanda", sparsity=0.5, nsamples=2, seqlen=32)
    report = polysparse.prune(model, tokenizer=tokenizer, calib=f"text:{text}:de", config=config, seed=1)
    assert report["config"]["seed"] == 1 and report["calibration"]["windows"] == 2
    assert report["summary"]["sparsity_of_pruned_layers"] == pytest.approx(0.5)
    q = model.model.layers[0].self_attn.q_proj.weight
    assert (q == 0).sum().item() == q.numel() // 2


@pytest.mark.parametrize(
    "model, settings, message",
    [
        ("folder", {"pattern": "2:4", "colour": "red"}, "unknown settings: colour"),
        ("folder", {"pattern": "2:4"}, "give out="),
        ("loaded", {"pattern": "2:4", "out": "x"}, "writes nothing"),
        ("loaded", {"pattern": "2:4", "overwrite": True}, "overwrite apply to a folder"),
    ],
)
def test_prune_refuses_settings_it_cannot_use(folder_and_text, model, settings, message):
    target = folder_and_text[0] if model == "folder" else tiny_model("llama")
    with pytest.raises(TypeError, match=message):
        polysparse.prune(target, **settings)


def test_evaluate_a_folder_and_a_loaded_model_alike(folder_and_text, tmp_path):
    model, text = folder_and_text
    settings = dict(data=f"text:{text}:de", windows=2, seqlen=32, quiet=True)
    from_folder = polysparse.evaluate(model, out=str(tmp_path / "eval.json"), **settings)
    loaded = AutoModelForCausalLM.from_pretrained(model)
    in_memory = polysparse.evaluate(loaded, tokenizer=tiny_tokenizer(), **settings)
    assert from_folder["results"][0]["perplexity"] == pytest.approx(in_memory["results"][0]["perplexity"])
    assert json.loads((tmp_path / "eval.json").read_text())["results"] == from_folder["results"]
    with pytest.raises(TypeError, match="unknown settings: method"):
        polysparse.evaluate(model, method="wanda")
