"""The model ``polysparse serve`` answers with: loaded from a folder, its sparse layers' backends reported.

* a compressed 2:4 folder (``polysparse export``, ``save_sparse``, the demo's ``compressed/``) loads through
  transformers' own ``from_pretrained`` and polysparse's quantizer (one written before compressed folders
  carried a ``quantization_config`` is given one);
* the other sparse layouts (a ``compressed-tensors`` export) load with :func:`load_sparse`;
* any other causal LM folder (a pruned one, say) loads with ``from_pretrained`` and its 2:4 layers are
  swapped for sparse ones (:func:`sparsify_model`); layers that are not 2:4 stay dense (the report says so).

Sparse layers run the ``auto`` backend: polysparse's kernels on CUDA, the dense fallback elsewhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polysparse.runtime.checkpoint import CheckpointError, is_sparse_checkpoint, load_sparse
from polysparse.runtime.checkpoint.files import read_json
from polysparse.runtime.checkpoint.metadata import FORMAT_NATIVE
from polysparse.runtime.serving.generation import Generator
from polysparse.runtime.swap import linear_layers, sparse_layers, sparsify_model
from polysparse.sparsify.loading import ModelLoadError, check_model_folder, parse_dtype
from polysparse.sparsify.walk import check_device

PREFILL_TOKENS = 512
"""The prompt size the report shows a prefill backend for (decode is one token per sequence)."""

_OFF_CUDA = "no sparse kernel off CUDA: the decompressed weight"


@dataclass(frozen=True)
class ServedModel:
    """What the server answers with: the model's name (its folder's), the generator, the backend report."""

    name: str
    folder: Path
    generator: Generator
    backends: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    how_loaded: str = ""

    def describe(self) -> list[str]:
        """The report as lines for the log."""
        lines = [f"{self.name}: {self.how_loaded}"]
        for row in self.backends:
            if row["kind"] == "dense":
                lines.append(f"  {row['layers']} linear layers dense ({row['reason']})")
                continue
            shape = f"{row['in_features']}->{row['out_features']} {row['dtype']} on {row['device']}"
            plan = f"decode {row['decode']}, prefill ({PREFILL_TOKENS} tokens) {row['prefill']}"
            reason = f" ({row['reason']})" if row["reason"] else ""
            lines.append(f"  {row['layers']} Sparse24Linear {shape}: {plan}{reason}")
        return lines


def backend_report(model: nn.Module) -> tuple[dict[str, Any], ...]:
    """Which backend each sparse layer runs for a decode step and for a prefill, grouped by shape; and how
    many linear layers (the output projection aside) are dense."""
    rows: Counter[tuple] = Counter()
    for layer in sparse_layers(model).values():
        plans = {}
        reasons = []
        for label, m in (("decode", 1), ("prefill", PREFILL_TOKENS)):
            ran, reason = layer.backend_for(m)
            plans[label] = ran
            if reason is None and ran == "dense" and layer.values.device.type != "cuda":
                reason = _OFF_CUDA
            if reason is not None and reason not in reasons:
                reasons.append(reason)
        key = (
            layer.in_features,
            layer.out_features,
            str(layer.values.dtype).removeprefix("torch."),
            str(layer.values.device),
            plans["decode"],
            plans["prefill"],
            "; ".join(reasons) or None,
        )
        rows[key] += 1
    report: list[dict[str, Any]] = [
        dict(
            zip(
                ("in_features", "out_features", "dtype", "device", "decode", "prefill", "reason"),
                key,
                strict=True,
            ),
            kind="sparse",
            layers=count,
        )
        for key, count in rows.items()
    ]
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    dense = sum(1 for _, module in linear_layers(model) if module is not output)
    if dense:
        report.append({"kind": "dense", "layers": dense, "reason": "not 2:4 sparse"})
    return tuple(report)


def _from_pretrained(folder: Path, dtype, device: torch.device, **kwargs: Any) -> nn.Module:
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, device_map=str(device), local_files_only=True, **kwargs
        )
    except CheckpointError:
        raise
    except Exception as error:  # safetensors, torch and transformers raise many types on bad files
        raise ModelLoadError(
            f"could not load the model in {folder}: {type(error).__name__}: {error}"
        ) from error


def load_model(folder: Path, dtype: str | torch.dtype, device: torch.device) -> tuple[nn.Module, str]:
    """The model of ``folder`` with its 2:4 layers sparse, and a sentence on how it was loaded."""
    block = read_json(folder / "config.json").get("sparsity_config")
    if isinstance(block, dict) and block.get("format") == FORMAT_NATIVE:
        from polysparse.runtime.hf_quantizer import PolysparseConfig

        older = "quantization_config" not in read_json(folder / "config.json")
        extra = {"quantization_config": PolysparseConfig()} if older else {}
        model = _from_pretrained(folder, parse_dtype(dtype), device, **extra)
        return model, "compressed 2:4 folder, loaded by from_pretrained through polysparse's quantizer"
    if is_sparse_checkpoint(folder):
        wanted = parse_dtype(dtype)
        model = load_sparse(folder, device=device, dtype=None if wanted == "auto" else wanted)
        return model, f"sparse checkpoint ({block.get('format')}), loaded by polysparse.runtime.load_sparse"
    model = _from_pretrained(folder, parse_dtype(dtype), device)
    swap = sparsify_model(model)
    return model, f"Hugging Face folder, {len(swap.swapped)} 2:4 layers swapped for sparse ones"


def load_served_model(folder: str | Path, *, device: str | None = None, dtype: str = "auto") -> ServedModel:
    """Load ``folder`` (model and tokenizer) for serving; raises a user error for what cannot be served."""
    from transformers import AutoTokenizer

    folder = check_model_folder(folder, compressed_ok=True)
    resolved = check_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(
            f"{folder} has no usable tokenizer ({type(error).__name__}: {error}); save the tokenizer into it"
        ) from error
    model, how = load_model(folder, dtype, resolved)
    model.eval()
    served = ServedModel(
        name=folder.resolve().name,
        folder=folder,
        generator=Generator(model, tokenizer),
        backends=backend_report(model),
        how_loaded=how,
    )
    return served
