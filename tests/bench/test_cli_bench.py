"""`polysparse bench` and `polysparse export` on tiny models: the structure of what they write."""

import json

import pytest
import torch

from helpers.sparse_models import sparse_tiny_model
from helpers.tiny_models import tiny_model, tiny_tokenizer
from polysparse.bench import jobs
from polysparse.bench.cli import main
from polysparse.bench.plans import BenchRun, ThroughputPlan
from polysparse.runtime.checkpoint import load_sparse, read_sparsity_config, save_sparse
from polysparse.runtime.swap import sparse_layers, sparsify_model


def run(*args):
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def sparse_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench") / "tiny-sparse"
    model = sparse_tiny_model("llama", dtype=torch.float16)
    sparsify_model(model)
    save_sparse(model, folder, tokenizer=tiny_tokenizer())
    return folder


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory):
    """A dense-with-zeros folder as `polysparse prune --pattern 2:4` writes it."""
    folder = tmp_path_factory.mktemp("bench") / "tiny-pruned"
    sparse_tiny_model("gemma3").save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def test_bench_writes_json_markdown_and_plot(sparse_dir, tmp_path, capsys):
    code = run(
        "bench", "--model", sparse_dir, "--batch", "1,2", "--prompt", "6", "--new-tokens", 3,
        "--repeats", 2, "--out", tmp_path,
    )  # fmt: skip
    assert code == 0
    stem = tmp_path / "throughput_tiny-sparse_cpu"
    payload = json.loads(stem.with_suffix(".json").read_text())
    assert payload["benchmark"] == "throughput" and payload["sparse_layers"] == 21
    assert payload["plan"]["batch_sizes"] == [1, 2] and payload["plan"]["repeats"] == 2
    assert payload["dense_reference"].startswith("the sparse model's layers decompressed")
    assert payload["parity"]["max_abs_logit_diff"] == 0.0 and payload["parity"]["argmax_agreement"] == 1.0
    assert {r["ran"] for r in payload["backends_ran"]} == {"dense"}  # auto on CPU, said so
    rows = payload["rows"]
    assert [(r["batch"], r["variant"]) for r in rows] == [
        (1, "dense"),
        (1, "sparse"),
        (2, "dense"),
        (2, "sparse"),
    ]
    for row in rows:
        assert row["prompt"] == 6 and row["new_tokens"] == 3
        for key in ("ttft_ms", "prefill_tokens_per_s", "decode_tokens_per_s", "decode_ms_per_step"):
            stat = row[key]
            assert stat["n"] == 2 and 0 < stat["min"] <= stat["median"] <= stat["max"]
        assert row["weight_bytes_per_step"] > 0 and row["weight_gb_per_s"] > 0
        assert row["peak_memory_bytes"] is None  # CPU
    assert len(payload["speedups"]) == 2 and all(s["greedy_tokens_equal"] for s in payload["speedups"])
    assert payload["environment"]["versions"]["torch"] == torch.__version__
    assert payload["load_average_1min"]["cpus"] >= 1
    markdown = stem.with_suffix(".md").read_text()
    assert "| batch | prompt | decode | model |" in markdown and "ran: dense" in markdown
    pytest.importorskip("matplotlib")
    assert stem.with_suffix(".png").stat().st_size > 0
    assert "decode" in capsys.readouterr().out


def test_bench_swaps_a_pruned_dense_folder(pruned_dir, tmp_path):
    payload = jobs.bench_job(
        BenchRun(model=str(pruned_dir), backend="dense", out=str(tmp_path), plot=False, quiet=True),
        ThroughputPlan(batch_sizes="1", prompt_lengths="5", new_tokens=2, repeats=1, warmup=0),
    )
    assert payload["load"]["swap"]["layers_swapped"] == 28
    assert payload["dense_reference"].startswith("the same folder")
    assert {(r["requested"], r["ran"]) for r in payload["backends_ran"]} == {("dense", "dense")}
    assert not list(tmp_path.glob("*.png"))


def test_bench_refuses_a_model_without_24_layers(tmp_path, capsys):
    folder = tmp_path / "dense"
    tiny_model("llama").save_pretrained(folder)
    code = run(
        "bench", "--model", folder, "--batch", "1", "--prompt", "4", "--new-tokens", 2, "--out", tmp_path
    )
    assert code == 2
    assert "no 2:4 linear layers" in capsys.readouterr().err


def test_bench_rejects_bad_sizes(sparse_dir, tmp_path, capsys):
    assert run("bench", "--model", sparse_dir, "--batch", "1,x", "--out", tmp_path) == 2
    assert "comma-separated" in capsys.readouterr().err
    assert run("bench", "--model", sparse_dir, "--prompt", "300", "--new-tokens", 2, "--out", tmp_path) == 2
    assert "max_position_embeddings" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["dense", "compressed", "compressed-tensors"])
def test_export_command(sparse_dir, tmp_path, fmt):
    out = tmp_path / fmt
    assert run("export", sparse_dir, "--format", fmt, "--out", out, "--quiet") == 0
    assert (
        read_sparsity_config(out)["format"]
        == {
            "dense": "dense",
            "compressed": "polysparse-sparse24",
            "compressed-tensors": "sparse-24-bitmask",
        }[fmt]
    )
    a, b = sparse_layers(load_sparse(sparse_dir)), sparse_layers(load_sparse(out))
    assert all(torch.equal(a[k].values, b[k].values) and torch.equal(a[k].meta, b[k].meta) for k in a)


def test_export_errors(sparse_dir, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert run("export", sparse_dir, "--format", "dense", "--out", tmp_path / "taken") == 2
    assert "exists" in capsys.readouterr().err
    assert run("export", tmp_path / "taken", "--format", "dense", "--out", tmp_path / "x") == 2
    with pytest.raises(SystemExit):
        run("export", sparse_dir, "--format", "gguf", "--out", tmp_path / "y")


def test_interrupted_benchmark_resumes_finished_cells(sparse_dir, tmp_path, monkeypatch):
    """A benchmark killed after its first (batch, prompt) cell measures only the missing cells when run
    again; a finished run leaves no cells behind, so the next run measures afresh."""
    from polysparse.bench.speed import throughput

    calls = []
    real = throughput.time_generation

    def counting(model, ids, *args, **kwargs):
        calls.append(tuple(ids.shape))
        return real(model, ids, *args, **kwargs)

    class Interrupt(Exception):
        pass

    def interrupt_on_batch_two(model, ids, *args, **kwargs):
        if ids.shape[0] == 2:
            raise Interrupt
        return counting(model, ids, *args, **kwargs)

    args = ["bench", "--model", sparse_dir, "--batch", "1,2", "--prompt", "6", "--new-tokens", 2,
            "--repeats", 1, "--out", tmp_path]  # fmt: skip
    monkeypatch.setattr(throughput, "time_generation", interrupt_on_batch_two)
    with pytest.raises(Interrupt):
        run(*args)
    assert list(tmp_path.glob(".throughput_*.cells/*/b1-p6.json"))
    calls.clear()
    monkeypatch.setattr(throughput, "time_generation", counting)
    assert run(*args) == 0
    assert calls and all(shape[0] == 2 for shape in calls)  # batch 1 was not measured again
    payload = json.loads((tmp_path / "throughput_tiny-sparse_cpu.json").read_text())
    assert [s["batch"] for s in payload["speedups"]] == [1, 2]
    assert not list(tmp_path.glob(".throughput_*.cells"))
