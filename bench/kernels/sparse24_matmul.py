"""Benchmark: 2:4 sparse linear against dense, provider by provider, on real model shapes.

    python -P -m polysparse.bench.kernels.sparse24_matmul [--out DIR] [--dtype fp16|bf16] [--m 1,4,16] \
        [--smoke]

Providers, side by side in one process and on the same weights:

* ``dense``: ``F.linear`` on the dense weight with zeros (cuBLAS);
* ``torch-cusparselt`` / ``torch-cutlass``: ``F.linear`` on PyTorch's ``SparseSemiStructuredTensor``, where
  this torch build and GPU have it (otherwise recorded as unavailable, with the reason);
* ``triton``: :func:`polysparse.kernels.sparse24_matmul.sparse24_linear` with ``impl="triton"`` (metadata
  rows padded by :func:`polysparse.kernels.sparse24.aligned_meta`, as a runtime would hold them).

Shapes are the linear layers of Llama-3-8B and Gemma 3 270M at M = 1 .. 4096 tokens. Timing: every provider
is captured in a CUDA graph that calls it many times, cycling over enough copies of the weight to exceed
twice the L2 cache, so the weight is read from DRAM as it would be in a full model and no CPU launch overhead
is counted; CUDA events around graph replays, warm-up (and autotuning) excluded, median over trials. A
provider that cannot be captured is timed eagerly with the same rotation (``"timer": "eager"``).

Reported per (shape, M, provider): milliseconds, TFLOP/s (``2 M N K`` dense-equivalent FLOPs), achieved GB/s
over the bytes it must move (x, weight or values + metadata, y), the speedup over dense, and the bandwidth
bound of that speedup (dense bytes / sparse bytes, 1.78x as M -> 1). The JSON also carries the dispatch
table (for each shape and ``ceil(log2(M))`` bucket, the fastest provider) for the runtime. Every provider's
output is checked against dense before it is timed. If the Triton provider ever fell back to the PyTorch
reference, the run raises instead of reporting.

``--smoke`` runs tiny shapes on CPU through Triton's interpreter (reference vs kernel, wall-clock timing,
numbers meaningless) so that a test can check the whole path; its files are named ``*_smoke.*``.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from polysparse.bench.kernels import _common
from polysparse.bench.report import DEFAULT_RESULTS_DIR, environment, write_json

MODELS: dict[str, list[tuple[str, int, int]]] = {
    # (layer, in_features, out_features)
    "llama-3-8b": [
        ("q_proj/o_proj", 4096, 4096),
        ("k_proj/v_proj", 4096, 1024),
        ("gate_proj/up_proj", 4096, 14336),
        ("down_proj", 14336, 4096),
    ],
    "qwen2.5-7b": [
        ("q_proj/o_proj", 3584, 3584),
        ("k_proj/v_proj", 3584, 512),
        ("gate_proj/up_proj", 3584, 18944),
        ("down_proj", 18944, 3584),
    ],
    "gemma-3-270m": [
        ("q_proj", 640, 1024),
        ("k_proj/v_proj", 640, 256),
        ("o_proj", 1024, 640),
        ("gate_proj/up_proj", 640, 2048),
        ("down_proj", 2048, 640),
    ],
}
M_VALUES = (1, 2, 4, 16, 64, 256, 2048, 4096)  # 1 | 2: the GEMV's limit; 16 | 64: the decode kernel's
SMOKE_MODELS = {"smoke": [("tiny", 64, 64), ("odd", 192, 128)]}
SMOKE_M = (1, 3, 17)
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
PROVIDERS = ("dense", "torch-cusparselt", "torch-cutlass", "triton")
TRITON_OPS = ("sparse24_linear",)


@dataclass
class Measurement:
    model: str
    layer: str
    in_features: int
    out_features: int
    m: int
    m_bucket: int
    provider: str
    ms: float | None = None
    tflops: float | None = None
    gbps: float | None = None
    bytes_moved: int | None = None
    speedup_vs_dense: float | None = None
    bandwidth_bound: float | None = None
    max_abs_err_vs_dense: float | None = None
    timer: str | None = None
    config: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def dense_bytes(m: int, k: int, n: int, elem: int = 2) -> int:
    return elem * (m * k + n * k + m * n)


def sparse_bytes(m: int, k: int, n: int, elem: int = 2) -> int:
    # values (N x K/2) + metadata (4 bits per group of four = K/8 bytes per row)
    return elem * (m * k + m * n) + elem * n * k // 2 + n * k // 8


# ----------------------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------------------


def _l2_bytes(device: torch.device) -> int:
    return int(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 * 2**20))


def _rotation(calls: Sequence[Callable[[], Any]], min_calls: int) -> tuple[Callable[[], None], int]:
    """One function that runs ``calls`` in turn (at least ``min_calls`` of them), and how many it runs."""
    count = len(calls) * math.ceil(min_calls / len(calls))

    def run() -> None:
        for i in range(count):
            calls[i % len(calls)]()

    return run, count


def time_cuda(calls: Sequence[Callable[[], Any]], min_calls: int = 64) -> tuple[float, str]:
    """Median milliseconds per call over CUDA-graph replays cycling through ``calls`` (else eager)."""
    for call in calls:  # warm-up: compilation, autotuning, cuBLAS/cuSPARSELt handles
        call()
    torch.cuda.synchronize()
    run, count = _rotation(calls, min_calls)
    ms, timer = _common.cuda_ms(run, graph=True)
    return ms / count, timer


def time_cpu(calls: Sequence[Callable[[], Any]], trials: int = 3) -> tuple[float, str]:
    run, count = _rotation(calls, len(calls))
    return _common.wall_ms(run, trials) / count, "cpu-wall"


# ----------------------------------------------------------------------------------------------------------
# Providers
# ----------------------------------------------------------------------------------------------------------


def _copies(k: int, n: int, elem: int, device: torch.device, smoke: bool) -> int:
    if smoke:
        return 1
    weight = n * k * elem
    return max(1, min(512, math.ceil(2 * _l2_bytes(device) / weight) + 1))


def _weights(k: int, n: int, dtype: torch.dtype, device: torch.device, copies: int, seed: int):
    """``copies`` distinct 2:4 weights: ``[(dense, values, meta)]``."""
    from polysparse.kernels.sparse24 import decompress_24, prune_and_compress_24

    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    for _ in range(copies):
        w = torch.randn(n, k, generator=gen, device=device, dtype=dtype)
        values, meta = prune_and_compress_24(w)
        out.append((decompress_24(values, meta), values, meta))
    return out


def _provider_calls(provider: str, x: torch.Tensor, weights) -> tuple[list[Callable[[], Any]], str | None]:
    """One call per weight copy for ``provider``, and the configuration note (or raise if unavailable)."""
    from polysparse.kernels import sparse24 as s24
    from polysparse.kernels import sparse24_convert as s24c
    from polysparse.kernels.sparse24_matmul import sparse24_linear

    if provider == "dense":
        return [lambda w=w: F.linear(x, w) for w, _, _ in weights], "cuBLAS" if x.is_cuda else "torch CPU"
    if provider.startswith("torch-"):
        reason = s24c.semi_structured_reason(x.device)
        if reason is not None:
            raise RuntimeError(reason)
        backend = provider.removeprefix("torch-")
        if backend == "cusparselt" and not torch.backends.cusparselt.is_available():
            raise RuntimeError("this torch build has no cuSPARSELt")
        sparse = [s24c.to_torch_semi_structured(v, m, backend=backend) for _, v, m in weights]
        return [lambda t=t: F.linear(x, t) for t in sparse], backend
    if provider == "triton":
        # as the runtime holds it: metadata rows 16-byte aligned (format version 2), loads vectorise
        aligned = [(v, s24.aligned_meta(m)) for _, v, m in weights]
        return [lambda v=v, m=m: sparse24_linear(x, v, m, impl="triton") for v, m in aligned], None
    raise ValueError(f"unknown provider {provider!r}")


def _triton_config(x: torch.Tensor, k: int, n: int) -> str:
    """The kernel the op dispatched this M to, its tuned configuration and K-splits."""
    from polysparse.kernels import sparse24_decode_mma as dm
    from polysparse.kernels import sparse24_gemv as gemv
    from polysparse.kernels import sparse24_matmul as sm

    m = x.shape[0]
    if m <= sm.GEMV_MAX_M:
        best = sm.tuned_config("gemv")
        return f"gemv {best}; SPLIT_K={gemv.gemv_split_k(m, n, k, x.device)}"
    if m <= sm.DECODE_MAX_M:
        best = dm.tuned_config()
        return f"decode_mma {best}; SPLIT_K={sm.decode_split_k(n, k, x.device)}"
    best = sm.tuned_config("dot")
    return f"dot {best}; SPLIT_K={sm.default_split_k(m, n, k, x.device)}"


# ----------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------


def _fallbacks() -> int:
    from polysparse.kernels.dispatch import fallback_counts

    return sum(count for (op, _), count in fallback_counts.items() if op in TRITON_OPS)


def measure_shape(
    model: str,
    layer: str,
    k: int,
    n: int,
    ms: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
    smoke: bool,
) -> list[Measurement]:
    from polysparse.kernels.sparse24_matmul import m_bucket

    elem = torch.finfo(dtype).bits // 8
    weights = _weights(k, n, dtype, device, _copies(k, n, elem, device, smoke), seed=k * 100003 + n)
    gen = torch.Generator(device=device).manual_seed(n * 7 + k)
    rows = []
    for m in ms:
        x = torch.randn(m, k, generator=gen, device=device, dtype=dtype)
        reference = F.linear(x.float(), weights[0][0].float())
        scale = reference.abs().max().item() + 1.0
        bound = dense_bytes(m, k, n, elem) / sparse_bytes(m, k, n, elem)
        by_provider: dict[str, Measurement] = {}
        for provider in PROVIDERS:
            row = Measurement(model, layer, k, n, m, m_bucket(m), provider, bandwidth_bound=bound)
            by_provider[provider] = row
            rows.append(row)
            try:
                calls, row.config = _provider_calls(provider, x, weights)
                y = calls[0]()
            except Exception as exc:
                if provider == "triton":
                    raise
                row.error = f"{type(exc).__name__}: {exc}"
                continue
            err = (y.float() - reference).abs().max().item()
            row.max_abs_err_vs_dense = err
            # fp32-accumulated products of 2-byte floats: a few output ulps of the largest entry
            if not err <= 3 * torch.finfo(dtype).eps * scale:
                message = f"{provider} differs from the dense product by {err:.3g} (scale {scale:.3g})"
                if provider == "triton":
                    raise AssertionError(f"{model} {layer} M={m}: {message}")
                row.error = message
                continue
            row.ms, row.timer = time_cpu(calls, trials=1) if smoke else time_cuda(calls)
            if provider == "triton":
                row.config = _triton_config(x, k, n) if not smoke else "interpreter"
            moved = dense_bytes(m, k, n, elem) if provider == "dense" else sparse_bytes(m, k, n, elem)
            row.bytes_moved = moved
            row.tflops = 2 * m * n * k / (row.ms * 1e-3) / 1e12
            row.gbps = moved / (row.ms * 1e-3) / 1e9
        dense_ms = by_provider["dense"].ms
        for row in by_provider.values():
            if row.ms is not None and dense_ms is not None:
                row.speedup_vs_dense = dense_ms / row.ms
    return rows


def dispatch_table(rows: Sequence[Measurement]) -> list[dict[str, Any]]:
    """For each (in, out, M bucket): the fastest provider, every provider's time (ms) and the M measured.

    Buckets are ``ceil(log2(M))``; a reader picks the nearest measured bucket for the ones in between.
    """
    cells: dict[tuple[int, int, int], dict[str, float]] = {}
    measured_m: dict[tuple[int, int, int], set[int]] = {}
    for row in rows:
        if row.ms is not None:
            key = (row.in_features, row.out_features, row.m_bucket)
            cell = cells.setdefault(key, {})
            cell[row.provider] = min(row.ms, cell.get(row.provider, math.inf))
            measured_m.setdefault(key, set()).add(row.m)
    return [
        {
            "in_features": k,
            "out_features": n,
            "m_bucket": b,
            "m": sorted(measured_m[(k, n, b)]),
            "best": min(times, key=times.get),
            "ms": times,
        }
        for (k, n, b), times in sorted(cells.items())
    ]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(rows: Sequence[Measurement], env: dict[str, Any], dtype_name: str) -> str:
    lines = [
        f"# 2:4 sparse linear vs dense ({dtype_name})",
        "",
        f"{env['device']} · torch {env['versions']['torch']} · triton {env['versions']['triton']} · "
        f"commit {env['commit']} · {env['date']}",
        "",
        "| model | layer | K -> N | M | provider | ms | TFLOP/s | GB/s | vs dense | bound | note |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        note = (r.error or r.timer or "").replace("|", "/")
        lines.append(
            f"| {r.model} | {r.layer} | {r.in_features} -> {r.out_features} | {r.m} | {r.provider} | "
            f"{_fmt(r.ms, '.4f')} | {_fmt(r.tflops, '.1f')} | {_fmt(r.gbps, '.0f')} | "
            f"{_fmt(r.speedup_vs_dense, '.2f')} | {_fmt(r.bandwidth_bound, '.2f')} | {note} |"
        )
    lines += ["", "Dispatch (fastest provider per shape and ceil(log2 M) bucket):", ""]
    lines += ["| K -> N | M bucket | best |", "| --- | ---: | --- |"]
    for cell in dispatch_table(rows):
        lines.append(
            f"| {cell['in_features']} -> {cell['out_features']} | {cell['m_bucket']} | {cell['best']} |"
        )
    return "\n".join(lines) + "\n"


def run(
    out_dir: Path,
    *,
    dtype_name: str = "fp16",
    ms: Sequence[int] | None = None,
    models: Sequence[str] | None = None,
    smoke: bool = False,
) -> dict[str, Any]:
    """Measure, write ``sparse24_matmul[_bf16][_smoke].{json,md}`` under ``out_dir``, return the payload."""
    from polysparse.kernels.dispatch import interpreter_enabled

    if smoke:
        device = torch.device("cpu" if interpreter_enabled() else "cuda")
        shapes, ms = SMOKE_MODELS, ms or SMOKE_M
    else:
        if interpreter_enabled() or not torch.cuda.is_available():
            raise SystemExit(
                "this benchmark needs a CUDA GPU with TRITON_INTERPRET unset (use --smoke on CPU)"
            )
        device = torch.device("cuda")
        shapes = {name: MODELS[name] for name in (models or MODELS)}
        ms = ms or M_VALUES
    dtype = DTYPES[dtype_name]
    before = _fallbacks()
    rows: list[Measurement] = []
    for model, layers in shapes.items():
        for layer, k, n in layers:
            rows += measure_shape(model, layer, k, n, ms, dtype, device, smoke)
    if _fallbacks() != before:
        raise RuntimeError(
            "the Triton provider fell back to the PyTorch reference: refusing to report its numbers"
        )
    env = environment(device)
    payload = {
        "benchmark": "sparse24_matmul",
        "environment": env,
        "dtype": dtype_name,
        "smoke": smoke,
        "timing": "cpu wall clock (interpreter)" if smoke else "CUDA graph replays, weights rotated past L2",
        "providers": list(PROVIDERS),
        "measurements": [asdict(r) for r in rows],
        "dispatch_table": dispatch_table(rows),
    }
    stem = "sparse24_matmul" + ("_bf16" if dtype_name == "bf16" else "") + ("_smoke" if smoke else "")
    write_json(out_dir / f"{stem}.json", payload)
    (out_dir / f"{stem}.md").write_text(markdown(rows, env, dtype_name), encoding="utf-8")
    return payload


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m polysparse.bench.kernels.sparse24_matmul", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR / "kernels", help="output folder")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp16")
    parser.add_argument("--m", type=_int_list, default=None, help="comma-separated token counts")
    parser.add_argument("--models", type=lambda s: s.split(","), default=None, help=",".join(MODELS))
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on CPU through the interpreter")
    args = parser.parse_args(argv)
    if args.smoke and not torch.cuda.is_available():
        # Triton reads this when the kernel modules are imported (they are imported lazily, below).
        os.environ.setdefault("TRITON_INTERPRET", "1")
    payload = run(args.out, dtype_name=args.dtype, ms=args.m, models=args.models, smoke=args.smoke)
    print((args.out / "").as_posix(), "->", len(payload["measurements"]), "measurements")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
