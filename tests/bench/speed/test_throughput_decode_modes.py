"""`polysparse bench` decode modes: CUDA-graph decode (static cache, one replay per token) as the first row,
eager as the second; on a machine without CUDA the graph rows are absent and the report says why."""

import json

import pytest
import torch

from helpers.sparse_models import sparse_tiny_model
from helpers.tiny_models import tiny_tokenizer
from polysparse.bench.cli import main
from polysparse.bench.plans import DECODE_MODES, BenchSetupError, ThroughputPlan
from polysparse.bench.speed import throughput
from polysparse.runtime.checkpoint import save_sparse
from polysparse.runtime.swap import sparsify_model


def test_plan_takes_graph_and_eager_by_default_and_refuses_others():
    assert ThroughputPlan().decode_modes == DECODE_MODES == ("graph", "eager")
    assert ThroughputPlan(decode_modes=["eager"]).decode_modes == ("eager",)
    for bad in ((), ("graph", "graph"), ("cudagraph",)):
        with pytest.raises(BenchSetupError, match="decode_modes"):
            ThroughputPlan(decode_modes=bad)


def test_graph_mode_is_skipped_with_its_reason_on_cpu():
    modes, skipped = throughput.decode_modes_here(ThroughputPlan(), torch.device("cpu"))
    assert modes == ["eager"] and "CUDA" in skipped["graph"]
    with pytest.raises(BenchSetupError, match="no decode mode"):
        throughput.measure(
            None,
            sparse_tiny_model("llama"),
            ThroughputPlan(prompt_lengths=(4,), new_tokens=2, decode_modes=("graph",)),
        )


def test_bench_rows_name_their_decode_mode(tmp_path):
    folder = tmp_path / "tiny-sparse"
    model = sparse_tiny_model("llama", dtype=torch.float16)
    sparsify_model(model)
    save_sparse(model, folder, tokenizer=tiny_tokenizer())
    args = ["bench", "--model", folder, "--batch", "1", "--prompt", "6", "--new-tokens", 3, "--repeats", 1,
            "--warmup", 0, "--out", tmp_path, "--no-plot"]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    stem = tmp_path / "throughput_tiny-sparse_cpu"
    payload = json.loads(stem.with_suffix(".json").read_text())
    assert [(r["decode_mode"], r["variant"]) for r in payload["rows"]] == [
        ("eager", "dense"),
        ("eager", "sparse"),
    ]
    assert [s["decode_mode"] for s in payload["speedups"]] == ["eager"]
    assert "CUDA" in payload["decode_modes_skipped"]["graph"]
    text = stem.with_suffix(".md").read_text()
    assert "Decode mode graph not measured: CUDA graphs need a CUDA device" in text
    assert "| 1 | 6 | eager | dense |" in text
