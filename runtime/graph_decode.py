"""Decode timed without launch overhead: the decode step captured once in a CUDA graph and replayed.

A decode step of a small model (Gemma 3 270M, or a few blocks of Llama-3-8B) is a few hundred kernel
launches of a few microseconds each; timed eagerly, the launches and the Python around them set the time
and hide any kernel speedup. gpt-fast and vLLM time decode with a static KV cache under CUDA graphs for this
reason; :func:`time_generation_graphed` does the same with an explicit ``torch.cuda.CUDAGraph``:

* prefill runs eagerly into a ``StaticCache`` (fixed shapes, updated in place at ``cache_position``);
* one decode step (forward of the current token at a device-side ``cache_position``, greedy argmax, the
  token and position advanced in place) is run twice on a side stream to warm up (Triton autotuning and
  lazy allocations happen there, not during capture), then captured;
* the timed loop replays the graph ``new_tokens - 1`` times: one launch per token.

Replays write the same cache slots the warm-up steps wrote, from the same first token, so the tokens are
those of an eager greedy decode. Dense and sparse models go through the same code; the sparse layers'
custom op (``polysparse::sparse24_linear``) is graph-safe (no host synchronisation, allocations from the
graph's pool). The eager path stays :func:`polysparse.runtime.timing.time_generation`.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from polysparse.runtime.timing import GenerationTiming, _cache_keyword, _returned_cache, synchronize

WARMUP_STEPS = 2


def graph_decode_reason(device: torch.device | str) -> str | None:
    """``None`` when decode can be captured in a CUDA graph on ``device``, else why not."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, not {device.type}"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


@torch.inference_mode()
def time_generation_graphed(model: nn.Module, input_ids: torch.Tensor, new_tokens: int) -> GenerationTiming:
    """Greedy generation like :func:`~polysparse.runtime.timing.time_generation` with a static cache, the
    decode steps replayed from one CUDA graph (see the module docstring)."""
    from transformers import StaticCache

    if new_tokens < 2:
        raise ValueError("new_tokens must be at least 2 (one prefill token, one decode step)")
    reason = graph_decode_reason(input_ids.device)
    if reason:
        raise RuntimeError(f"decode under CUDA graphs: {reason}")
    device = input_ids.device
    prompt = input_ids.shape[1]
    cache = StaticCache(config=model.config, max_cache_len=prompt + new_tokens)
    keyword = _cache_keyword(model)
    synchronize(device)
    start = time.perf_counter()
    positions = torch.arange(prompt, device=device)
    out = model(input_ids=input_ids, **{keyword: cache}, cache_position=positions, use_cache=True,
                logits_to_keep=1)  # fmt: skip
    first = out.logits[:, -1].argmax(-1, keepdim=True)
    synchronize(device)
    prefilled = time.perf_counter()
    cache = _returned_cache(out) or cache

    token = first.clone()  # the graph's inputs and outputs: fixed addresses, updated in place
    position = torch.full((1,), prompt, dtype=torch.long, device=device)

    def step() -> torch.Tensor:
        logits = model(input_ids=token, **{keyword: cache}, cache_position=position, use_cache=True).logits
        chosen = logits[:, -1].argmax(-1, keepdim=True)
        token.copy_(chosen)
        position.add_(1)
        return chosen

    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(WARMUP_STEPS):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        chosen = step()
    # Back to the first decode step: the replays rewrite the slots the warm-up wrote.
    token.copy_(first)
    position.fill_(prompt)
    tokens = [first]
    synchronize(device)
    decode_start = time.perf_counter()
    for _ in range(new_tokens - 1):
        graph.replay()
        tokens.append(chosen.clone())
    synchronize(device)
    done = time.perf_counter()
    return GenerationTiming.of(start, prefilled, decode_start, done, tokens)
