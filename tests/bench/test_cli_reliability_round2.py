"""Issue 26, items 1-9: no lost work and no wrong result with exit status 0, through the command line as a
new user meets it (a tiny random Llama and a few text files)."""

import json
import math
import shutil
import subprocess
import sys

import pytest
from safetensors.torch import load_file, save_file

from helpers.cli import bad, run
from helpers.tiny_models import tiny_config, tiny_model, tiny_tokenizer

STUDY = ["--langs", "en,de", "--method", "wanda", "--nsamples", 2, "--seqlen", 32, "--eval-windows", 2]
STUDY += ["--eval-seqlen", 32, "--no-mix", "--translate-source", "none", "--no-plot", "--quiet"]


def model_folder(folder, seed=0, **overrides):
    tiny_model("llama", seed=seed, **overrides).save_pretrained(folder, safe_serialization=True)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def calib(text, nsamples=4):
    return ["--calib", f"text:{text}:de", "--nsamples", nsamples, "--seqlen", 32]


def snapshot(folder):
    """Every file under ``folder`` with its bytes: what must survive a refused command."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def items_file(path, count=3):
    records = [
        {"lang": "de", "context": f"Der Hund {i} läuft", "choices": [" schnell", " langsam"], "label": i % 2}
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def strict_load(path):
    """JSON as a strict reader sees it: NaN and Infinity are not JSON."""

    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


@pytest.fixture
def pruned_24(tiny_model_dir, tmp_path):
    out = tmp_path / "pruned24"
    assert run("prune", "--model", tiny_model_dir, "--method", "magnitude", "--pattern", "2:4", "--out", out,
               "--quiet") == 0  # fmt: skip
    return out


# --- 1. the study's cells belong to the weights they were computed from -------------------------------------


def test_study_refuses_cells_computed_from_other_weights(tmp_path, capsys, caplog):
    model = model_folder(tmp_path / "model")
    out = tmp_path / "study"
    assert run("study", "--model", model, *STUDY, "--out", out) == 0
    first = json.loads((out / "study-wanda-2-4.json").read_text())
    assert (out / "cells" / "models.json").is_file()

    model_folder(model, seed=1)  # saved again in place with other weights
    capsys.readouterr()
    err = bad(capsys, "study", "--model", model, *STUDY, "--out", out)
    assert "other weights" in err and "--cells" in err
    assert json.loads((out / "study-wanda-2-4.json").read_text()) == first  # the tables were left alone

    fresh = tmp_path / "fresh"
    assert run("study", "--model", model, *STUDY, "--out", fresh) == 0
    rows = json.loads((fresh / "study-wanda-2-4.json").read_text())["rows"]
    assert rows[0]["label"] == first["rows"][0]["label"] == "dense"
    assert rows[0]["perplexity"] != first["rows"][0]["perplexity"]

    # A cells folder from before the check (no models.json) records the weights it meets and goes on.
    (fresh / "cells" / "models.json").unlink()
    caplog.clear()
    assert run("study", "--model", model, *STUDY, "--out", fresh) == 0
    assert "taken to be of these weights" in caplog.text
    assert (fresh / "cells" / "models.json").is_file()


def test_study_cell_keys_do_not_depend_on_the_fingerprint(tiny_model_dir):
    """Cells of studies that ran before the fingerprint existed stay valid: their keys are unchanged."""
    from polysparse.bench.plans import StudyPlan
    from polysparse.bench.studies.study import study_rows

    plan = StudyPlan(model="gemma-3-270m", langs=("en", "de"), method="wanda", pattern="2:4")
    keys = [row.key(plan) for row in study_rows(plan)]
    # The keys as bench/studies/study.py computed them before issue 26 (a study started then still runs).
    assert keys == [
        "dense-35080f196c90",
        "magnitude-2-4-14f84181878d",
        "wanda-calib-en-ff46f7fe2481",
        "wanda-calib-de-48d2866f14ae",
        "wanda-calib-mix-en-de-e4106aa411b7",
        "wanda-calib-translate-de--en-6591e0cd2ac1",
    ]


# --- 2. eval --dump-items never replaces a file -------------------------------------------------------------


def test_dump_items_follows_the_output_rules(tiny_model_dir, german_text, tmp_path, capsys):
    items = items_file(tmp_path / "items.jsonl")
    text = tmp_path / "calibration.txt"
    shutil.copy(german_text, text)
    common = ["eval", "--model", tiny_model_dir, "--tasks", f"file:{items}", "--quiet"]
    before = text.read_bytes()
    assert "exists; choose another --dump-items or pass --overwrite" in bad(
        capsys, *common, "--dump-items", text
    )
    assert text.read_bytes() == before

    same = tmp_path / "same.json"
    assert "same file" in bad(capsys, *common, "--dump-items", same, "--out", same)
    assert not same.exists()
    # --overwrite allows replacing an earlier output, never an input of the run
    err = bad(capsys, *common, "--dump-items", items, "--overwrite")
    assert "is an input of this run" in err
    folder = tmp_path / "folder"
    folder.mkdir()
    assert "is a folder" in bad(capsys, *common, "--dump-items", folder)
    assert "is a file, not a folder" in bad(capsys, *common, "--dump-items", text / "items.jsonl")
    assert run(*common, "--dump-items", tmp_path / "dump.jsonl") == 0
    assert len((tmp_path / "dump.jsonl").read_text().splitlines()) == 3


# --- 3. an output is never an input, nor a folder holding one -----------------------------------------------


def test_overwrite_never_deletes_the_input(tiny_model_dir, german_text, tmp_path, capsys):
    runs = tmp_path / "runs"
    base = runs / "base"
    shutil.copytree(tiny_model_dir, base)
    (runs / "sibling.txt").write_text("keep me")
    before = snapshot(runs)
    prune = ["prune", "--method", "magnitude", "--sparsity", 0.5, "--overwrite", "--quiet"]
    assert "is an input of this run" in bad(capsys, *prune, "--model", base, "--out", base)
    assert "holds an input of this run" in bad(capsys, *prune, "--model", base, "--out", runs)
    text = tmp_path / "de.txt"
    shutil.copy(german_text, text)
    err = bad(capsys, "prune", "--model", base, "--method", "wanda", "--sparsity", 0.5, *calib(text),
              "--out", text, "--overwrite", "--quiet")  # fmt: skip
    assert "is an input of this run" in err
    assert snapshot(runs) == before and text.read_bytes() == german_text.read_bytes()


def test_export_overwrite_never_deletes_its_source(pruned_24, tmp_path, capsys):
    runs = tmp_path / "runs"
    source = runs / "pruned"
    shutil.copytree(pruned_24, source)
    before = snapshot(runs)
    for out in (source, runs):
        assert "input of this run" in bad(capsys, "export", source, "--format", "compressed", "--out", out,
                                          "--overwrite")  # fmt: skip
    compressed = tmp_path / "compressed"
    assert run("export", source, "--format", "compressed", "--out", compressed, "--quiet") == 0
    assert "input of this run" in bad(capsys, "export", compressed, "--format", "dense", "--out", compressed,
                                      "--overwrite")  # fmt: skip
    assert snapshot(runs) == before


# --- 4. weights transformers would initialise at random are an error ----------------------------------------


def test_a_model_without_its_head_or_with_a_missing_weight_is_refused(german_text, tmp_path, capsys):
    from transformers import LlamaModel

    base = tmp_path / "base"
    LlamaModel(tiny_config("llama")).save_pretrained(base)  # a base model: no lm_head
    tiny_tokenizer().save_pretrained(base)
    missing = model_folder(tmp_path / "missing")
    weights = load_file(str(missing / "model.safetensors"))
    del weights["model.layers.0.self_attn.q_proj.weight"]
    save_file(weights, str(missing / "model.safetensors"), metadata={"format": "pt"})

    err = bad(capsys, "prune", "--model", base, "--method", "magnitude", "--sparsity", 0.5, "--out",
              tmp_path / "out", "--quiet")  # fmt: skip
    assert "lm_head.weight" in err and "random values" in err and "language-model head" in err
    for stream in ("off", "on"):
        err = bad(capsys, "prune", "--model", missing, "--method", "wanda", "--sparsity", 0.5,
                  *calib(german_text), "--stream", stream, "--out", tmp_path / "out", "--quiet")  # fmt: skip
        assert "model.layers.0.self_attn.q_proj.weight" in err and "random values" in err
    err = bad(
        capsys, "eval", "--model", base, "--data", f"text:{german_text}:de", "--windows", 2, "--seqlen", 32
    )
    assert "lm_head.weight" in err
    assert not (tmp_path / "out").exists()


# --- 6. JSON never holds NaN --------------------------------------------------------------------------------


def test_task_results_of_one_item_are_strict_json(tiny_model_dir, tmp_path):
    items = items_file(tmp_path / "items.jsonl")
    out = tmp_path / "eval.json"
    assert run("eval", "--model", tiny_model_dir, "--tasks", f"file:{items}", "--limit", 1, "--out", out,
               "--quiet") == 0  # fmt: skip
    task = strict_load(out)["tasks"][0]
    assert task["n"] == 1 and task["acc_stderr"] is None and task["acc_norm_stderr"] is None
    assert "± n/a" in out.with_suffix(".md").read_text()


def test_the_project_writer_never_writes_nan(tmp_path):
    from polysparse.bench.report import write_json

    path = write_json(
        tmp_path / "x.json", {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": {"d": math.nan}}
    )
    assert strict_load(path) == {"a": None, "b": [None, None, 1.5], "c": {"d": None}}


# --- 7. every part of a mixture calibrates, and the windows each got are recorded ---------------------------


def test_a_small_mixture_part_gets_a_window_and_is_recorded(tiny_model_dir, german_text, tmp_path, capsys):
    english = tmp_path / "en.txt"
    english.write_text("The small dog runs over the meadow behind the house every morning. " * 400)
    spec = f"text:{german_text}:de=0.01,text:{english}:en=0.99"
    out = tmp_path / "pruned"
    assert run("prune", "--model", tiny_model_dir, "--method", "wanda", "--sparsity", 0.5, "--calib", spec,
               "--nsamples", 8, "--seqlen", 32, "--out", out, "--quiet") == 0  # fmt: skip
    calibration = json.loads((out / "polysparse.json").read_text())["calibration"]
    per_part = {entry["part"]: entry["windows"] for entry in calibration["windows_per_part"]}
    assert per_part == {f"text:{german_text}:de": 1, f"text:{english}:en": 7}
    assert calibration["windows"] == 8 and calibration["language"] == "de+en"
    err = bad(capsys, "prune", "--model", tiny_model_dir, "--method", "wanda", "--sparsity", 0.5, "--calib",
              spec, "--nsamples", 1, "--seqlen", 32, "--out", tmp_path / "one", "--quiet")  # fmt: skip
    assert "--nsamples 1 cannot give each of the 2 parts" in err


# --- 8. an output never inherits its input's sparsity record ------------------------------------------------


@pytest.mark.parametrize("stream", ["off", "on"])
def test_repruning_a_dense_export_drops_its_sparsity_config(pruned_24, tmp_path, capsys, stream):
    dense = tmp_path / "dense"
    assert run("export", pruned_24, "--format", "compressed", "--out", tmp_path / "c", "--quiet") == 0
    assert run("export", tmp_path / "c", "--format", "dense", "--out", dense, "--quiet") == 0
    assert "sparsity_config" in json.loads((dense / "config.json").read_text())
    again = tmp_path / "again"
    assert run("prune", "--model", dense, "--method", "magnitude", "--sparsity", 0.6, "--stream", stream,
               "--out", again, "--quiet") == 0  # fmt: skip
    assert "sparsity_config" not in json.loads((again / "config.json").read_text())
    err = bad(capsys, "export", again, "--format", "compressed", "--out", tmp_path / "x")
    assert "unstructured" in err and "manifest" not in err


# --- 9. leftovers of killed runs are cleaned up -------------------------------------------------------------


def dead_pid():
    process = subprocess.Popen([sys.executable, "-P", "-c", "pass"])
    process.wait()
    return process.pid


def test_a_killed_exports_staging_copy_is_removed(pruned_24, tmp_path, caplog):
    out = tmp_path / "ct"
    staging = tmp_path / f".ct.staging-{dead_pid()}"
    shutil.copytree(pruned_24, staging)
    assert run("export", pruned_24, "--format", "compressed-tensors", "--out", out) == 0
    assert not staging.exists() and "removed" in caplog.text and str(staging) in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ct")) == []


def test_no_checkpoint_run_removes_an_interrupted_runs_state(
    tiny_model_dir, german_text, tmp_path, monkeypatch
):
    import polysparse.sparsify.driver as driver

    original = driver.PruneCheckpoint.save

    def save_then_stop(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise KeyboardInterrupt

    args = ["prune", "--model", tiny_model_dir, "--method", "wanda", "--sparsity", 0.5, *calib(german_text)]
    out = tmp_path / "pruned"
    monkeypatch.setattr(driver.PruneCheckpoint, "save", save_then_stop)
    assert run(*args, "--out", out, "--quiet") == 130
    monkeypatch.undo()
    assert (tmp_path / ".pruned.work" / "state.json").is_file()
    assert run(*args, "--out", out, "--no-checkpoint", "--quiet") == 0
    assert out.is_dir() and not (tmp_path / ".pruned.work").exists()


def test_interrupting_prune_says_what_is_kept(tiny_model_dir, german_text, tmp_path, monkeypatch, capsys):
    import polysparse.sparsify.driver as driver

    original = driver.PruneCheckpoint.save

    def save_then_stop(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(driver.PruneCheckpoint, "save", save_then_stop)
    args = ["prune", "--model", tiny_model_dir, "--method", "wanda", "--sparsity", 0.5, *calib(german_text)]
    assert run(*args, "--out", tmp_path / "pruned", "--quiet") == 130
    err = capsys.readouterr().err
    assert "finished blocks are kept" in err and "resumes" in err and "nothing was written" not in err
