"""Issue 26: tracebacks that became one-line errors (exit status 2), and messages that now say what is wrong
and what to do. Each through the command line, before work is lost."""

import json
import os
import resource
import subprocess
import sys

import pytest

from helpers.cli import bad, run
from helpers.tiny_models import tiny_model

AS_ROOT = os.geteuid() == 0  # root writes anywhere: the unwritable cases cannot be made


def items_file(path, encoding="utf-8"):
    records = [
        {"lang": "de", "context": f"Der Hund {i} läuft über", "choices": [" schnell", " langsam"], "label": 0}
        for i in range(3)
    ]
    path.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode(encoding))
    return path


@pytest.fixture
def pruned_24(tiny_model_dir, tmp_path):
    out = tmp_path / "pruned24"
    args = ["prune", "--model", tiny_model_dir, "--method", "magnitude", "--pattern", "2:4", "--quiet"]
    assert run(*args, "--out", out) == 0
    return out


# --- no room to write ---------------------------------------------------------------------------------------

LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
from polysparse.bench.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_with_file_limit(limit, *args):
    """The command in a process that may write no file larger than ``limit`` bytes (``ulimit -f``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-P", "-c", LIMITED, str(limit), *[str(a) for a in args]]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_FSIZE)[1] != resource.RLIM_INFINITY, reason="a hard ulimit -f is set"
)
def test_a_full_disk_is_a_clear_error_and_leaves_nothing_half_written(tiny_model_dir, german_text, tmp_path):
    out = tmp_path / "pruned"
    args = ["prune", "--model", tiny_model_dir, "--method", "wanda", "--sparsity", 0.5, "--calib"]
    args += [f"text:{german_text}:de", "--nsamples", 2, "--seqlen", 32, "--out", out, "--quiet"]
    done = run_with_file_limit(100_000, *args)  # the model's 0.6 MB of weights do not fit
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "no room to write" in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".pruned.partial-*"))
    assert run(*args) == 0  # with room again, the same command finishes

    compressed = tmp_path / "compressed"
    assert run("prune", "--model", tiny_model_dir, "--method", "magnitude", "--pattern", "2:4", "--out",
               tmp_path / "p24", "--quiet") == 0  # fmt: skip
    done = run_with_file_limit(
        100_000, "export", tmp_path / "p24", "--format", "compressed", "--out", compressed
    )
    assert done.returncode == 2 and "no room to write" in done.stderr and "Traceback" not in done.stderr
    assert not compressed.exists() and not list(tmp_path.glob(".compressed.*"))


# --- export -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "report, expected",
    [
        (b"{not json", "is not valid JSON"),
        (b'{"config": "\xe4"}', "is not UTF-8"),
        (b"[]", "holds a JSON list"),
        (b'{"config": {"pattern": "2:4"}, "layers": [{"sparsity": 0.5}]}', "layers[0] has no 'name'"),
        (b'{"config": "2:4"}', "'config' is a str"),
    ],
)
def test_export_names_a_damaged_report(pruned_24, tmp_path, capsys, report, expected):
    (pruned_24 / "polysparse.json").write_bytes(report)
    out = tmp_path / "out"
    assert expected in bad(capsys, "export", pruned_24, "--format", "compressed", "--out", out)
    assert not out.exists()


def test_export_refuses_a_file_and_a_nameless_output_before_any_work(pruned_24, tmp_path, capsys):
    weights = pruned_24 / "model.safetensors"
    assert "is a file" in bad(capsys, "export", weights, "--format", "dense", "--out", tmp_path / "x")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        err = bad(capsys, "export", pruned_24, "--format", "compressed", "--out", ".", "--overwrite")
    finally:
        os.chdir(cwd)
    assert "names no new file or folder" in err


def test_export_onto_an_existing_folder_says_overwrite(pruned_24, tmp_path, capsys):
    compressed = tmp_path / "compressed"
    assert run("export", pruned_24, "--format", "compressed", "--out", compressed, "--quiet") == 0
    taken = tmp_path / "taken"
    taken.mkdir()
    err = bad(capsys, "export", compressed, "--format", "dense", "--out", taken)
    assert "pass --overwrite" in err and "overwrite=True" not in err


def test_export_of_an_unknown_format_version_says_so(pruned_24, tmp_path, capsys):
    compressed = tmp_path / "compressed"
    assert run("export", pruned_24, "--format", "compressed", "--out", compressed, "--quiet") == 0
    config = json.loads((compressed / "config.json").read_text())
    config["sparsity_config"]["format_version"] = 99
    (compressed / "config.json").write_text(json.dumps(config))
    err = bad(capsys, "export", compressed, "--format", "dense", "--out", tmp_path / "dense")
    assert "format version 99" in err


def test_a_manifest_value_of_the_wrong_type_is_named(pruned_24, tmp_path, capsys):
    compressed = tmp_path / "compressed"
    assert run("export", pruned_24, "--format", "compressed", "--out", compressed, "--quiet") == 0
    config = json.loads((compressed / "config.json").read_text())
    entry = config["sparsity_config"]["files"]["model.sparse24.safetensors"]
    entry["bytes"] = str(entry["bytes"])
    (compressed / "config.json").write_text(json.dumps(config))
    err = bad(capsys, "export", compressed, "--format", "dense", "--out", tmp_path / "dense")
    assert "(str)" in err and "as an integer" in err


# --- eval ---------------------------------------------------------------------------------------------------


def test_eval_counts_below_one_are_refused(tiny_model_dir, german_text, capsys):
    common = ["eval", "--model", tiny_model_dir, "--data", f"text:{german_text}:de", "--seqlen", 32]
    for flag, value in (("--windows", 0), ("--windows", -1), ("--batch-size", 0)):
        assert f"{flag} must be at least 1, got {value}" in bad(capsys, *common, flag, value)


@pytest.mark.skipif(AS_ROOT, reason="root can write into a read-only folder")
def test_dump_items_into_an_unwritable_folder_is_refused_before_loading(tiny_model_dir, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    items = items_file(tmp_path / "items.jsonl")
    err = bad(capsys, "eval", "--model", tiny_model_dir, "--tasks", f"file:{items}", "--dump-items",
              locked / "dump.jsonl")  # fmt: skip
    assert "not writable" in err


def test_a_task_file_in_another_encoding(tiny_model_dir, tmp_path, capsys):
    items = items_file(tmp_path / "items.jsonl", encoding="latin-1")
    common = ["eval", "--model", tiny_model_dir, "--tasks", f"file:{items}", "--quiet"]
    err = bad(capsys, *common)
    assert "is not valid utf-8" in err and "--encoding" in err
    assert run(*common, "--encoding", "latin-1") == 0


def test_folders_given_as_files_are_named(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "texts"
    folder.mkdir()
    err = bad(capsys, "eval", "--model", tiny_model_dir, "--data", f"text:{folder}:de", "--seqlen", 32)
    assert "is a folder" in err and f"text:{folder}/*.txt:de" in err
    err = bad(capsys, "eval", "--model", tiny_model_dir, "--tasks", f"file:{folder}")
    assert "is a folder" in err


def test_lm_eval_without_local_data_is_a_clear_error(tiny_model_dir, monkeypatch, capsys):
    import lm_eval
    import lm_eval.tasks

    class Manager:  # lm-eval's own index takes tens of seconds; the task is known, its data is not here
        all_tasks = ("xnli_de",)

        def __init__(self, *args, **kwargs):
            pass

    def unreachable(**kwargs):
        import requests

        raise requests.exceptions.ConnectionError("Max retries exceeded with url: /datasets/xnli")

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", Manager)
    monkeypatch.setattr(lm_eval, "simple_evaluate", unreachable)
    err = bad(capsys, "eval", "--model", tiny_model_dir, "--lm-eval", "xnli_de", "--quiet")
    assert "could not load the data of xnli_de" in err and "never downloads" in err


def test_a_model_folder_without_tokenizer_files_says_so(tmp_path, capsys):
    folder = tmp_path / "model"
    tiny_model("llama").save_pretrained(folder)
    err = bad(capsys, "eval", "--model", folder, "--data", "text:x.txt:de", "--seqlen", 32)
    assert "has no tokenizer files" in err and "sentencepiece" not in err


@pytest.mark.parametrize("format", ["compressed", "compressed-tensors"])
def test_eval_and_prune_of_a_compressed_folder_say_how_to_get_a_dense_one(
    pruned_24, tmp_path, capsys, format
):
    compressed = tmp_path / format
    assert run("export", pruned_24, "--format", format, "--out", compressed, "--quiet") == 0
    evaluate = ["eval", "--data", "text:x.txt:de", "--seqlen", 32]
    prune = ["prune", "--method", "magnitude", "--sparsity", 0.5, "--out", tmp_path / "out"]
    for command in (evaluate, prune):
        err = bad(capsys, command[0], "--model", compressed, *command[1:])
        assert "is a compressed 2:4 checkpoint" in err and "--format dense" in err
        assert "model.safetensors" not in err and "compressed-tensors>=" not in err


# --- prune, study, bench: output places ---------------------------------------------------------------------


def test_offload_dir_under_a_file_is_refused(tiny_model_dir, german_text, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = bad(capsys, "prune", "--model", tiny_model_dir, "--method", "wanda", "--sparsity", 0.5, "--calib",
              f"text:{german_text}:de", "--nsamples", 2, "--seqlen", 32, "--offload", "disk", "--offload-dir",
              blocker / "acts", "--out", tmp_path / "out")  # fmt: skip
    assert "is a file, not a folder" in err
    assert not (tmp_path / "out").exists()


STUDY = ["--langs", "en", "--nsamples", 2, "--seqlen", 32, "--eval-windows", 2, "--eval-seqlen", 32]
STUDY += ["--no-mix", "--translate-source", "none", "--no-plot", "--quiet"]


def test_study_output_places_are_checked_first(tiny_model_dir, tmp_path, capsys):
    study = ["study", "--model", tiny_model_dir, *STUDY]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "--out is empty" in bad(capsys, *study, "--out", "")
    assert "is a file" in bad(capsys, *study, "--out", blocker)
    assert "is a file, not a folder" in bad(capsys, *study, "--out", blocker / "study")
    out = tmp_path / "study"
    out.mkdir()
    (out / "cells").write_text("x")
    assert "--cells" in bad(capsys, *study, "--out", out)
    (out / "cells").unlink()
    (out / "study-wanda-2-4.json").write_text("[]")
    assert "is not the tables of a study" in bad(capsys, *study, "--out", out)
    assert (out / "study-wanda-2-4.json").read_text() == "[]"
    err = bad(capsys, *study[:3], *STUDY[:7], "0", *STUDY[8:], "--out", tmp_path / "s0")
    assert "--eval-windows must be at least 1, got 0" in err
    assert "is an input of this run" in bad(capsys, *study, "--out", tiny_model_dir)


def test_bench_out_under_a_file_is_refused(pruned_24, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = bad(
        capsys, "bench", "--model", pruned_24, "--out", blocker / "results", "--batch", 1, "--prompt", 8
    )
    assert "is a file, not a folder" in err
