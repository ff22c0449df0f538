"""Prune a model larger than a few GB block by block and record peak host memory (issue 6).

``python -m polysparse.bench.large_model_proof --work runs/large`` builds a Llama-architecture model with
random weights (about 3.4 GB of float32 safetensors, sharded), then runs ``polysparse prune`` with Wanda and
SparseGPT under ``/usr/bin/time -v``, streaming (``--stream on``) and, for contrast, loading the whole
model (``--stream off``, Wanda only), and writes peak resident memory against the model size to
``bench/results/large_model/random-llama.json`` and ``.md``.
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


def build_model(folder: Path) -> int:
    """Random Llama model + a byte-level BPE tokenizer trained on handbook:en; returns weight bytes."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from polysparse.sparsify.corpora import load_documents

    if (folder / "config.json").exists():
        return sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**CONFIG, bos_token_id=1, eos_token_id=2, pad_token_id=0))
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
    tok.train_from_iterator([d.text for d in load_documents("handbook:en")[:40]], trainer)
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    ).save_pretrained(folder)
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def timed_prune(model: Path, out: Path, method: str, stream: str) -> dict:
    polysparse = Path(sys.executable).with_name("polysparse")
    command = [
        "/usr/bin/time", "-v", str(polysparse), "prune", "--model", str(model), "--method", method,
        "--sparsity", "0.5", "--calib", "handbook:en", "--nsamples", "8", "--seqlen", "128",
        "--stream", stream, "--out", str(out), "--overwrite", "--quiet",
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="runs/large", help="folder for the model and the pruned outputs")
    parser.add_argument("--out", default="bench/results/large_model/random-llama")
    args = parser.parse_args(argv)
    work = Path(args.work)
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
        "8 windows x 128 tokens of handbook:en. Command: python -m polysparse.bench.large_model_proof\n\n"
        + table
    )
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
