"""The common path in one call each, as llm-compressor's ``oneshot`` is for its users: prune a model for a
language (:func:`prune`), evaluate it per language (:func:`evaluate`).

Both take a folder (or a model that installs offline, ``gemma-3-270m``) and then do what ``polysparse prune``
and ``polysparse eval`` do, or a loaded model with its tokenizer and then work on it in memory. Settings are
keywords named as :class:`~polysparse.sparsify.config.PruneConfig`'s and the commands' fields
(:mod:`polysparse.bench.plans`); an unknown keyword is a ``TypeError`` that lists the known ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from polysparse.bench.plans import EvalPlan, PruneRun
from polysparse.sparsify.config import PruneConfig


def prune(
    model: Any,
    *,
    out: str | Path | None = None,
    calib: str | None = None,
    tokenizer: Any = None,
    config: PruneConfig | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Prune ``model`` calibrated on ``calib`` (a calibration spec: ``handbook:de``, ``text:notes/*.txt:de``,
    ``handbook:de=0.5,handbook:ja=0.5``) and return the report (what ``polysparse.json`` holds).

    ``model`` a folder or model name: loaded, pruned and written to ``out`` as ``polysparse prune`` does
    (resumable; ``overwrite``, ``checkpoint``, ``stream``, ``dtype``, ``encoding``, ``quiet`` as its
    options). ``model`` an ``nn.Module``: pruned in place with ``tokenizer``'s windows, nothing written.
    ``settings``: :class:`PruneConfig` fields (``method="sparsegpt"``, ``pattern="2:4"``, ``nsamples=64``),
    applied over ``config`` when both are given.
    """
    quiet = settings.get("quiet", False)
    run_settings = _pick(settings, PruneRun, exclude=("model", "out", "calib"))
    config_settings = _pick(settings, PruneConfig)
    _refuse_unknown("prune", settings, run_settings, config_settings)
    config = replace(config, **config_settings) if config is not None else PruneConfig(**config_settings)
    if isinstance(model, (str, Path)):
        if out is None:
            raise TypeError("prune() of a folder writes the pruned model: give out='folder'")
        from polysparse.bench.jobs import prune_job

        return prune_job(PruneRun(model=str(model), out=str(out), calib=calib, **run_settings), config)
    for_folders = ["out"] * (out is not None) + [name for name in run_settings if name != "quiet"]
    if for_folders:
        raise TypeError(
            "prune() of a loaded model works in place and writes nothing (save it with "
            f"model.save_pretrained); {', '.join(for_folders)} apply to a folder"
        )
    return _prune_loaded(model, tokenizer, calib, config, quiet)


def _prune_loaded(
    model: Any, tokenizer: Any, calib: str | None, config: PruneConfig, quiet: bool
) -> dict[str, Any]:
    from polysparse.sparsify.calibration import calibration_windows
    from polysparse.sparsify.calibration_spec import CalibrationSpec
    from polysparse.sparsify.config import ConfigError
    from polysparse.sparsify.driver import needs_calibration, prune_model

    windows, record = None, {"spec": calib}
    if needs_calibration(config):
        if calib is None or tokenizer is None:
            raise ConfigError(
                f"{config.method} needs calibration text: pass calib='handbook:de' and tokenizer="
            )
        spec = CalibrationSpec.parse(calib)
        windows = calibration_windows(spec, tokenizer, config.nsamples, config.seqlen, config.seed)
        record = spec.to_dict()
    report = prune_model(model, config, windows, progress=not quiet)
    return {**report.to_dict(), "calibration": {**record, **report.calibration}}


def evaluate(
    model: Any, *, data: str | Sequence[str] = (), tokenizer: Any = None, **settings: Any
) -> dict[str, Any]:
    """Perplexity of ``model`` on the held-out windows of each source spec in ``data`` (``handbook:de``;
    or ``source="install-guide", langs="en,de"``), and multiple-choice ``tasks``; returns the results.

    ``model`` a folder or model name: what ``polysparse eval`` does (``out`` writes JSON and Markdown).
    ``model`` an ``nn.Module``: evaluated as it is, with ``tokenizer``. ``settings``: the fields of
    :class:`~polysparse.bench.plans.EvalPlan` (``windows``, ``seqlen``, ``tasks``, ``limit``, ...).
    """
    data = (data,) if isinstance(data, str) else tuple(data)
    plan_settings = _pick(settings, EvalPlan, exclude=("model", "data"))
    _refuse_unknown("evaluate", settings, plan_settings)
    from polysparse.bench import jobs

    if isinstance(model, (str, Path)):
        return jobs.eval_job(EvalPlan(model=str(model), data=data, **plan_settings))
    plan = EvalPlan(model=type(model).__name__, data=data, **plan_settings)
    return jobs.evaluate_loaded(model, tokenizer, plan)


def _pick(settings: Mapping[str, Any], dataclass: type, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    names = {f.name for f in fields(dataclass)} - set(exclude)
    return {name: value for name, value in settings.items() if name in names}


def _refuse_unknown(function: str, settings: Mapping[str, Any], *known: Mapping[str, Any]) -> None:
    unknown = set(settings) - {name for group in known for name in group}
    if unknown:
        raise TypeError(f"{function}() got unknown settings: {', '.join(sorted(unknown))}")
