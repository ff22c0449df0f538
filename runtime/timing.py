"""Honest timing of prefill and decode (gpt-fast style): synchronise before every clock read, exclude
warm-up, repeat, report the median and the spread.

One :func:`time_generation` call runs greedy generation by hand, so the two phases are separated exactly:

* **prefill**: one forward over the whole prompt (only the last position's logits are computed) and the
  choice of the first new token. Its duration is the time to first token; ``batch * prompt / duration`` is
  the prefill throughput.
* **decode**: the remaining ``new_tokens - 1`` single-token forwards through the KV cache;
  ``batch * steps / duration`` is the decode throughput.

Each decode step reads every weight once (the input embedding only for the looked-up rows), so
:func:`weight_bytes_per_step` divided by the time per step is the weight bandwidth achieved, a lower bound of
the memory traffic (the KV cache and activations come on top).
"""

from __future__ import annotations

import inspect
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from polysparse.runtime.linear import Sparse24Linear

CacheKind = Literal["dynamic", "static"]


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU, where calls are synchronous)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "xpu" and hasattr(torch, "xpu"):
        torch.xpu.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@dataclass(frozen=True)
class Spread:
    """Median and range of repeated measurements."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        if not samples:
            raise ValueError("no samples")
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    def scaled(self, numerator: float) -> Spread:
        """``numerator / x`` of every sample statistic (a rate from durations: the range flips)."""
        return Spread(numerator / self.median, numerator / self.max, numerator / self.min, self.n)

    def to_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.min, "max": self.max, "n": self.n}


@dataclass(frozen=True)
class GenerationTiming:
    prefill_s: float
    decode_s: float
    decode_steps: int
    tokens: torch.Tensor  # (batch, new_tokens), on the CPU

    @classmethod
    def of(cls, start: float, prefilled: float, decode_start: float, done: float, tokens: list[torch.Tensor]):
        """From the clock readings around prefill and decode, and the tokens chosen (the first by prefill)."""
        steps = len(tokens) - 1
        return cls(prefilled - start, done - decode_start, steps, torch.cat(tokens, dim=1).cpu())


def _new_cache(model: nn.Module, kind: CacheKind, max_len: int):
    if kind == "dynamic":
        return None  # the model creates the right DynamicCache (sliding layers included) itself
    if kind == "static":
        from transformers import StaticCache

        return StaticCache(config=model.config, max_cache_len=max_len)
    raise ValueError(f"cache must be 'dynamic' or 'static', got {kind!r}")


def _cache_keyword(model: nn.Module) -> str:
    """The name the model's forward takes its KV cache under: transformers 5.2x renamed
    ``past_key_values`` to ``cache`` (the old name is accepted with a warning until 5.40); the GPU image's
    5.17 knows only the old one."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _returned_cache(output):
    cache = output.get("cache")
    return cache if cache is not None else output.get("past_key_values")


@torch.inference_mode()
def time_generation(
    model: nn.Module, input_ids: torch.Tensor, new_tokens: int, *, cache: CacheKind = "dynamic"
) -> GenerationTiming:
    """Greedy generation of ``new_tokens`` tokens after ``input_ids`` (``batch x prompt``), timed by phase."""
    if new_tokens < 1:
        raise ValueError("new_tokens must be at least 1")
    device = input_ids.device
    past = _new_cache(model, cache, input_ids.shape[1] + new_tokens)
    keyword = _cache_keyword(model)
    tokens = []
    synchronize(device)
    start = time.perf_counter()
    out = model(input_ids=input_ids, **{keyword: past}, use_cache=True, logits_to_keep=1)
    token = out.logits[:, -1].argmax(-1, keepdim=True)
    synchronize(device)
    prefilled = time.perf_counter()
    tokens.append(token)
    past = _returned_cache(out)
    for _ in range(new_tokens - 1):
        out = model(input_ids=token, **{keyword: past}, use_cache=True)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        past = _returned_cache(out)
        tokens.append(token)
    synchronize(device)
    done = time.perf_counter()
    return GenerationTiming.of(start, prefilled, prefilled, done, tokens)


def weight_bytes_per_step(model: nn.Module, m: int = 1) -> int:
    """Bytes of weights one forward of ``m`` tokens reads: every parameter and persistent buffer once
    (shared storage once), except an input embedding table that is not also the output projection (only
    its rows are read). A :class:`Sparse24Linear` counts what the backend it runs at ``m`` reads: values +
    metadata for ``triton`` / ``torch``, the dense weight for ``dense``."""
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    seen: set[int] = set()
    if embedding is not None and (output is None or output.weight.data_ptr() != embedding.weight.data_ptr()):
        seen.add(embedding.weight.data_ptr())
    total = 0
    for layer in model.modules():
        if not isinstance(layer, Sparse24Linear):
            continue
        seen.update(t.data_ptr() for t in (layer.values, layer.meta, layer.bias) if t is not None)
        backend, _ = layer.backend_for(m)
        bias = 0 if layer.bias is None else layer.bias.numel() * layer.bias.element_size()
        if backend == "dense":
            total += layer.out_features * layer.in_features * layer.values.element_size() + bias
        else:
            total += layer.compressed_nbytes()
    for tensor in model.state_dict().values():
        ptr = tensor.data_ptr()
        if ptr in seen or tensor.is_meta:
            continue
        seen.add(ptr)
        total += tensor.numel() * tensor.element_size()
    return total


class PeakMemory:
    """Peak allocated bytes on a CUDA device over a ``with`` block; ``None`` elsewhere (the CPU allocator
    keeps no per-block peak that means the same thing)."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.bytes: int | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.bytes = int(torch.cuda.max_memory_allocated(self.device))
