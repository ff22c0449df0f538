"""What the ``polysparse`` commands do, as plain functions of their settings (:mod:`polysparse.bench.plans`,
:class:`~polysparse.sparsify.config.PruneConfig`): ``prune_job(PruneRun(model=..., out=...),
PruneConfig(...))`` does what ``polysparse prune`` does. The top-level ``polysparse.prune`` and
``polysparse.evaluate`` call them with keywords."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from polysparse.bench.assets import resolve_model
from polysparse.bench.guards import (
    calibration_files,
    check_eval_outputs,
    check_output_folder,
    check_positive,
    source_files,
    task_files,
)
from polysparse.bench.plans import (
    TASK_LIMIT,
    BenchRun,
    EvalPlan,
    PruneRun,
    StudyPlan,
    StudyRun,
    ThroughputPlan,
)
from polysparse.bench.report import environment, markdown_table, say_speedups, write_json
from polysparse.bench.report import say as _say
from polysparse.sparsify import distributed
from polysparse.sparsify.calibration import (
    EVAL_FRACTION,
    calibration_windows,
    evaluation_windows,
)
from polysparse.sparsify.calibration_spec import CalibrationSpec
from polysparse.sparsify.checkpointing import (
    LOCK_FILE,
    STATE_FILE,
    WorkFolderLock,
    clear_work_folder,
)
from polysparse.sparsify.config import ConfigError, PruneConfig
from polysparse.sparsify.corpora import SourceSpec, text_encoding
from polysparse.sparsify.driver import (
    calibrated_steps,
    needs_calibration,
    prune_model,
)
from polysparse.sparsify.evaluate import perplexity
from polysparse.sparsify.loading import check_seqlen, load_causal_lm
from polysparse.sparsify.output import (
    OutputLocationError,
    check_output,
    clean_stale_partials,
    package_version,
    save_pruned,
)
from polysparse.sparsify.streaming import load_streaming_model, write_streamed_output
from polysparse.sparsify.walk import check_device, resolve_device

log = logging.getLogger("polysparse.bench")


def prune_job(run: PruneRun, config: PruneConfig) -> dict[str, Any]:
    """Load, calibrate, prune, and save an HF folder with ``polysparse.json``; return the report.

    Progress is kept after every block in ``.<out>.work`` beside the output (``run.checkpoint``): the same
    command run again after an interruption resumes there (``overwrite`` starts over), also when it was
    killed while saving; the folder goes once the output is written. A lock in that folder admits one live
    run per output. The output location, the device and ``seqlen`` are checked before anything is loaded.
    """
    calib, method, device, seqlen = run.calib, config.method, config.device, config.seqlen
    calibrated = needs_calibration(config)
    if calib is None and calibrated:
        what = method if method != "magnitude" else ", ".join(calibrated_steps(config))
        raise ConfigError(f"{what} needs calibration text: pass --calib (e.g. handbook:de or text:FILE:de)")
    calibration = CalibrationSpec.parse(calib) if calib is not None and calibrated else calib
    check_device(device)
    model_path = resolve_model(run.model)
    inputs = [model_path, *calibration_files(calibration)]
    out_dir = check_output(check_output_folder(run.out, inputs), run.overwrite)
    if config.offload_dir is not None:
        check_output_folder(config.offload_dir, [], "--offload-dir")
    if calib is not None and calibrated:
        check_seqlen(model_path, seqlen)
    launched = distributed.init_from_environment()
    rank, world = distributed.rank_and_world()
    run = replace(run, quiet=run.quiet or rank != 0)
    # The working folder is also where the run's lock lives: one live run per output, released by the
    # kernel when the process dies (with --no-checkpoint it holds the lock only and goes at the end).
    work_dir = out_dir.parent / f".{out_dir.name}.work"
    lock = WorkFolderLock(work_dir) if rank == 0 else None
    if lock is not None:
        try:
            lock.acquire()
        except OSError as error:
            raise OutputLocationError(f"cannot write beside {out_dir}: {error}") from None
    try:
        with text_encoding(run.encoding):
            payload = _prune_locked(run, config, model_path, out_dir, work_dir, calibration)
    finally:
        if lock is not None:
            if {p.name for p in work_dir.glob("*")} <= {LOCK_FILE}:
                shutil.rmtree(work_dir, ignore_errors=True)
            lock.release()
    if launched:
        import torch.distributed as dist

        dist.destroy_process_group()
    return payload


def _prune_locked(
    run: PruneRun,
    config: PruneConfig,
    model_path: Path,
    out_dir: Path,
    work_dir: Path,
    calib: CalibrationSpec | str | None,
) -> dict[str, Any]:
    """The body of :func:`prune_job`, run while this process holds the working folder's lock.

    ``calib`` is the parsed spec when the run calibrates, else the unused ``--calib`` text (or None)."""
    method, seqlen, quiet, overwrite = config.method, config.seqlen, run.quiet, run.overwrite
    rank, world = distributed.rank_and_world()
    if rank == 0:
        check_output(out_dir, overwrite)  # again: a run that held the lock may have written it meanwhile
        clean_stale_partials(out_dir)
        if overwrite:
            clear_work_folder(work_dir)
    checkpoint_dir = work_dir if run.checkpoint else None
    distributed.barrier()
    started = time.perf_counter()
    streamer = None
    if _should_stream(model_path, run.stream):
        if checkpoint_dir is None:
            raise ConfigError("--stream keeps the pruned blocks in the working folder; drop --no-checkpoint")
        _say(f"loading {model_path} block by block (streaming)", quiet)
        lm, tokenizer, streamer = load_streaming_model(model_path, run.dtype)
    else:
        _say(f"loading {model_path}", quiet)
        lm, tokenizer = load_causal_lm(model_path, run.dtype)
    windows = None
    if calib is not None and not needs_calibration(config):
        log.info("magnitude pruning reads no activations; --calib %s is not used", calib)
    elif calib is not None:
        windows = calibration_windows(calib, tokenizer, config.nsamples, seqlen, config.seed)
        _say(f"calibration: {len(windows)} windows x {windows.seqlen} tokens from {calib}", quiet)
    report = prune_model(
        lm, config, windows, progress=not quiet, checkpoint_dir=checkpoint_dir, block_loader=streamer
    )
    payload = {
        "polysparse_version": package_version(),
        "model": str(model_path),
        "model_type": lm.config.model_type,
        **report.to_dict(),
        "calibration": {
            **_calibration_record(calib),
            "eval_fraction_held_out": EVAL_FRACTION,
            **report.calibration,
        },
        "wall_seconds": time.perf_counter() - started,
        "environment": environment(config.device),
    }
    payload["streamed"] = streamer is not None
    payload["peak_memory"] = _peak_memory(config.device)
    if rank == 0 and streamer is not None:
        blocks_dir = work_dir / "rank-0" if world > 1 else work_dir
        write_streamed_output(lm, model_path, blocks_dir, out_dir, payload, overwrite)
    elif rank == 0:
        save_pruned(lm, tokenizer, out_dir, payload, overwrite)
    distributed.barrier()  # every rank's state stays until the output is safely written
    if rank == 0:
        if checkpoint_dir is None and (work_dir / STATE_FILE).exists():
            log.warning(
                "removed %s: an interrupted run's state, obsolete now that %s exists", work_dir, out_dir
            )
        clear_work_folder(work_dir)
    summary = payload["summary"]
    _say(
        f"pruned {summary['layers_pruned']} layers ({summary['layers_skipped']} skipped) with {method} "
        f"{config.sparsity_label}: {summary['sparsity_of_pruned_layers']:.2%} of their weights are zero; "
        f"{summary['seconds']:.1f} s; wrote {out_dir}",
        quiet,
    )
    return payload


def _calibration_record(calib: CalibrationSpec | str | None) -> dict[str, Any]:
    """What ``polysparse.json`` says about the calibration text: the parsed spec, or the unused text."""
    return calib.to_dict() if isinstance(calib, CalibrationSpec) else {"spec": calib}


def _peak_memory(device: str | None) -> dict[str, int | None]:
    """Peak resident host memory of this process and, when a GPU did the work, peak GPU memory."""
    import resource

    import torch

    gpu = None
    if resolve_device(device).type == "cuda":
        gpu = int(torch.cuda.max_memory_allocated())
    return {"host_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "gpu_bytes": gpu}


def _available_memory() -> int:
    """Bytes of memory available to a new allocation without swapping (psutil: Linux, macOS, Windows)."""
    import psutil

    return int(psutil.virtual_memory().available)


def _should_stream(model_path: Path, stream: str) -> bool:
    if stream not in ("auto", "on", "off"):
        raise ConfigError(f"--stream must be auto, on or off, got {stream!r}")
    if stream != "auto":
        return stream == "on"
    weights = sum(p.stat().st_size for p in Path(model_path).glob("*.safetensors"))
    available = _available_memory()
    if weights > available // 2:
        log.info("weights (%.1f GB) exceed half the available memory: streaming blocks", weights / 1e9)
        return True
    return False


def _eval_specs(data: Sequence[str], source: str | None, langs: Sequence[str]) -> list[SourceSpec]:
    """The parsed sources to evaluate: each ``--data`` spec, and ``--source`` in each of ``--langs``."""
    specs = [SourceSpec.parse(spec) for spec in data]
    if langs:
        if not source:
            raise ConfigError("--langs needs --source (e.g. --source handbook --langs en,de)")
        specs += [SourceSpec.of(source, lang) for lang in langs]
    elif source:
        raise ConfigError("--source needs --langs")
    if not specs:
        raise ConfigError("nothing to evaluate: give --data SPEC or --source NAME --langs L1,L2")
    return specs


def evaluate_specs(lm, tokenizer, specs: list[SourceSpec], windows: int, seqlen: int, seed: int, quiet: bool):
    """Perplexity of ``lm`` on the held-out windows of each spec.

    Every spec's windows are built before the first forward pass, so a language without text fails at once
    rather than after the others were scored.
    """
    held_out_windows = {spec: evaluation_windows(spec, tokenizer, windows, seqlen, seed) for spec in specs}
    results = []
    for spec, held_out in held_out_windows.items():
        result = perplexity(lm, held_out, progress=not quiet, description=f"ppl {spec}")
        _say(f"  {spec}: perplexity {result.perplexity:.3f} ({result.tokens} tokens)", quiet)
        results.append({"spec": str(spec), **result.to_dict()})
    return results


def eval_job(plan: EvalPlan) -> dict[str, Any]:
    """Perplexity per source spec on held-out windows, and multiple-choice task accuracy (``tasks``, see
    :mod:`polysparse.bench.studies.tasks_eval`; ``lm_eval``, see
    :mod:`polysparse.bench.studies.lm_eval_bridge`); JSON and Markdown when ``out`` is given. Every source and
    task is checked before the model loads."""
    from polysparse.bench.studies.tasks_eval import prepare_tasks

    data, source, langs, tasks, lm_eval = plan.data, plan.source, plan.langs, plan.tasks, plan.lm_eval
    windows, seqlen, seed, batch_size = plan.windows, plan.seqlen, plan.seed, plan.batch_size
    device, limit, dump_items, out, quiet = plan.device, plan.limit, plan.dump_items, plan.out, plan.quiet
    specs = _eval_specs(data, source, langs) if (data or source or langs or not (tasks or lm_eval)) else []
    check_positive(windows=windows, batch_size=batch_size)
    model_path = resolve_model(plan.model)
    inputs = [model_path, *task_files(tasks), *(path for spec in specs for path in source_files(spec))]
    check_eval_outputs(out, dump_items, plan.overwrite, inputs)
    check_device(device)
    if limit is not None and not (tasks or lm_eval):
        raise ConfigError("--limit applies to --tasks or --lm-eval")
    if dump_items and not tasks:
        raise ConfigError("--dump-items needs --tasks")
    prepared = []
    if tasks:
        with text_encoding(plan.encoding):  # task files are read in --encoding too
            prepared = prepare_tasks(tasks, limit=TASK_LIMIT if limit is None else limit, seed=seed)
    if lm_eval:
        from polysparse.bench.studies.lm_eval_bridge import check_lm_eval

        check_lm_eval()
    if specs:  # --seqlen sizes the perplexity windows only
        check_seqlen(model_path, seqlen)
    lm, tokenizer = load_causal_lm(model_path, plan.dtype)
    lm.to(resolve_device(device))
    if dump_items:
        from polysparse.bench.studies.tasks_eval import dump_items as write_dump

        _say(f"wrote the items to {write_dump(dump_items, prepared)}", quiet)
    payload = evaluate_loaded(lm, tokenizer, plan, specs, prepared, name=str(model_path))
    if out:
        path = write_json(out, payload)
        path.with_suffix(".md").write_text(_eval_markdown(payload), encoding="utf-8")
        _say(f"wrote {path} and {path.with_suffix('.md')}", quiet)
    return payload


def evaluate_loaded(
    lm,
    tokenizer,
    plan: EvalPlan,
    specs: list[SourceSpec] | None = None,
    prepared: list | None = None,
    *,
    name: str | None = None,
) -> dict[str, Any]:
    """What :func:`eval_job` computes, on a model already loaded: perplexity per source spec (``specs``, else
    parsed from ``plan``), the prepared tasks (else built from ``plan.tasks``) and lm-eval's tasks."""
    from polysparse.bench.studies.tasks_eval import prepare_tasks, score_tasks

    name, quiet, batch_size = name or plan.model, plan.quiet, plan.batch_size
    if specs is None:
        specs = _eval_specs(plan.data, plan.source, plan.langs) if plan.data or plan.source else []
    if prepared is None and plan.tasks:
        limit = TASK_LIMIT if plan.limit is None else plan.limit
        with text_encoding(plan.encoding):
            prepared = prepare_tasks(plan.tasks, limit=limit, seed=plan.seed)
    results = []
    if specs:
        what = f"{len(specs)} sources ({plan.windows} windows x {plan.seqlen} tokens each)"
        _say(f"evaluating {name} on {what}", quiet)
        with text_encoding(plan.encoding):
            results = evaluate_specs(lm, tokenizer, specs, plan.windows, plan.seqlen, plan.seed, quiet)
    payload = {"model": name, "results": results, "environment": environment(plan.device)}
    if prepared:
        _say(f"scoring {len(prepared)} tasks on {name}", quiet)
        payload["tasks"] = score_tasks(lm, tokenizer, prepared, batch_size=batch_size, quiet=quiet)
    if plan.lm_eval:
        from polysparse.bench.studies.lm_eval_bridge import run_lm_eval

        payload["lm_eval"] = run_lm_eval(lm, tokenizer, plan.lm_eval, limit=plan.limit, batch_size=batch_size)
    return payload


def _eval_markdown(payload: dict[str, Any]) -> str:
    """The Markdown beside ``eval --out``'s JSON: the perplexity table, the tasks' table, lm-eval's."""
    from polysparse.bench.studies.tasks_eval import tasks_markdown

    results = payload["results"]
    text = f"Evaluation of `{payload['model']}`\n\n"
    if results:
        rows = [[r["spec"], r["perplexity"], r["tokens"], f"{r['windows']} x {r['seqlen']}"] for r in results]
        text += markdown_table(["source", "perplexity", "tokens", "windows x seqlen"], rows)
    if payload.get("tasks"):
        text += "\n\n" if results else ""
        text += "Multiple-choice tasks (acc: highest log-likelihood; acc_norm: per UTF-8 byte)\n\n"
        text += tasks_markdown(payload["tasks"])
    if "lm_eval" in payload:
        text += "\n\nlm-eval\n\n" + payload["lm_eval"]["markdown"]
    return text


def study_job(plan: StudyPlan, run: StudyRun) -> dict[str, Any]:
    """The calibration x evaluation matrix; see :mod:`polysparse.bench.studies.study` (task columns:
    :mod:`polysparse.bench.studies.study_tasks`)."""
    from polysparse.bench.studies.study import check_study_inputs, output_stem, run_study

    check_study_inputs(plan, run.out, run.cells)
    result = run_study(plan, run.out, cells=run.cells, quiet=run.quiet, plot=run.plot)
    _say(result.markdown(), run.quiet)
    stem = Path(run.out) / output_stem(plan)
    _say(f"wrote {stem}.json, {stem}.md" + (f", {stem}.png" if run.plot else ""), run.quiet)
    return result.to_dict()


def corpora_job(*, source: list[str] | tuple[str, ...] = (), json: bool = False, quiet: bool = False):
    """Print every text source and language installed here, with sizes and the package to install."""
    from polysparse.sparsify import strict_json
    from polysparse.sparsify.corpora import SOURCES, available_corpora, missing_corpora_hint

    infos = available_corpora(tuple(source) or None)
    if json:
        print(strict_json.dumps([{**vars(i), "spec": i.spec} for i in infos]))
        return infos
    rows = [[i.spec, i.name, i.documents, f"{i.text_bytes / 1e6:.2f}", i.package] for i in infos]
    print(markdown_table(["spec", "language", "documents", "MB of text", "Debian package"], rows))
    present = {i.source for i in infos}
    for name in sorted(set(source or SOURCES) - present - {"text", "hf"}):
        print(f"{name}: nothing installed; {missing_corpora_hint(name)}")
    return infos


def bench_job(run: BenchRun, plan: ThroughputPlan) -> dict[str, Any]:
    """Dense vs sparse throughput; see :mod:`polysparse.bench.speed.throughput`."""
    from polysparse.bench.speed.throughput import run_throughput

    model, dense, backend, out, quiet = run.model, run.dense, run.backend, run.out, run.quiet
    if out is not None:
        check_output_folder(out, [model, dense], results=True)
    _say(f"benchmarking {model} (sparse) against its dense twin, backend {backend}", quiet)
    payload, paths = run_throughput(
        model=resolve_model(model),
        dense=dense,
        plan=plan,
        backend=backend,
        device=run.device,
        dtype=run.dtype,
        dispatch=run.dispatch,
        out=out,
        with_plot=run.plot,
        progress=None if quiet else lambda message: _say(f"  {message}"),
    )
    say_speedups(payload, quiet)
    _say("wrote " + ", ".join(str(p) for p in paths), quiet)
    return payload
