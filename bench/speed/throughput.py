"""End-to-end throughput, dense vs 2:4 sparse, in one process (``polysparse bench``).

The sparse model is a checkpoint written by :func:`polysparse.runtime.save_sparse` (or any HF folder whose
linear layers are 2:4, e.g. the output of ``polysparse prune --pattern 2:4``, swapped on load). The dense
reference is ``--dense`` if given, else the same weights decompressed back to dense layers in a second copy
(so the two differ only in how the linear layers run). For every prompt length and batch size both models
generate greedily after one untimed warm-up each, then ``repeats`` timed runs alternate dense and sparse
(the order flips every repeat, so slow drift such as clock throttling hits both alike). Reported per
variant: prefill tokens/s and time to first token, decode tokens/s and ms per step, peak memory (CUDA),
weight bytes read per decode step and the bandwidth that implies; median, min and max over the repeats;
which backend the sparse layers actually ran; and a parity check (logits and greedy tokens) of the two
models. See :mod:`polysparse.runtime.timing` for what each clock covers.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polysparse.bench.plans import BenchSetupError, ThroughputPlan
from polysparse.bench.report import DEFAULT_RESULTS_DIR, environment, markdown_table, write_json
from polysparse.bench.studies.cells import CellStore, cell_key
from polysparse.runtime.checkpoint import checkpoint_summary, is_sparse_checkpoint, load_sparse
from polysparse.runtime.graph_decode import graph_decode_reason, time_generation_graphed
from polysparse.runtime.linear import BACKENDS, DispatchTable, backend_runs, reset_backend_runs
from polysparse.runtime.swap import densify_model, sparse_layers, sparsify_model
from polysparse.runtime.timing import PeakMemory, Spread, time_generation, weight_bytes_per_step

log = logging.getLogger("polysparse.bench")

DEFAULT_DISPATCH_FILE = DEFAULT_RESULTS_DIR / "kernels" / "sparse24_matmul.json"
DEFAULT_OUT = DEFAULT_RESULTS_DIR / "throughput"
VARIANTS = ("dense", "sparse")


# ----------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------


def load_pair(
    model: str | Path,
    dense: str | Path | None = None,
    *,
    backend: str = "auto",
    dispatch: DispatchTable | None = None,
    device: torch.device | str = "cpu",
    dtype: str = "auto",
) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """``(dense model, sparse model, what was loaded)`` on ``device``, in eval mode."""
    from polysparse.sparsify.loading import load_causal_lm, parse_dtype

    dispatch = dispatch or DispatchTable()
    cast = parse_dtype(dtype)
    info: dict[str, Any] = {"model": str(model)}
    if is_sparse_checkpoint(model):
        sparse = load_sparse(model, backend=backend, dispatch=dispatch)
        info["checkpoint"] = checkpoint_summary(model)
        reference = None
    else:
        reference, _ = load_causal_lm(model, dtype, tokenizer=False)
        sparse = copy.deepcopy(reference)
        report = sparsify_model(sparse, backend=backend, dispatch=dispatch)
        info["swap"] = report.to_dict()
        if not report.swapped:
            raise BenchSetupError(
                f"{model} has no 2:4 linear layers to swap ({len(report.skipped)} kept dense); "
                "prune it with --pattern 2:4 first"
            )
    if dense is not None:
        reference, _ = load_causal_lm(dense, dtype, tokenizer=False)
        info["dense_reference"] = str(dense)
    elif reference is None:
        reference = load_sparse(model)
        densify_model(reference)
        info["dense_reference"] = "the sparse model's layers decompressed to dense (second copy)"
    else:
        info["dense_reference"] = "the same folder loaded as is (dense layers holding the zeros)"
    if cast != "auto":
        sparse, reference = sparse.to(dtype=cast), reference.to(dtype=cast)
    info["sparse_layers"] = len(sparse_layers(sparse))
    return reference.to(device).eval(), sparse.to(device).eval(), info


# ----------------------------------------------------------------------------------------------------------
# Measuring
# ----------------------------------------------------------------------------------------------------------


def _prompt_ids(vocab: int, batch: int, prompt: int, seed: int, device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + batch * 10_007 + prompt)
    low = min(100, vocab // 2)  # clear of the special tokens at the start of most vocabularies
    return torch.randint(low, vocab, (batch, prompt), generator=generator).to(device)


@torch.inference_mode()
def parity(dense: nn.Module, sparse: nn.Module, input_ids: torch.Tensor) -> dict[str, Any]:
    """Largest logit difference of the two models on ``input_ids`` (relative to the logit scale)."""
    a = dense(input_ids=input_ids).logits.float()
    b = sparse(input_ids=input_ids).logits.float()
    diff = (a - b).abs().max().item()
    scale = a.abs().max().item()
    return {
        "tokens": int(input_ids.numel()),
        "max_abs_logit_diff": diff,
        "max_abs_logit": scale,
        "relative": diff / scale if scale else 0.0,
        "argmax_agreement": float((a.argmax(-1) == b.argmax(-1)).float().mean().item()),
    }


def _vocab_size(model: nn.Module) -> int:
    return int(model.get_input_embeddings().weight.shape[0])


def _check_lengths(model: nn.Module, plan: ThroughputPlan) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    longest = max(plan.prompt_lengths) + plan.new_tokens
    if limit is not None and longest > limit:
        raise BenchSetupError(
            f"prompt {max(plan.prompt_lengths)} + {plan.new_tokens} new tokens exceeds the model's "
            f"max_position_embeddings={limit}"
        )


def decode_modes_here(plan: ThroughputPlan, device: torch.device) -> tuple[list[str], dict[str, str]]:
    """The plan's decode modes that can run on ``device``, and why each other one cannot."""
    skipped = {}
    if "graph" in plan.decode_modes:
        reason = graph_decode_reason(device)
        if reason:
            skipped["graph"] = reason
    return [m for m in plan.decode_modes if m not in skipped], skipped


def _timer(mode: str, plan: ThroughputPlan) -> Callable[..., Any]:
    if mode == "graph":
        return time_generation_graphed
    return lambda model, ids, new_tokens: time_generation(model, ids, new_tokens, cache=plan.cache)


def _row(name: str, mode: str, plan: ThroughputPlan, batch: int, prompt: int, runs, peaks, model) -> dict:
    prefill = Spread.of([r.prefill_s for r in runs])
    decode = Spread.of([r.decode_s for r in runs])
    steps = runs[0].decode_steps
    read = weight_bytes_per_step(model, m=batch)
    return {
        "variant": name,
        "decode_mode": mode,
        "batch": batch,
        "prompt": prompt,
        "new_tokens": plan.new_tokens,
        "ttft_ms": Spread(prefill.median * 1e3, prefill.min * 1e3, prefill.max * 1e3, prefill.n).to_dict(),
        "prefill_tokens_per_s": prefill.scaled(batch * prompt).to_dict(),
        "decode_ms_per_step": Spread(
            decode.median * 1e3 / steps, decode.min * 1e3 / steps, decode.max * 1e3 / steps, decode.n
        ).to_dict(),
        "decode_tokens_per_s": decode.scaled(batch * steps).to_dict(),
        "peak_memory_bytes": None if peaks[0] is None else max(peaks),
        "weight_bytes_per_step": read,
        "weight_bytes_per_token": read / batch,
        "weight_gb_per_s": read * steps / decode.median / 1e9,
    }


def measure(
    dense: nn.Module,
    sparse: nn.Module,
    plan: ThroughputPlan,
    *,
    progress: Callable[[str], None] | None = None,
    cells: CellStore | None = None,
    group: str = "",
) -> dict[str, Any]:
    """Time both models over the plan; return ``rows`` (per variant, decode mode and size), ``speedups``
    and ``decode_modes_skipped`` (a mode the device cannot run, e.g. CUDA graphs on a CPU, and why).

    With ``cells``, every finished (batch, prompt) cell is kept under ``group`` and not measured again
    when an interrupted benchmark is started again.
    """
    device = next(sparse.parameters()).device
    _check_lengths(sparse, plan)
    modes, skipped = decode_modes_here(plan, device)
    if not modes:
        raise BenchSetupError(f"no decode mode of {plan.decode_modes} can run here: {skipped}")
    models = {"dense": dense, "sparse": sparse}
    vocab = _vocab_size(sparse)
    rows, speedups = [], []
    for prompt in plan.prompt_lengths:
        for batch in plan.batch_sizes:
            done = cells.get(group, f"b{batch}-p{prompt}") if cells is not None else None
            if done is not None:
                rows += done["rows"]
                speedups += done["speedups"]
                continue
            ids = _prompt_ids(vocab, batch, prompt, plan.seed, device)
            cell_rows, cell_speedups = [], []
            for mode in modes:
                if progress:
                    progress(f"batch {batch}, prompt {prompt}, {plan.new_tokens} new tokens, {mode} decode")
                timer = _timer(mode, plan)
                for _ in range(plan.warmup):
                    for name in VARIANTS:
                        timer(models[name], ids, plan.new_tokens)
                samples: dict[str, list] = {name: [] for name in VARIANTS}
                peaks: dict[str, list] = {name: [] for name in VARIANTS}
                for repeat in range(plan.repeats):
                    for name in VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]:
                        with PeakMemory(device) as peak:
                            samples[name].append(timer(models[name], ids, plan.new_tokens))
                        peaks[name].append(peak.bytes)
                by_variant = {
                    name: _row(name, mode, plan, batch, prompt, samples[name], peaks[name], models[name])
                    for name in VARIANTS
                }
                cell_rows += [by_variant["dense"], by_variant["sparse"]]
                d, s = by_variant["dense"], by_variant["sparse"]
                cell_speedups.append(
                    {
                        "batch": batch,
                        "prompt": prompt,
                        "decode_mode": mode,
                        "decode": s["decode_tokens_per_s"]["median"] / d["decode_tokens_per_s"]["median"],
                        "prefill": s["prefill_tokens_per_s"]["median"] / d["prefill_tokens_per_s"]["median"],
                        "greedy_tokens_equal": bool(
                            torch.equal(samples["dense"][0].tokens, samples["sparse"][0].tokens)
                        ),
                    }
                )
            rows += cell_rows
            speedups += cell_speedups
            if cells is not None:
                cells.put(group, f"b{batch}-p{prompt}", {"rows": cell_rows, "speedups": cell_speedups})
    return {"rows": rows, "speedups": speedups, "decode_modes_skipped": skipped}


# ----------------------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def markdown(payload: dict[str, Any]) -> str:
    env = payload["environment"]
    ran = ", ".join(
        f"{r['ran']} ({r['calls']} calls"
        + (f"; fallback: {r['fallback_reason']})" if r["fallback_reason"] else ")")
        for r in payload["backends_ran"]
    )
    par = payload["parity"]
    lines = [
        f"# Throughput, dense vs 2:4 sparse: {payload['model_name']}",
        "",
        f"{env['device']} · torch {env['versions']['torch']} · commit {env['commit']} · {env['date']}",
        f"`{env['command']}`",
        "",
        f"Sparse layers: {payload['sparse_layers']}, backend requested: {payload['backend']}; "
        f"ran: {ran or '-'}.",
        f"Dense reference: {payload['dense_reference']}.",
        f"Parity on {par['tokens']} tokens: max |logit diff| {par['max_abs_logit_diff']:.3g} "
        f"(max |logit| {par['max_abs_logit']:.3g}), argmax agreement {par['argmax_agreement']:.1%}.",
        f"Timing: {payload['timing']}",
        *(
            f"Decode mode {mode} not measured: {why}."
            for mode, why in (payload.get("decode_modes_skipped") or {}).items()
        ),
        f"Machine load (1-min average, {payload['load_average_1min']['cpus']} CPUs): "
        f"{_fmt(payload['load_average_1min']['before'])} before, "
        f"{_fmt(payload['load_average_1min']['after'])} after.",
        "",
    ]
    rows = [
        [
            r["batch"],
            r["prompt"],
            r.get("decode_mode", "eager"),
            r["variant"],
            r["prefill_tokens_per_s"]["median"],
            r["ttft_ms"]["median"],
            r["decode_tokens_per_s"]["median"],
            f"{r['decode_tokens_per_s']['min']:.4g}-{r['decode_tokens_per_s']['max']:.4g}",
            r["weight_gb_per_s"],
            _mib(r["peak_memory_bytes"]),
        ]
        for r in payload["rows"]
    ]
    lines.append(
        markdown_table(
            [
                "batch",
                "prompt",
                "decode",
                "model",
                "prefill tok/s",
                "TTFT ms",
                "decode tok/s",
                "decode range",
                "weight GB/s",
                "peak MiB",
            ],
            rows,
        )
    )
    lines.append("Sparse / dense (medians):\n")
    lines.append(
        markdown_table(
            ["batch", "prompt", "decode", "decode speedup", "prefill speedup", "greedy tokens equal"],
            [
                [
                    s["batch"],
                    s["prompt"],
                    s.get("decode_mode", "eager"),
                    s["decode"],
                    s["prefill"],
                    s["greedy_tokens_equal"],
                ]
                for s in payload["speedups"]
            ],  # fmt: skip
        )
    )
    return "\n".join(lines)


def plot(payload: dict[str, Any], path: Path) -> Path | None:
    """Decode and prefill tokens/s per batch size, dense vs sparse; ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: no plot")
        return None
    mode = payload["rows"][0].get("decode_mode", "eager")  # the first decode mode measured (graph on CUDA)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, title in (
        (axes[0], "decode_tokens_per_s", "decode"),
        (axes[1], "prefill_tokens_per_s", "prefill"),
    ):
        for prompt in sorted({r["prompt"] for r in payload["rows"]}):
            for variant, style in (("dense", "o--"), ("sparse", "s-")):
                rows = [
                    r for r in payload["rows"]
                    if (r["prompt"], r["variant"], r.get("decode_mode", "eager")) == (prompt, variant, mode)
                ]  # fmt: skip
                ax.plot(
                    [r["batch"] for r in rows],
                    [r[metric]["median"] for r in rows],
                    style,
                    label=f"{variant}, prompt {prompt}",
                )
        ax.set_xlabel("batch size")
        ax.set_ylabel("tokens / s")
        ax.set_title(title)
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=7)
    fig.suptitle(f"{payload['model_name']} on {payload['environment']['device']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_results(
    payload: dict[str, Any], out_dir: str | Path, stem: str, *, with_plot: bool = True
) -> list[Path]:
    out = Path(out_dir)
    paths = [write_json(out / f"{stem}.json", payload)]
    md = out / f"{stem}.md"
    md.write_text(markdown(payload), encoding="utf-8")
    paths.append(md)
    if with_plot:
        png = plot(payload, out / f"{stem}.png")
        if png is not None:
            paths.append(png)
    return paths


TIMING_NOTE = (
    "wall clock, device synchronised before every read; warm-up excluded; median (min-max) over the repeats, "
    "dense and sparse alternating. TTFT = prefill forward + first token; decode = the remaining steps, "
    "'graph': static KV cache, each step one replay of a CUDA graph (no launch overhead), 'eager': one "
    "launch per kernel (launch overhead included). "
    "Weight GB/s = weight bytes read per decode step (what the backend that ran reads) x steps / decode time."
)


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def benchmark_models(
    dense: nn.Module,
    sparse: nn.Module,
    plan: ThroughputPlan,
    *,
    model_name: str,
    backend: str,
    info: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    cells: CellStore | None = None,
    group: str = "",
) -> dict[str, Any]:
    """Parity check and timing of two loaded models; the payload :func:`write_results` writes."""
    device = next(sparse.parameters()).device
    ids = _prompt_ids(_vocab_size(sparse), 1, min(32, max(plan.prompt_lengths)), plan.seed + 1, device)
    reset_backend_runs()
    load_before = _load_average()
    checked = parity(dense, sparse, ids)
    measured = measure(dense, sparse, plan, progress=progress, cells=cells, group=group)
    info = dict(info or {})
    return {
        "benchmark": "throughput",
        "model_name": model_name,
        "environment": environment(device),
        "plan": asdict(plan),
        "backend": backend,
        "dispatch": next(iter(sparse_layers(sparse).values())).dispatch.to_dict()
        if sparse_layers(sparse)
        else None,
        "sparse_layers": len(sparse_layers(sparse)),
        "dense_reference": info.pop("dense_reference", "given"),
        "load": info,
        "parity": checked,
        "timing": TIMING_NOTE,
        # Other processes on the machine slow both variants (and inflate the spread): say how busy it was.
        "load_average_1min": {"before": load_before, "after": _load_average(), "cpus": os.cpu_count()},
        "backends_ran": backend_runs(),
        **measured,
    }


_DEFAULT_PLAN = ThroughputPlan()


def run_throughput(
    *,
    model: str | Path,
    dense: str | Path | None = None,
    plan: ThroughputPlan = _DEFAULT_PLAN,
    backend: str = "auto",
    device: str | None = None,
    dtype: str = "auto",
    dispatch: str | Path | None = None,
    out: str | Path | None = None,
    with_plot: bool = True,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], list[Path]]:
    """Load, measure, write ``throughput_<model>_<device>.{json,md,png}`` under ``out``."""
    from polysparse.sparsify.walk import resolve_device

    if backend not in BACKENDS:
        raise BenchSetupError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    target = resolve_device(device)
    table = DispatchTable.load_default(dispatch if dispatch is not None else DEFAULT_DISPATCH_FILE)
    dense_model, sparse_model, info = load_pair(
        model, dense, backend=backend, dispatch=table, device=target, dtype=dtype
    )
    name = Path(str(model).rstrip("/")).name
    stem = f"throughput_{name}_{torch.device(target).type}"
    out_dir = Path(out if out is not None else DEFAULT_OUT)
    # Cells of an interrupted run of the very same benchmark are reused; a finished run removes them,
    # so running the command again measures afresh.
    cells_dir = out_dir / f".{stem}.cells"
    group = cell_key(
        "run", {"model": str(Path(model).resolve()), "dense": str(dense), "plan": asdict(plan),
                "backend": backend, "device": str(target), "dtype": dtype},
    )  # fmt: skip
    payload = benchmark_models(
        dense_model, sparse_model, plan, model_name=name, backend=backend, info=info, progress=progress,
        cells=CellStore(cells_dir), group=group,
    )  # fmt: skip
    paths = write_results(payload, out_dir, stem, with_plot=with_plot)
    shutil.rmtree(cells_dir, ignore_errors=True)
    return payload, paths
