"""Random-weight 2:4 checkpoints at real model shapes, for end-to-end timing where no weights can be fetched.

    python -P -m polysparse.bench.speed.shape_models --model llama-3-8b --layers 4 \\
        --out runs/shapes/llama-3-8b

Throughput depends on the shapes of the linear layers, the attention layout and the vocabulary, not on
trained values, and a GPU machine without internet has no real weights: this builds the model from its
published configuration (every linear layer at its real shape, the real head counts and vocabulary) with
random weights, keeps ``--layers`` decoder blocks (decode time grows linearly with depth, so a few blocks
measure the per-block speedup in a fraction of the time), prunes every decoder linear layer 2:4 by
magnitude, and writes a sparse checkpoint (:func:`polysparse.runtime.save_sparse`) that
``polysparse bench --model`` takes. Built on the GPU when there is one (initialisation on the device).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

# Published configurations (config.json of each model on the Hugging Face hub), text decoder only.
CONFIGS: dict[str, dict[str, Any]] = {
    "llama-3-8b": dict(
        model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0,
        max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=False,
    ),
    "qwen2.5-7b": dict(
        model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, rope_theta=1000000.0,
        max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=False,
    ),
    "gemma-3-270m": dict(
        model_type="gemma3_text", hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
        num_attention_heads=4, num_key_value_heads=1, head_dim=256, vocab_size=262144,
        max_position_embeddings=32768, sliding_window=512, tie_word_embeddings=True,
    ),
    "gemma-3-4b": dict(
        model_type="gemma3_text", hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
        num_attention_heads=8, num_key_value_heads=4, head_dim=256, vocab_size=262208,
        max_position_embeddings=131072, sliding_window=1024, tie_word_embeddings=True,
    ),
}  # fmt: skip


def build_config(name_or_config: str | dict[str, Any], layers: int | None = None):
    """A transformers config for ``name`` (a key of :data:`CONFIGS`) or a dict of config fields."""
    from transformers import AutoConfig

    fields = dict(CONFIGS[name_or_config] if isinstance(name_or_config, str) else name_or_config)
    if layers is not None:
        fields["num_hidden_layers"] = min(layers, fields["num_hidden_layers"])
    model_type = fields.pop("model_type")
    return AutoConfig.for_model(model_type, **fields)


def prune_linear_24(model: nn.Module) -> int:
    """Magnitude 2:4 on every Linear inside the decoder blocks (not embeddings or lm_head); returns count."""
    from polysparse.kernels.topk_mask import nm_mask

    pruned = 0
    lm_head = model.get_output_embeddings()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module is not lm_head and ".layers." in f".{name}.":
            with torch.no_grad():
                module.weight.mul_(nm_mask(module.weight, None, n=2, m=4))
            pruned += 1
    return pruned


def build_sparse_checkpoint(
    name_or_config: str | dict[str, Any],
    out: str | Path,
    *,
    layers: int | None = None,
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Random model at real shapes -> 2:4 magnitude -> sparse checkpoint in ``out``; returns a summary."""
    from transformers import AutoModelForCausalLM

    from polysparse.runtime import save_sparse, sparsify_model

    started = time.perf_counter()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config = build_config(name_or_config, layers)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, torch_dtype=dtype)
    model.eval()
    pruned = prune_linear_24(model)
    sparsify_model(model)
    save_sparse(model, out, overwrite=True)
    return {
        "model": name_or_config if isinstance(name_or_config, str) else "custom",
        "layers": config.num_hidden_layers,
        "pruned_linear_layers": pruned,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(device),
        "seconds": round(time.perf_counter() - started, 1),
        "out": str(out),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=sorted(CONFIGS))
    p.add_argument("--layers", type=int, default=None, help="decoder blocks to keep (default: all)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    summary = build_sparse_checkpoint(
        args.model, args.out, layers=args.layers, dtype=getattr(torch, args.dtype), device=args.device
    )
    print(" ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
