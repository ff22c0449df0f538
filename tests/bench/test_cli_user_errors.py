"""Issue 14, items 5-13: user mistakes get a clear message (exit status 2) before any work, finished work is
kept, and no command reports a wrong number with exit status 0. Each through the command line."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers.cli import bad, run
from helpers.tiny_models import tiny_model, tiny_tokenizer

HALF = ["--sparsity", 0.5]


def calib_args(text, nsamples=2, seqlen=32):
    return ["--calib", f"text:{text}:de", "--nsamples", nsamples, "--seqlen", seqlen]


def handbook_installed():
    from polysparse.sparsify.corpora import SourceSpec, load_documents

    try:
        return len(load_documents(SourceSpec.parse("handbook:en"))) > 2
    except Exception:
        return False


needs_handbook = pytest.mark.skipif(not handbook_installed(), reason="needs the debian-handbook package")


def model_folder(folder, arch="llama", edit=None, **overrides):
    model = tiny_model(arch, **overrides)
    if edit is not None:
        with torch.no_grad():
            edit(model)
    model.save_pretrained(folder, safe_serialization=True)
    tiny_tokenizer().save_pretrained(folder)
    return folder


# --- 5. eval and study check everything before the first forward pass; outputs are never clobbered ---------


def test_eval_checks_every_source_before_scoring_any(tiny_model_dir, german_text, tmp_path, capsys):
    out = tmp_path / "eval.json"
    data = ["--data", f"text:{german_text}:de", "--data", f"text:{tmp_path}/missing*.txt:de"]
    code = run("eval", "--model", tiny_model_dir, *data, "--windows", 2, "--seqlen", 32, "--out", out)
    captured = capsys.readouterr()
    assert code == 2 and "no file matches" in captured.err
    assert "perplexity" not in captured.out  # nothing was scored, then thrown away
    assert not out.exists()


def test_eval_refuses_to_overwrite_and_to_write_onto_a_folder(tiny_model_dir, german_text, tmp_path, capsys):
    common = ["eval", "--model", tiny_model_dir, "--data", f"text:{german_text}:de", "--windows", 2]
    common += ["--seqlen", 32, "--quiet"]
    out = tmp_path / "eval.json"
    out.write_text("keep me")
    assert "exists; choose another --out or pass --overwrite" in bad(capsys, *common, "--out", out)
    assert out.read_text() == "keep me"
    assert run(*common, "--out", out, "--overwrite") == 0
    assert json.loads(out.read_text())["results"][0]["perplexity"] > 0

    folder = tmp_path / "keep"
    folder.mkdir()
    assert "is a folder" in bad(capsys, *common, "--out", folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json", "eval.md", "keep"]


@needs_handbook
def test_study_checks_every_language_before_the_first_cell(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "study"
    common = ["study", "--model", tiny_model_dir, "--nsamples", 2, "--seqlen", 32, "--eval-windows", 2]
    common += ["--eval-seqlen", 32, "--no-plot", "--quiet", "--translate-source", "none", "--no-mix"]
    err = bad(capsys, *common, "--langs", "en,fi", "--out", out)
    assert "handbook:fi" in err and "nothing was computed" in err
    assert not out.exists()
    both = ["--sparsity", 0.5, "--pattern", "2:4", "--langs", "en", "--out", out]
    assert "exactly one of sparsity" in bad(capsys, *common, *both)
    assert not out.exists()

    assert run(*common, "--langs", "en", "--out", out) == 0
    tables = (out / "study-wanda-2-4.md").read_text()
    err = bad(capsys, *[a if a != 2 else 3 for a in common[:5]], *common[5:], "--langs", "en", "--out", out)
    assert "other settings" in err and "nsamples=2 there, 3 here" in err
    assert (out / "study-wanda-2-4.md").read_text() == tables


# --- 6. non-finite logits stop the evaluation; float16 is named as the likely cause -----------------------


def overflow_in_float16(where):
    """A norm weight of 60000: finite in float16, but normalised activations times it overflow 65504."""

    def edit(model):
        norm = model.model.norm if where == "final" else model.model.layers[1].input_layernorm
        norm.weight.fill_(60000.0)

    return edit


def test_eval_in_float16_stops_on_overflow_instead_of_reporting_nan(tmp_path, german_text, capsys):
    folder = model_folder(tmp_path / "model", edit=overflow_in_float16("final"))
    out = tmp_path / "eval.json"
    common = ["eval", "--model", folder, "--data", f"text:{german_text}:de", "--windows", 2]
    err = bad(capsys, *common, "--seqlen", 32, "--dtype", "float16", "--out", out, "--quiet")
    assert "NaN or Inf" in err and "bfloat16" in err
    assert not out.exists()


def test_eval_refuses_a_perplexity_that_overflows_a_float(tmp_path, german_text, capsys):
    folder = model_folder(tmp_path / "model", edit=overflow_in_float16("final"))  # float32 logits ~1e5
    out = tmp_path / "eval.json"
    common = ["eval", "--model", folder, "--data", f"text:{german_text}:de", "--windows", 2, "--seqlen", 32]
    err = bad(capsys, *common, "--out", out, "--quiet")
    assert "perplexity overflows a float" in err
    assert not out.exists()


def test_prune_in_float16_suggests_bfloat16(tmp_path, german_text, capsys):
    folder = model_folder(tmp_path / "model", edit=overflow_in_float16("block"))
    out = tmp_path / "pruned"
    args = ["prune", "--model", folder, "--sparsity", 0.5, *calib_args(german_text), "--dtype", "float16"]
    err = bad(capsys, *args, "--out", out, "--quiet")
    assert "NaN or Inf" in err and "use --dtype bfloat16" in err


# --- 7. windows longer than the model's positions ---------------------------------------------------------


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_seqlen_beyond_the_models_positions_is_refused(arch, german_text, tmp_path, capsys):
    folder = model_folder(tmp_path / arch, arch)  # 256 positions
    out = tmp_path / "pruned"
    for seqlen in (1000, 100000):
        err = bad(
            capsys, "prune", "--model", folder, *HALF, *calib_args(german_text, 2, seqlen), "--out", out
        )
        assert f"--seqlen {seqlen} is longer than the 256 positions" in err
    err = bad(capsys, "eval", "--model", folder, "--data", f"text:{german_text}:de", "--seqlen", 1000)
    assert "longer than the 256 positions" in err
    assert not out.exists()


@needs_handbook
def test_study_refuses_windows_beyond_the_models_positions(tiny_model_dir, tmp_path, capsys):
    args = [
        "study",
        "--model",
        tiny_model_dir,
        "--langs",
        "en",
        "--seqlen",
        32,
        "--eval-seqlen",
        1000,
        "--out",
        tmp_path / "s",
    ]
    assert "--eval-seqlen 1000 is longer than the 256 positions" in bad(capsys, *args)


# --- 8. text files decode strictly and say where they do not ----------------------------------------------


def test_text_in_another_encoding_is_named_and_can_be_read_with_encoding(
    tiny_model_dir, german_text, tmp_path, capsys
):
    latin = tmp_path / "latin.txt"
    latin.write_bytes(german_text.read_text(encoding="utf-8").encode("latin-1"))
    common = [
        "prune",
        "--model",
        tiny_model_dir,
        "--sparsity",
        0.5,
        "--nsamples",
        2,
        "--seqlen",
        32,
        "--quiet",
    ]
    err = bad(capsys, *common, "--calib", f"text:{latin}:de", "--out", tmp_path / "a")
    assert f"{latin}:1:" in err and "byte 0xe4" in err and "--encoding" in err
    assert run(*common, "--calib", f"text:{latin}:de", "--encoding", "latin-1", "--out", tmp_path / "b") == 0
    assert run(*common, "--calib", f"text:{german_text}:de", "--out", tmp_path / "c") == 0
    # The same text, decoded right, calibrates to the same weights as the UTF-8 file.
    assert all(
        a.equal(b)
        for a, b in zip(
            load_file(str(tmp_path / "b" / "model.safetensors")).values(),
            load_file(str(tmp_path / "c" / "model.safetensors")).values(),
        )
    )

    records = tmp_path / "records.jsonl"
    records.write_bytes(b'{"text": "gut"}\n{"text": "sch\xf6n"}\n')
    err = bad(capsys, *common, "--calib", f"text:{records}:de", "--out", tmp_path / "d")
    assert f"{records}:2:" in err and "byte 0xf6" in err
    assert "unknown text encoding" in bad(
        capsys, *common, "--calib", f"text:{latin}:de", "--encoding", "klingon-8", "--out", tmp_path / "e"
    )


# --- 9. the output location and the device are checked before any work ------------------------------------


def test_output_location_and_device_are_checked_first(tiny_model_dir, german_text, tmp_path, capsys):
    common = ["prune", "--model", tiny_model_dir, "--sparsity", 0.5, *calib_args(german_text)]
    assert "--out is empty" in bad(capsys, *common, "--out", "")
    assert "--out is empty" in bad(capsys, *common, "--out", "", "--overwrite")
    assert "names no new file or folder" in bad(capsys, *common, "--out", ".", "--overwrite")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for extra in ([], ["--no-checkpoint"]):
        err = bad(capsys, *common, "--out", blocker / "pruned", *extra)
        assert f"{blocker} is a file, not a folder" in err
    if not torch.cuda.is_available():
        err = bad(capsys, *common, "--device", "cuda", "--out", tmp_path / "p")
        assert "no CUDA device is available" in err and "--device cpu" in err
        assert "no CUDA device" in bad(
            capsys, "eval", "--model", tiny_model_dir, "--data", "x:y", "--device", "cuda"
        )
    assert "unknown device" in bad(capsys, *common, "--device", "gpu", "--out", tmp_path / "p")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # and nothing else was left behind


# --- 10. a non-finite weight is named where it is -----------------------------------------------------------


def test_an_inf_weight_is_named_not_the_activations_it_spoils(tmp_path, german_text, capsys):
    def edit(model):
        model.model.layers[2].self_attn.q_proj.weight[3, 5] = float("inf")

    folder = model_folder(tmp_path / "model", edit=edit)
    err = bad(capsys, "prune", "--model", folder, *HALF, *calib_args(german_text), "--out", tmp_path / "o")
    assert "model.layers.2.self_attn.q_proj: NaN or Inf in the weight" in err
    assert "o_proj" not in err


# --- 11. nothing to prune --------------------------------------------------------------------------------


def test_nothing_to_prune_is_said_and_refused_on_request(
    tiny_model_dir, german_text, tmp_path, capsys, caplog
):
    common = ["prune", "--model", tiny_model_dir, *calib_args(german_text), "--quiet"]
    assert run(*common, "--sparsity", 0.5, "--targets", "no_such_layer", "--out", tmp_path / "a") == 0
    assert "no linear layer in the decoder blocks matches targets=['no_such_layer']" in caplog.text
    err = bad(
        capsys,
        *common,
        "--sparsity",
        0.5,
        "--targets",
        "nope",
        "--on-indivisible",
        "error",
        "--out",
        tmp_path / "b",
    )
    assert "no linear layer" in err and not (tmp_path / "b").exists()

    assert (
        run(*common, "--pattern", "3:7", "--out", tmp_path / "c") == 0
    )  # 64 and 128 inputs: not multiples of 7
    assert "layers are left dense (in_features=64 is not a multiple of M=7)" in caplog.text
    assert "cannot take pattern 3:7" in bad(
        capsys, *common, "--pattern", "3:7", "--on-indivisible", "error", "--out", tmp_path / "d"
    )


# --- 12. export takes a folder written by `polysparse prune` ----------------------------------------------


def test_export_takes_a_pruned_folder(tiny_model_dir, german_text, tmp_path, capsys):
    from polysparse.runtime.checkpoint import load_sparse, read_sparsity_config
    from polysparse.runtime.swap import densify_model

    pruned = tmp_path / "pruned"
    common = ["prune", "--model", tiny_model_dir, *calib_args(german_text), "--quiet"]
    assert run(*common, "--pattern", "2:4", "--out", pruned) == 0
    reference = load_file(str(pruned / "model.safetensors"))
    for fmt in ("compressed", "dense", "compressed-tensors"):
        out = tmp_path / fmt
        assert run("export", pruned, "--format", fmt, "--out", out, "--quiet") == 0, capsys.readouterr().err
        assert read_sparsity_config(out)["method"] == "wanda"
        model = load_sparse(out)
        densify_model(model)
        state = model.state_dict()
        assert all(torch.equal(state[name], tensor) for name, tensor in reference.items()), fmt
    assert not list(tmp_path.glob(".*staging*"))

    unstructured = tmp_path / "unstructured"
    assert run(*common, "--sparsity", 0.5, "--out", unstructured) == 0
    assert "only 2:4" in bad(
        capsys, "export", unstructured, "--format", "compressed", "--out", tmp_path / "u"
    )

    edited = tmp_path / "edited"
    shutil.copytree(pruned, edited)
    weights = load_file(str(edited / "model.safetensors"))
    weights["model.layers.0.mlp.up_proj.weight"].fill_(1.0)
    save_file(weights, str(edited / "model.safetensors"), metadata={"format": "pt"})
    err = bad(capsys, "export", edited, "--format", "compressed", "--out", tmp_path / "x")
    assert "model.layers.0.mlp.up_proj" in err and "not 2:4" in err


# --- 13. an unknown language lists what is installed, not 180 codes -----------------------------------------


def test_unknown_language_message_is_short_and_points_at_what_is_installed(
    tiny_model_dir, german_text, tmp_path, capsys
):
    common = ["prune", "--model", tiny_model_dir, "--sparsity", 0.5, "--nsamples", 2, "--seqlen", 32]
    err = bad(capsys, *common, "--calib", f"text:{german_text}:klingon", "--out", tmp_path / "o")
    assert "unknown language 'klingon'" in err and "polysparse corpora" in err
    assert "zu (Zulu)" not in err and len(err) < 400
    if handbook_installed():
        err = bad(capsys, *common, "--calib", "handbook:klingon", "--out", tmp_path / "o")
        assert err.index("installed here: ar (Arabic)") < 120 and "zu (Zulu)" not in err and len(err) < 1200
