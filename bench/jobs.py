"""What the ``polysparse`` commands do, as plain functions with keyword arguments (the Python API of the
command line: ``prune_job(model=..., method=..., ...)`` does what ``polysparse prune`` does)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from polysparse.bench.assets import DEFAULT_MODEL, resolve_model
from polysparse.bench.report import environment, markdown_table, write_json
from polysparse.sparsify.calibration import (
    EVAL_FRACTION,
    TokenWindows,
    calibration_windows,
    evaluation_windows,
)
from polysparse.sparsify.config import ConfigError, PruneConfig
from polysparse.sparsify.corpora import EmptyCorpusError, UnknownLanguageError
from polysparse.sparsify.driver import IndivisibleLayerError, prune_model, resolve_device
from polysparse.sparsify.evaluate import perplexity
from polysparse.sparsify.loading import ModelLoadError, load_causal_lm
from polysparse.sparsify.methods import HessianError
from polysparse.sparsify.model_graph import NoDecoderBlocksError
from polysparse.sparsify.output import REPORT_FILE, OutputExistsError, check_output, save_pruned
from polysparse.sparsify.stats import NonFiniteError

log = logging.getLogger("polysparse.bench")

USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    EmptyCorpusError,
    FileNotFoundError,
    HessianError,
    IndivisibleLayerError,
    ModelLoadError,
    NoDecoderBlocksError,
    NonFiniteError,
    OutputExistsError,
    UnknownLanguageError,
    ValueError,
)
"""Errors caused by the user's input: the CLI prints them in one line and exits with status 2."""


def _say(message: str, quiet: bool = False) -> None:
    if not quiet:
        print(message, flush=True)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("polysparse")
    except PackageNotFoundError:
        return "unknown"


def prune_job(
    *,
    model: str,
    out: str,
    method: str = "wanda",
    sparsity: float | None = None,
    pattern: str | None = None,
    calib: str | None = None,
    nsamples: int = 128,
    seqlen: int = 2048,
    seed: int = 0,
    batch_size: int = 1,
    targets: list[str] | tuple[str, ...] = (),
    ignore: list[str] | tuple[str, ...] = (),
    blocksize: int = 128,
    percdamp: float = 0.01,
    device: str | None = None,
    on_indivisible: str = "skip",
    dtype: str = "auto",
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Load, calibrate, prune, and save an HF folder with ``polysparse.json``; return the report."""
    config = PruneConfig(
        method=method,
        sparsity=sparsity,
        pattern=pattern,
        targets=tuple(targets),
        ignore=tuple(ignore),
        nsamples=nsamples,
        seqlen=seqlen,
        seed=seed,
        batch_size=batch_size,
        blocksize=blocksize,
        percdamp=percdamp,
        device=device,
        on_indivisible=on_indivisible,
    )
    if calib is None and method != "magnitude":
        raise ConfigError(f"{method} needs calibration text: pass --calib (e.g. handbook:de or text:FILE:de)")
    check_output(out, overwrite)
    started = time.perf_counter()
    model_path = resolve_model(model)
    _say(f"loading {model_path}", quiet)
    lm, tokenizer = load_causal_lm(model_path, dtype)
    windows = None
    if calib is not None:
        windows = calibration_windows(calib, tokenizer, nsamples, seqlen, seed)
        _say(f"calibration: {len(windows)} windows x {windows.seqlen} tokens from {calib}", quiet)
    report = prune_model(lm, config, windows, progress=not quiet)
    payload = {
        "polysparse_version": _version(),
        "model": str(model_path),
        "model_type": lm.config.model_type,
        **report.to_dict(),
        "calibration": {
            "spec": calib,
            "eval_fraction_held_out": EVAL_FRACTION,
            **(windows.summary() if windows is not None else {"windows": 0}),
        },
        "wall_seconds": time.perf_counter() - started,
        "environment": environment(config.device),
    }
    save_pruned(lm, tokenizer, out, payload, overwrite)
    summary = payload["summary"]
    _say(
        f"pruned {summary['layers_pruned']} layers ({summary['layers_skipped']} skipped) with {method} "
        f"{config.sparsity_label}: {summary['sparsity_of_pruned_layers']:.2%} of their weights are zero; "
        f"{summary['seconds']:.1f} s; wrote {out}",
        quiet,
    )
    return payload


def _eval_specs(data: list[str], source: str | None, langs: str | None) -> list[str]:
    specs = list(data)
    if langs:
        if not source:
            raise ConfigError("--langs needs --source (e.g. --source handbook --langs en,de)")
        specs += [f"{source}:{lang.strip()}" for lang in langs.split(",") if lang.strip()]
    elif source:
        raise ConfigError("--source needs --langs")
    if not specs:
        raise ConfigError("nothing to evaluate: give --data SPEC or --source NAME --langs L1,L2")
    return specs


def evaluate_specs(lm, tokenizer, specs: list[str], windows: int, seqlen: int, seed: int, quiet: bool):
    """Perplexity of ``lm`` on the held-out windows of each spec."""
    results = []
    for spec in specs:
        held_out = evaluation_windows(spec, tokenizer, windows, seqlen, seed)
        result = perplexity(lm, held_out, progress=not quiet, description=f"ppl {spec}")
        _say(f"  {spec}: perplexity {result.perplexity:.3f} ({result.tokens} tokens)", quiet)
        results.append({"spec": spec, **result.to_dict()})
    return results


def eval_job(
    *,
    model: str,
    data: list[str] | tuple[str, ...] = (),
    source: str | None = None,
    langs: str | None = None,
    windows: int = 32,
    seqlen: int = 512,
    seed: int = 0,
    device: str | None = None,
    dtype: str = "auto",
    out: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Perplexity per source spec on held-out windows; JSON and Markdown when ``out`` is given."""
    specs = _eval_specs(list(data), source, langs)
    model_path = resolve_model(model)
    lm, tokenizer = load_causal_lm(model_path, dtype)
    lm.to(resolve_device(device))
    _say(f"evaluating {model_path} on {len(specs)} sources ({windows} windows x {seqlen} tokens each)", quiet)
    results = evaluate_specs(lm, tokenizer, specs, windows, seqlen, seed, quiet)
    payload = {"model": str(model_path), "results": results, "environment": environment(device)}
    if out:
        path = write_json(out, payload)
        table = markdown_table(
            ["source", "perplexity", "tokens", "windows x seqlen"],
            [[r["spec"], r["perplexity"], r["tokens"], f"{r['windows']} x {r['seqlen']}"] for r in results],
        )
        path.with_suffix(".md").write_text(f"Perplexity of `{model_path}`\n\n{table}", encoding="utf-8")
        _say(f"wrote {path} and {path.with_suffix('.md')}", quiet)
    return payload


def demo_job(
    *,
    model: str | None = None,
    lang: str = "de",
    method: str = "wanda",
    pattern: str = "2:4",
    nsamples: int = 32,
    seqlen: int = 512,
    eval_windows: int = 8,
    out: str = "polysparse-demo",
    dtype: str = "auto",
    quiet: bool = False,
) -> dict[str, Any]:
    """The main job on the embedded default: prune for a language, compare perplexity dense vs pruned."""
    out_dir = Path(out)
    if out_dir.exists() and not (out_dir / REPORT_FILE).exists():
        raise OutputExistsError(f"{out_dir} exists and is not a polysparse output; choose another --out")
    model = model or DEFAULT_MODEL
    calib = f"handbook:{lang}"
    eval_specs = [f"handbook:{lang}"] + ([] if lang == "en" else ["handbook:en"])
    _say(f"[1/5] preparing {model} (offline)", quiet)
    model_path = resolve_model(model)
    lm, tokenizer = load_causal_lm(model_path, dtype)
    _say(f"[2/5] calibration text: {nsamples} windows x {seqlen} tokens from {calib}", quiet)
    windows: TokenWindows = calibration_windows(calib, tokenizer, nsamples, seqlen)
    _say(f"[3/5] dense perplexity on held-out text ({eval_windows} windows x {seqlen} tokens)", quiet)
    dense = evaluate_specs(lm, tokenizer, eval_specs, eval_windows, seqlen, 0, quiet)
    config = PruneConfig(method=method, pattern=pattern, nsamples=nsamples, seqlen=seqlen)
    _say(f"[4/5] pruning with {method} {pattern}, calibrated on {calib}", quiet)
    report = prune_model(lm, config, windows, progress=not quiet)
    pruned = evaluate_specs(lm, tokenizer, eval_specs, eval_windows, seqlen, 0, quiet)
    _say(f"[5/5] saving the pruned model to {out_dir}", quiet)
    rows = [
        [d["spec"], d["perplexity"], p["perplexity"], p["perplexity"] / d["perplexity"]]
        for d, p in zip(dense, pruned)
    ]
    table = markdown_table(["held-out text", "dense ppl", f"{method} {pattern} ppl", "ratio"], rows)
    payload = {
        "model": str(model_path),
        **report.to_dict(),
        "calibration": {"spec": calib, **windows.summary()},
        "perplexity": {"dense": dense, "pruned": pruned},
        "environment": environment(),
    }
    save_pruned(lm, tokenizer, out_dir, payload, overwrite=True)
    (out_dir / "report.md").write_text(
        f"# polysparse demo\n\n{model} pruned for `{lang}` with {method} {pattern} "
        f"({report.sparsity:.1%} of the block weights zero) in {report.seconds:.0f} s.\n\n{table}",
        encoding="utf-8",
    )
    _say("\n" + table, quiet)
    _say(f"wrote {out_dir} (model, polysparse.json, report.md)", quiet)
    return payload


def study_job(
    *,
    model: str,
    langs: str,
    out: str,
    method: str = "wanda",
    sparsity: float | None = None,
    pattern: str | None = None,
    calib_source: str = "handbook",
    eval_source: str = "install-guide",
    no_mix: bool = False,
    translate_source: str | None = "gettext",
    shots: int = 4,
    nsamples: int = 32,
    seqlen: int = 512,
    eval_windows: int = 8,
    eval_seqlen: int = 256,
    seed: int = 0,
    dtype: str = "auto",
    no_plot: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """The calibration x evaluation matrix; see :mod:`polysparse.bench.study`."""
    from polysparse.bench.study import StudyPlan, run_study

    if sparsity is None and pattern is None:
        pattern = "2:4"
    plan = StudyPlan(
        model=model,
        langs=tuple(lang.strip() for lang in langs.split(",") if lang.strip()),
        method=method,
        sparsity=sparsity,
        pattern=pattern,
        calib_source=calib_source,
        eval_source=eval_source,
        mix=not no_mix,
        translate_source=None if translate_source in (None, "", "none") else translate_source,
        shots=shots,
        nsamples=nsamples,
        seqlen=seqlen,
        eval_windows=eval_windows,
        eval_seqlen=eval_seqlen,
        seed=seed,
        dtype=dtype,
    )
    result = run_study(plan, out, quiet=quiet, plot=not no_plot)
    _say(result.markdown(), quiet)
    _say(f"wrote {out}/study.json, study.md" + ("" if no_plot else ", study.png"), quiet)
    return result.to_dict()


def corpora_job(*, source: list[str] | tuple[str, ...] = (), json: bool = False, quiet: bool = False):
    """Print every text source and language installed here, with sizes and the package to install."""
    import json as json_module

    from polysparse.sparsify.corpora import SOURCES, available_corpora, missing_corpora_hint

    infos = available_corpora(tuple(source) or None)
    if json:
        print(json_module.dumps([{**vars(i), "spec": i.spec} for i in infos], indent=2, default=str))
        return infos
    rows = [[i.spec, i.name, i.documents, f"{i.text_bytes / 1e6:.2f}", i.package] for i in infos]
    print(markdown_table(["spec", "language", "documents", "MB of text", "Debian package"], rows))
    present = {i.source for i in infos}
    for name in sorted(set(source or SOURCES) - present - {"text", "hf"}):
        print(f"{name}: nothing installed; {missing_corpora_hint(name)}")
    return infos


def read_report(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / REPORT_FILE).read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------------------------------------
# Runtime: throughput and export (issue 5)
# ----------------------------------------------------------------------------------------------------------


def bench_job(
    *,
    model: str,
    dense: str | None = None,
    batch: str | list[int] = "1,8,16",
    prompt: str | list[int] = "128,2048",
    new_tokens: int = 128,
    repeats: int = 3,
    warmup: int = 1,
    backend: str = "auto",
    dispatch: str | None = None,
    cache: str = "dynamic",
    device: str | None = None,
    dtype: str = "auto",
    seed: int = 0,
    out: str | None = None,
    no_plot: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Dense vs sparse throughput; see :mod:`polysparse.bench.throughput`."""
    from polysparse.bench.throughput import ThroughputPlan, parse_sizes, run_throughput

    plan = ThroughputPlan(
        batch_sizes=parse_sizes(batch),
        prompt_lengths=parse_sizes(prompt),
        new_tokens=new_tokens,
        repeats=repeats,
        warmup=warmup,
        cache=cache,
        seed=seed,
    )
    _say(f"benchmarking {model} (sparse) against its dense twin, backend {backend}", quiet)
    payload, paths = run_throughput(
        model=resolve_model(model),
        dense=dense,
        plan=plan,
        backend=backend,
        device=device,
        dtype=dtype,
        dispatch=dispatch,
        out=out,
        with_plot=not no_plot,
        progress=None if quiet else lambda message: _say(f"  {message}"),
    )
    ran = ", ".join(sorted({r["ran"] for r in payload["backends_ran"]})) or "-"
    _say(f"sparse layers ran on: {ran}", quiet)
    for s in payload["speedups"]:
        _say(
            f"  batch {s['batch']}, prompt {s['prompt']}: decode {s['decode']:.2f}x, "
            f"prefill {s['prefill']:.2f}x (sparse / dense, medians)",
            quiet,
        )
    _say("wrote " + ", ".join(str(p) for p in paths), quiet)
    return payload


def export_job(*, model: str, format: str, out: str, overwrite: bool = False, quiet: bool = False) -> Path:
    """Write a sparse checkpoint as dense, compressed or compressed-tensors."""
    from polysparse.runtime.checkpoint import export

    path = export(model, out, format, overwrite=overwrite)
    size = sum(f.stat().st_size for f in path.glob("*.safetensors"))
    _say(f"wrote {path} ({format}, {size / 2**20:.1f} MiB of safetensors)", quiet)
    return path


__all__ = [
    "USER_ERRORS",
    "bench_job",
    "corpora_job",
    "demo_job",
    "eval_job",
    "export_job",
    "prune_job",
    "read_report",
    "study_job",
]
