"""What every kernel benchmark shares: the command line, the timer, the fallback guard and the result file.

Timing on a GPU is Triton's: ``triton.testing.do_bench`` (median, warm-up excluded, L2 flushed between runs),
or ``do_bench_cudagraph`` for calls short enough that launch overhead would dominate (replays of a captured
CUDA graph; ``do_bench`` where a provider cannot be captured); calls of seconds take CUDA events around whole
calls (see :func:`timer`). On CPU, ``--smoke`` runs tiny shapes through
Triton's interpreter with a wall clock, to prove the script end to end; those numbers mean nothing about
speed and the file says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from polysparse.bench.report import DEFAULT_RESULTS_DIR, environment, write_json

RESULTS_DIR = DEFAULT_RESULTS_DIR / "kernels"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"result folder (default {RESULTS_DIR})")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny shapes; on CPU through TRITON_INTERPRET=1 (proves the script works, measures nothing)",
    )
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu (needs --smoke)")
    return p


def resolve_device(requested: str | None, smoke: bool) -> torch.device:
    """The device to run on; on CPU, switch the interpreter on before any kernel module is imported."""
    device = torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return device
    if not smoke:
        raise SystemExit("kernel benchmarks need a CUDA device; on CPU only --smoke runs (interpreter)")
    # Triton reads the variable when @triton.jit decorates the kernels, i.e. at their first import.
    os.environ.setdefault("TRITON_INTERPRET", "1")
    return device


def timer(device: torch.device, *, fast: bool, reps: int) -> Callable[[Callable[[], Any]], float]:
    """A function returning the median milliseconds of one call of ``fn``, warm-up excluded.

    ``fast=False`` is for calls of seconds (the PyTorch reference loops): ``do_bench`` would first run five
    calls to estimate the time and then its warm-up, doubling a long benchmark for no better number, so those
    take ``reps`` calls between CUDA events after one warm-up call (``reps`` is also the repetition count of
    a CPU smoke run).
    """
    if device.type == "cuda" and fast:
        return lambda fn: cuda_ms(fn)[0]
    if device.type == "cuda":
        return lambda fn: _cuda_event_ms(fn, reps)
    return lambda fn: wall_ms(fn, reps)


def _cuda_event_ms(fn: Callable[[], Any], reps: int) -> float:
    fn()  # warm-up: compilation and allocations stay out of the numbers
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def cuda_ms(fn: Callable[[], Any], *, graph: bool = False) -> tuple[float, str]:
    """Median milliseconds of one call of ``fn`` on the current CUDA device, and the timer used.

    ``graph=True`` replays a CUDA graph of ``fn`` (``do_bench_cudagraph``: no launch overhead, no L2 flush, so
    ``fn`` should rotate its weights past L2 itself); a provider that cannot be captured is timed with
    ``do_bench`` instead.
    """
    import triton.testing

    if graph:
        try:
            return float(triton.testing.do_bench_cudagraph(fn, rep=100, return_mode="median")), "cudagraph"
        except Exception:  # noqa: BLE001 - any capture failure: time the same calls eagerly
            torch.cuda.synchronize()
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")), "eager"


def wall_ms(fn: Callable[[], Any], reps: int) -> float:
    """Median wall-clock milliseconds of one call of ``fn`` over ``reps`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


@contextmanager
def no_fallback(ops: Iterable[str]):
    """Raise if any of ``ops`` fell back to its PyTorch reference inside the block.

    A number the reference produced must never be reported as the kernel's.
    """
    from polysparse.kernels.dispatch import fallback_counts

    ops = set(ops)
    before = Counter(fallback_counts)
    yield
    fell_back = {key: n for key, n in (fallback_counts - before).items() if key[0] in ops}
    if fell_back:
        raise RuntimeError(f"the Triton path fell back to the reference, refusing to report: {fell_back}")


def write_result(out_dir: Path, name: str, body: dict[str, Any], *, smoke: bool, device) -> Path:
    """``<out>/<name>.json`` (``<name>-smoke.json`` for smoke runs, so they never overwrite GPU numbers)."""
    payload = {"benchmark": name, "mode": "smoke" if smoke else "full", "environment": environment(device)}
    payload |= body
    path = Path(out_dir) / f"{name}{'-smoke' if smoke else ''}.json"
    return write_json(path, payload)


def report(args, name: str, body: dict[str, Any], device, cuda_timing: str) -> dict[str, Any]:
    """Write ``body`` (plus how it was timed) as ``name``'s result, print its table and where it went."""
    cpu_timing = "CPU wall clock through the Triton interpreter: not a speed measurement"
    body = {**body, "timing": cuda_timing if device.type == "cuda" else cpu_timing}
    path = write_result(args.out, name, body, smoke=args.smoke, device=device)
    print_results(body["results"])
    print(f"wrote {path}")
    return body


def print_results(results: list[dict[str, Any]]) -> None:
    """One line per (op, shape): every provider's milliseconds, then the speedup over the baseline."""
    providers = list(dict.fromkeys(name for r in results for name in r["ms"]))
    rows = [
        {
            "op": r["op"],
            "shape": " ".join(filter(None, [r.get("layer"), "x".join(map(str, r["shape"]))])),
            **{f"{name} ms": r["ms"].get(name) for name in providers},
            "speedup": r["speedup"],
            "vs": r["baseline"],
            "goal": r["goal_speedup"],
        }
        for r in results
    ]
    print_table(rows, ["op", "shape", *(f"{name} ms" for name in providers), "speedup", "vs", "goal"])


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
