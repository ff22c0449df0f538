"""Prune models whose weights or activations are large, and record peak host memory (issue 6).

``python -P -m polysparse.bench.experiments.large_model_proof --work runs/large`` builds a Llama-architecture
model with random weights (about 3.4 GB of float32 safetensors, sharded), then runs ``polysparse prune`` with
Wanda and SparseGPT under ``/usr/bin/time -v``, streaming (``--stream on``) and, for contrast, loading the
whole model (``--stream off``, Wanda only), and writes peak resident memory against the model size to
``bench/results/large_model/random-llama.json`` and ``.md``.

``--activations`` instead builds a small random Llama (two blocks, hidden 1024) and calibrates it on many
windows, so the activations between blocks outweigh the model, then prunes it with the activations kept
in memory (``--offload none``), in bfloat16 (``--offload-dtype bfloat16``) and on disk (``--offload
disk``), and writes ``bench/results/large_model/activation-offload.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from polysparse.bench.report import environment, markdown_table, write_json

CONFIG = dict(
    hidden_size=2048, intermediate_size=5632, num_hidden_layers=14, num_attention_heads=16,
    num_key_value_heads=16, vocab_size=32000, max_position_embeddings=2048,
)  # fmt: skip
# Activations between blocks: 128 windows x 512 tokens x 1024 x 4 bytes = 268 MB per copy, against 59 MB of
# block weights, so where they live decides the peak.
ACTIVATION_CONFIG = dict(
    hidden_size=1024, intermediate_size=1024, num_hidden_layers=2, num_attention_heads=8,
    num_key_value_heads=8, vocab_size=4096, max_position_embeddings=1024,
)  # fmt: skip
ACTIVATION_CALIBRATION = {"nsamples": 128, "seqlen": 512}


def build_model(folder: Path, config: dict = CONFIG) -> int:
    """Random Llama model + a byte-level BPE tokenizer trained on handbook:en; returns weight bytes."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from polysparse.sparsify.corpora import SourceSpec, load_documents

    if (folder / "config.json").exists():
        return sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**config, bos_token_id=1, eos_token_id=2, pad_token_id=0))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.02)
    model.save_pretrained(folder, max_shard_size="1GB")
    del model
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=4096, special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator([d.text for d in load_documents(SourceSpec.parse("handbook:en"))[:40]], trainer)
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    ).save_pretrained(folder)
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def timed_prune(
    model: Path, out: Path, method: str, stream: str, nsamples: int = 8, seqlen: int = 128, extra=()
) -> dict:
    polysparse = Path(sys.executable).with_name("polysparse")
    command = [
        "/usr/bin/time", "-v", str(polysparse), "prune", "--model", str(model), "--method", method,
        "--sparsity", "0.5", "--calib", "handbook:en", "--nsamples", str(nsamples), "--seqlen", str(seqlen),
        "--stream", stream, *extra, "--out", str(out), "--overwrite", "--quiet",
    ]  # fmt: skip
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", completed.stderr).group(1))
    return {
        "method": method,
        "stream": stream,
        "peak_rss_bytes": peak_kb * 1024,
        "wall_seconds": time.perf_counter() - started,
        "command": " ".join(command[2:]),
    }


def activation_offload_proof(work: Path, stem: Path) -> None:
    """Peak RSS of one Wanda run per place the activations between blocks are kept."""
    model = work / "random-llama-small"
    size = build_model(model, ACTIVATION_CONFIG)
    settings = [
        ("none", ()),
        ("none, bfloat16", ("--offload-dtype", "bfloat16")),
        ("disk", ("--offload", "disk")),
    ]
    runs = []
    for label, extra in settings:
        run = timed_prune(model, work / "offload", "wanda", "off", extra=extra, **ACTIVATION_CALIBRATION)
        runs.append({"offload": label, **run})
    n, length = ACTIVATION_CALIBRATION["nsamples"], ACTIVATION_CALIBRATION["seqlen"]
    copy_bytes = n * length * ACTIVATION_CONFIG["hidden_size"] * 4
    payload = {
        "model": {"config": ACTIVATION_CONFIG, "safetensors_bytes": size},
        "calibration": {**ACTIVATION_CALIBRATION, "float32_activation_bytes_per_copy": copy_bytes},
        "runs": runs,
        "environment": environment(),
    }
    write_json(stem.with_suffix(".json"), payload)
    baseline = runs[0]["peak_rss_bytes"]
    rows = [
        [r["offload"], f"{r['peak_rss_bytes'] / 1e9:.2f}", f"{r['peak_rss_bytes'] / baseline:.2f}",
         f"{r['wall_seconds']:.0f}"]
        for r in runs
    ]  # fmt: skip
    table = markdown_table(["--offload", "peak RSS (GB)", "vs none", "wall (s)"], rows)
    text = (
        f"Random-weight Llama model ({size / 1e9:.2f} GB of float32 safetensors, "
        f"{ACTIVATION_CONFIG['num_hidden_layers']} blocks, hidden {ACTIVATION_CONFIG['hidden_size']}) pruned "
        f"with Wanda 50% on CPU, calibrated on {n} windows x {length} tokens of handbook:en: "
        f"{copy_bytes / 1e9:.2f} GB of float32 activations per copy between blocks. "
        "Command: python -P -m polysparse.bench.experiments.large_model_proof --activations\n\n" + table
    )
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="runs/large", help="folder for the model and the pruned outputs")
    parser.add_argument("--out", help="output stem (default bench/results/large_model/<proof>)")
    parser.add_argument(
        "--activations", action="store_true", help="the activation offload proof instead of streaming"
    )
    args = parser.parse_args(argv)
    work = Path(args.work)
    if args.activations:
        activation_offload_proof(work, Path(args.out or "bench/results/large_model/activation-offload"))
        return
    args.out = args.out or "bench/results/large_model/random-llama"
    model = work / "random-llama"
    size = build_model(model)
    runs = [
        timed_prune(model, work / "wanda-stream", "wanda", "on"),
        timed_prune(model, work / "sparsegpt-stream", "sparsegpt", "on"),
        timed_prune(model, work / "wanda-whole", "wanda", "off"),
    ]
    for run in runs:
        run["peak_rss_over_model_size"] = run["peak_rss_bytes"] / size
    payload = {
        "model": {"config": CONFIG, "safetensors_bytes": size},
        "runs": runs,
        "environment": environment(),
    }
    stem = Path(args.out)
    write_json(stem.with_suffix(".json"), payload)
    rows = [
        [r["method"], r["stream"], f"{r['peak_rss_bytes'] / 1e9:.2f}", f"{r['peak_rss_over_model_size']:.2f}",
         f"{r['wall_seconds']:.0f}"]
        for r in runs
    ]  # fmt: skip
    table = markdown_table(["method", "--stream", "peak RSS (GB)", "peak RSS / model size", "wall (s)"], rows)
    text = (
        f"Random-weight Llama model, {size / 1e9:.2f} GB of float32 safetensors, pruned to 50% on CPU with "
        "8 windows x 128 tokens of handbook:en. "
        "Command: python -P -m polysparse.bench.experiments.large_model_proof\n\n" + table
    )
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
