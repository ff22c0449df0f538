"""`polysparse prune` end to end on a tiny model, and every bad input the issue lists."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from polysparse.bench.cli import main

MAGNITUDE_HALF = ["--method", "magnitude", "--sparsity", 0.5, "--quiet"]


def half_on(text):
    """50% on two 32-token windows of ``text``."""
    return ["--sparsity", 0.5, "--calib", f"text:{text}", "--nsamples", 2, "--seqlen", 32, "--quiet"]


def run(*args):
    return main([str(a) for a in args])


def test_prune_writes_a_loadable_folder_and_report(tiny_model_dir, german_text, tmp_path, capsys):
    out = tmp_path / "pruned"
    args = [
        "--model",
        tiny_model_dir,
        "--method",
        "wanda",
        "--pattern",
        "2:4",
        "--calib",
        f"text:{german_text}:de",
    ]
    code = run("prune", *args, "--nsamples", 4, "--seqlen", 32, "--out", out, "--quiet")
    assert code == 0
    model = AutoModelForCausalLM.from_pretrained(out)
    q = model.model.layers[0].self_attn.q_proj.weight
    assert ((q.reshape(q.shape[0], -1, 4) == 0).sum(-1) >= 2).all()
    report = json.loads((out / "polysparse.json").read_text())
    assert report["config"]["method"] == "wanda" and report["config"]["pattern"] == "2:4"
    assert report["calibration"]["spec"] == f"text:{german_text}:de"
    assert report["calibration"]["windows"] == 4 and len(report["calibration"]["sha256"]) == 64
    assert report["summary"]["sparsity_of_pruned_layers"] == pytest.approx(0.5)
    assert all(layer["sparsity"] == pytest.approx(0.5) for layer in report["layers"])
    assert all("seconds" in block for block in report["blocks"])
    assert report["environment"]["versions"]["torch"] == torch.__version__
    assert list(out.glob("*.safetensors")) and not list(out.glob("*.bin"))
    assert not list(tmp_path.glob(".pruned.*"))


def test_prune_can_offload_activations_to_disk(tiny_model_dir, german_text, tmp_path):
    out, acts = tmp_path / "offloaded", tmp_path / "acts"
    common = [
        "--model",
        tiny_model_dir,
        "--method",
        "wanda",
        "--sparsity",
        0.5,
        "--calib",
        f"text:{german_text}",
    ]
    common += ["--nsamples", 3, "--seqlen", 32, "--quiet"]
    assert run("prune", *common, "--out", tmp_path / "plain") == 0
    assert run("prune", *common, "--offload", "disk", "--offload-dir", acts, "--out", out) == 0
    config = json.loads((out / "polysparse.json").read_text())["config"]
    assert config["offload"] == "disk" and config["offload_dtype"] is None
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "plain").state_dict()
    offloaded = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert all(torch.equal(plain[name], offloaded[name]) for name in plain)
    assert acts.is_dir() and not list(acts.rglob("*.safetensors"))


def test_sparsegpt_report_has_errors_and_damping(tiny_model_dir, german_text, tmp_path):
    out = tmp_path / "sgpt"
    assert (
        run("prune", "--model", tiny_model_dir, "--method", "sparsegpt", *half_on(german_text), "--out", out)
        == 0
    )
    layers = json.loads((out / "polysparse.json").read_text())["layers"]
    assert all(layer["percdamp"] == 0.01 and layer["reconstruction_error"] >= 0 for layer in layers)


def test_magnitude_needs_no_calibration(tiny_model_dir, tmp_path):
    assert (
        run(
            "prune",
            "--model",
            tiny_model_dir,
            "--method",
            "magnitude",
            "--sparsity",
            0.3,
            "--out",
            tmp_path / "mag",
            "--quiet",
        )
        == 0
    )


def bad(capsys, *args):
    code = run(*args)
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def test_bad_inputs_give_clear_errors_and_write_nothing(tiny_model_dir, german_text, tmp_path, capsys):
    out = tmp_path / "never"
    # --seqlen within the tiny model's 256 positions: a longer one is refused before any text is read.
    common = ["--model", tiny_model_dir, "--out", out, "--quiet", "--seqlen", 32]
    calib = ["--calib", f"text:{german_text}:de", "--nsamples", 2, "--seqlen", 32]
    assert "strictly between 0 and 1" in bad(capsys, "prune", *common, *calib, "--sparsity", 1.5)
    assert "strictly between 0 and 1" in bad(capsys, "prune", *common, *calib, "--sparsity", 0)
    assert "malformed N:M" in bad(capsys, "prune", *common, *calib, "--pattern", "2-4")
    assert "0 < N < M" in bad(capsys, "prune", *common, *calib, "--pattern", "4:2")
    both = ["--sparsity", 0.5, "--pattern", "2:4"]
    assert "exactly one of sparsity" in bad(capsys, "prune", *common, *calib, *both)
    assert "exactly one of sparsity" in bad(capsys, "prune", *common, *calib)
    assert "does not exist" in bad(
        capsys, "prune", "--model", tmp_path / "nope", "--out", out, *calib, "--sparsity", 0.5
    )
    assert "needs calibration text" in bad(capsys, "prune", *common, "--sparsity", 0.5)
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n\n", encoding="utf-8")
    assert "no text" in bad(capsys, "prune", *common, "--sparsity", 0.5, "--calib", f"text:{empty}")
    short = tmp_path / "short.txt"
    short.write_text("Nur ein Satz.\n\nUnd noch einer.", encoding="utf-8")
    assert "fewer than one window" in bad(
        capsys, "prune", *common, "--sparsity", 0.5, "--calib", f"text:{short}", "--seqlen", 256
    )
    assert "no file matches" in bad(
        capsys, "prune", *common, "--sparsity", 0.5, "--calib", f"text:{tmp_path}/missing*.txt"
    )
    assert "unknown language" in bad(
        capsys, "prune", *common, "--sparsity", 0.5, "--calib", f"text:{german_text}:klingon"
    )
    assert not out.exists()


def test_not_a_causal_lm_is_refused(tmp_path, capsys):
    folder = tmp_path / "vision"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "vit", "architectures": ["ViTModel"]}))
    (folder / "model.safetensors").write_bytes(b"")
    err = bad(capsys, "prune", "--model", folder, *MAGNITUDE_HALF, "--out", tmp_path / "o")
    assert "not a causal language model" in err


def test_corrupt_weights_are_a_clear_error(tiny_model_dir, tmp_path, capsys):
    import shutil

    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    err = bad(capsys, "prune", "--model", folder, *MAGNITUDE_HALF, "--out", tmp_path / "o")
    assert "could not load the model" in err
    assert not (tmp_path / "o").exists()


def test_existing_output_is_refused_unless_overwrite(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["prune", "--model", tiny_model_dir, *MAGNITUDE_HALF, "--out", out]
    assert "--overwrite" in bad(capsys, *args)
    assert (out / "keep.txt").read_text() == "mine"
    assert run(*args, "--overwrite") == 0
    assert (out / "polysparse.json").exists() and not (out / "keep.txt").exists()


def test_indivisible_layers_stop_the_run_on_request(tmp_path, capsys):
    from helpers.tiny_models import tiny_model, tiny_tokenizer

    folder = tmp_path / "odd"
    tiny_model("llama", intermediate_size=90).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    args = ["prune", "--model", folder, "--method", "magnitude", "--pattern", "2:4", "--quiet"]
    err = bad(capsys, *args, "--on-indivisible", "error", "--out", tmp_path / "a")
    assert "down_proj" in err and "not a multiple of M=4" in err
    assert not (tmp_path / "a").exists()
    assert run(*args, "--out", tmp_path / "b") == 0
    skipped = json.loads((tmp_path / "b" / "polysparse.json").read_text())["skipped"]
    assert len(skipped) == 3 and all(s["name"].endswith("down_proj") for s in skipped)


def test_a_crash_while_saving_leaves_no_output(tiny_model_dir, tmp_path, monkeypatch):
    import transformers

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        run("prune", "--model", tiny_model_dir, *MAGNITUDE_HALF, "--out", tmp_path / "crash")
    assert not (tmp_path / "crash").exists()
    # Only the resumable state is left: no half-written output folder.
    assert [p.name for p in tmp_path.glob(".crash*")] == [".crash.work"]
    monkeypatch.undo()
    assert run("prune", "--model", tiny_model_dir, *MAGNITUDE_HALF, "--out", tmp_path / "crash") == 0
    assert (tmp_path / "crash" / "polysparse.json").exists()
    assert not list(tmp_path.glob(".crash*"))


def test_nan_weights_or_activations_stop_before_anything_is_written(tmp_path, german_text, capsys):
    from helpers.tiny_models import tiny_model, tiny_tokenizer

    for where in ("weight", "activation"):
        folder = tmp_path / f"nan-{where}"
        model = tiny_model("llama")
        with torch.no_grad():
            if where == "weight":
                model.model.layers[1].mlp.down_proj.weight[3, 5] = float("nan")
            else:
                model.model.embed_tokens.weight[:, 7] = float("inf")
        model.save_pretrained(folder)
        tiny_tokenizer().save_pretrained(folder)
        out = tmp_path / f"out-{where}"
        err = bad(
            capsys, "prune", "--model", folder, "--method", "wanda", *half_on(german_text), "--out", out
        )
        assert "NaN or Inf" in err
        assert ("model.layers.1.mlp.down_proj" in err) if where == "weight" else ("model.layers.0." in err)
        assert not out.exists()
