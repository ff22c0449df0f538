"""Pruning: walk the decoder blocks (:mod:`polysparse.sparsify.walk`), collect each layer's statistics
(:mod:`polysparse.sparsify.hooks`), prune every layer with the configured method, then the post-mask steps
(ADMM update, block-wise reconstruction), with per-block checkpoints to resume from.

:func:`prune_model` is the entry point.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polysparse.sparsify import distributed
from polysparse.sparsify.activations import ActivationStore
from polysparse.sparsify.calibration import TokenWindows
from polysparse.sparsify.checkpointing import PruneCheckpoint, run_fingerprint
from polysparse.sparsify.config import ConfigError, PruneConfig
from polysparse.sparsify.hooks import attach_statistics
from polysparse.sparsify.methods import METHODS, admm_refine
from polysparse.sparsify.model_graph import (
    find_decoder_stack,
    prunable_layers,
    set_weight_matrix,
    weight_matrix,
)
from polysparse.sparsify.reconstruction import (
    ReconstructionSettings,
    reconstruct_block,
    reconstruction_seed,
)
from polysparse.sparsify.stats import NonFiniteError
from polysparse.sparsify.walk import (
    BlockLoader,
    BlockStep,
    sequential_blocks,
)

log = logging.getLogger("polysparse.sparsify")


@dataclass
class PruneReport:
    """What a pruning run did, layer by layer; serialised into ``polysparse.json``."""

    config: dict[str, Any]
    calibration: dict[str, Any]
    layers: list[dict[str, Any]] = field(default_factory=list)
    blocks: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    profile: dict[str, Any] | None = None

    @property
    def pruned_parameters(self) -> int:
        return sum(layer["pruned"] for layer in self.layers)

    @property
    def considered_parameters(self) -> int:
        return sum(layer["parameters"] for layer in self.layers)

    @property
    def sparsity(self) -> float:
        total = self.considered_parameters
        return self.pruned_parameters / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "calibration": self.calibration,
            "summary": {
                "layers_pruned": len(self.layers),
                "layers_skipped": len(self.skipped),
                "parameters_in_pruned_layers": self.considered_parameters,
                "parameters_pruned": self.pruned_parameters,
                "sparsity_of_pruned_layers": self.sparsity,
                "seconds": self.seconds,
            },
            "blocks": self.blocks,
            "layers": self.layers,
            "skipped": self.skipped,
            **({"sparsity_profile": self.profile} if self.profile is not None else {}),
        }


def calibrated_steps(config: PruneConfig) -> list[str]:
    """The post-mask steps and profiles of ``config`` that read calibration activations."""
    steps = []
    if config.update != "none":
        steps.append(f"update={config.update}")
    if config.reconstruct != "none":
        steps.append(f"reconstruct={config.reconstruct}")
    if config.sparsity_profile != "uniform":
        steps.append(f"sparsity_profile={config.sparsity_profile}")
    return steps


def needs_calibration(config: PruneConfig) -> bool:
    """True when pruning with ``config`` reads calibration activations (every method but magnitude, and
    magnitude with a post-mask step or an outlier profile)."""
    return config.method != "magnitude" or bool(calibrated_steps(config))


def _empty_store(step: BlockStep) -> ActivationStore | list[torch.Tensor]:
    """A store for one more set of per-batch activations, kept like the walk's own."""
    return step.hidden.successor() if isinstance(step.hidden, ActivationStore) else []


class IndivisibleLayerError(ValueError):
    """Layers whose in_features is not a multiple of the pattern's M, with ``on_indivisible='error'``."""


def _indivisible(layers: dict[str, nn.Module], config: PruneConfig) -> list[dict[str, Any]]:
    """The layers that cannot take the N:M pattern, each with the reason."""
    if config.pattern is None:
        return []
    misfits = {name: config.pattern.misfit(weight_matrix(layer).shape[1]) for name, layer in layers.items()}
    return [{"name": name, "reason": reason} for name, reason in misfits.items() if reason is not None]


def check_pattern_fits(model: nn.Module, config: PruneConfig) -> list[dict[str, Any]]:
    """Layers that cannot take the N:M pattern; raises when ``config.on_indivisible == 'error'``."""
    stack = find_decoder_stack(model)
    skipped: list[dict[str, Any]] = []
    for index, block in enumerate(stack.blocks):
        layers = prunable_layers(block, stack.block_name(index), config.targets, config.ignore)
        skipped += _indivisible(layers, config)
    if skipped and config.on_indivisible == "error":
        names = ", ".join(s["name"] for s in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        raise IndivisibleLayerError(
            f"{len(skipped)} layers cannot take pattern {config.pattern} ({skipped[0]['reason']}): {names}; "
            "use on_indivisible='skip' (--on-indivisible skip) to leave them dense"
        )
    return skipped


def check_something_to_prune(model: nn.Module, config: PruneConfig, skipped: list[dict[str, Any]]) -> None:
    """Warn (or, with ``on_indivisible='error'``, refuse) when no layer would be pruned at all."""
    stack = find_decoder_stack(model)
    matching = sum(
        len(prunable_layers(block, stack.block_name(index), config.targets, config.ignore))
        for index, block in enumerate(stack.blocks)
    )
    if matching == 0:
        chosen = [f"targets={list(config.targets)}"] * bool(config.targets)
        chosen += [f"ignore={list(config.ignore)}"] * bool(config.ignore)
        message = (
            f"no linear layer in the decoder blocks matches {' and '.join(chosen) or 'the defaults'}: "
            "nothing would be pruned"
        )
    elif matching == len(skipped):
        message = (
            f"all {matching} layers are left dense ({skipped[0]['reason']}): nothing would be pruned; "
            "choose a pattern whose M divides the layers' in_features, or unstructured --sparsity"
        )
    else:
        return
    if config.on_indivisible == "error":
        raise IndivisibleLayerError(message)
    log.warning("%s; the output will equal the input model", message)


def _check_finite_parameters(step: BlockStep) -> None:
    """Name the parameter that holds NaN or Inf before any activation runs through the block (otherwise the
    first symptom is a non-finite input of a later layer, far from the cause)."""
    for name, param in step.block.named_parameters():
        if param.is_floating_point() and not torch.isfinite(param).all():
            module, _, leaf = name.rpartition(".")
            raise NonFiniteError(f"{step.name}.{module}: NaN or Inf in the {leaf}")


def prune_model(
    model: nn.Module,
    config: PruneConfig,
    windows: TokenWindows | None,
    *,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    block_loader: BlockLoader | None = None,
) -> PruneReport:
    """Prune ``model`` in place with ``config``, calibrated on ``windows``; return the report.

    ``windows`` may be None for magnitude pruning, which needs no activations. With ``checkpoint_dir`` the
    state after every block is kept there (see :mod:`polysparse.sparsify.checkpointing`) and a run
    interrupted earlier with the same model, configuration and windows resumes from its last block; the
    folder is left in place for the caller to remove once the result is safely written. With a
    ``block_loader`` (see :mod:`polysparse.sparsify.streaming`) blocks live in memory only for their own
    step; their pruned weights are then only in ``checkpoint_dir``, which is required.
    """
    if block_loader is not None and checkpoint_dir is None:
        raise ValueError("streaming blocks from disk needs a checkpoint_dir to keep the pruned blocks in")
    description = f"{config.method} {config.sparsity_label}"
    if windows is None and config.method != "magnitude":
        raise ConfigError(f"{config.method} needs calibration windows")
    if windows is None and needs_calibration(config):
        raise ConfigError(f"{', '.join(calibrated_steps(config))} need calibration windows")
    if windows is not None and windows.seqlen > config.seqlen:
        raise ConfigError(f"windows are {windows.seqlen} tokens long, more than seqlen={config.seqlen}")
    skipped = check_pattern_fits(model, config)
    left_dense = {entry["name"] for entry in skipped}
    check_something_to_prune(model, config, skipped)
    calibration = windows.summary() if windows is not None else {"windows": 0}
    report = PruneReport(config=config.to_dict(), calibration=calibration, skipped=skipped)
    rank, world = distributed.rank_and_world()
    if world > 1:
        report.calibration["ranks"] = world
        if windows is not None:
            windows = distributed.shard_windows(windows, rank, world)
        if checkpoint_dir is not None:
            checkpoint_dir = Path(checkpoint_dir) / f"rank-{rank}"

    block_sparsity: list[float] | None = None
    if config.sparsity_profile != "uniform":  # owl, owl-lang
        # On the dense model, before a resumed run loads its pruned blocks: the same profile every time.
        from polysparse.sparsify.profiles import owl_profile

        report.profile = owl_profile(model, config, windows, progress=progress, block_loader=block_loader)
        block_sparsity = report.profile["block_sparsity"]

    checkpoint = resume = None
    if checkpoint_dir is not None:
        # A streamed model's blocks are not in memory: their files are hashed instead.
        content_digest = getattr(block_loader, "content_digest", None)
        fingerprint = run_fingerprint(
            model,
            config.to_dict(),
            calibration.get("sha256"),
            weights_sha256=content_digest() if content_digest is not None else None,
        )
        checkpoint = PruneCheckpoint(checkpoint_dir, fingerprint)
        resume = checkpoint.restore(find_decoder_stack(model).blocks, load_weights=block_loader is None)
        if resume is not None:
            report.layers = resume.report.get("layers", [])
            report.blocks = resume.report.get("blocks", [])
    start = resume.next_block if resume is not None else 0
    offload_dir = config.offload_dir
    if config.offload == "disk" and offload_dir is None and checkpoint_dir is not None:
        # Beside the checkpoints, on the disk the user chose for the run, rather than in a /tmp that may be
        # small or in memory; whatever a killed run left there is stale.
        offload_dir = Path(checkpoint_dir) / "activations"
        shutil.rmtree(offload_dir, ignore_errors=True)

    # Block-wise reconstruction towards the dense model carries the dense model's activations along.
    dense_stream: Sequence[torch.Tensor] | None = None
    if resume is not None and config.reconstruct != "none" and config.reconstruct_target == "dense":
        dense_stream = resume.streams.get("dense")
        if dense_stream is None and resume.next_block < len(find_decoder_stack(model).blocks):
            raise ConfigError(f"{checkpoint_dir} lacks the dense activations to resume reconstruction from")

    def after_block(step: BlockStep, next_inputs: ActivationStore | None) -> None:
        report.blocks[-1]["seconds"] = time.perf_counter() - block_started
        if checkpoint is not None:
            carried = next_inputs is not None and dense_stream is not None
            streams = {"dense": dense_stream} if carried else None
            checkpoint.save(
                step.index,
                step.block,
                next_inputs,
                {"layers": report.layers, "blocks": report.blocks},
                **({"streams": streams} if streams else {}),
            )

    steps = sequential_blocks(
        model,
        windows,
        device=config.device,
        batch_size=config.batch_size,
        progress=progress,
        description=description,
        start=start,
        start_hidden=resume.hidden if resume is not None else None,
        after_block=after_block,
        block_loader=block_loader,
        offload=config.offload,
        offload_dtype=config.offload_dtype,
        offload_dir=offload_dir,
    )
    prune = METHODS[config.method]
    started = time.perf_counter()
    block_started = started
    for step in steps:
        block_started = time.perf_counter()
        _check_finite_parameters(step)
        layers = {
            name: layer
            for name, layer in prunable_layers(step.block, step.name, config.targets, config.ignore).items()
            if name not in left_dense
        }
        extra = {"hessian": True} if config.update == "admm" else {}  # ADMM needs X^T X after any method
        stats, select_batch, handles = attach_statistics(step, layers, config.method, **extra)
        targets = None
        # The dense stream advances through every block, also one with nothing to prune.
        if (
            config.reconstruct != "none"
            and len(step.hidden)
            and (layers or config.reconstruct_target == "dense")
        ):
            if config.reconstruct_target == "dense":
                dense_inputs = dense_stream if dense_stream is not None else step.hidden
                if not isinstance(dense_inputs, (ActivationStore, list)):  # read back from a checkpoint
                    store = _empty_store(step)
                    for batch in dense_inputs:
                        store.append(batch.to(step.device))
                    dense_inputs = store
                targets = replace(step, hidden=dense_inputs).forward_batches(outputs=_empty_store(step))
                if dense_inputs is not step.hidden and isinstance(dense_inputs, ActivationStore):
                    dense_inputs.close()
                dense_stream = targets
            else:
                targets = _empty_store(step)
        try:
            if stats or (targets is not None and config.reconstruct_target == "prefix"):
                outputs = targets if config.reconstruct_target == "prefix" else None
                step.forward_batches(before_batch=select_batch, outputs=outputs)
        finally:
            for handle in handles:
                handle.remove()
        layer_config = config
        if block_sparsity is not None:
            layer_config = replace(config, sparsity=block_sparsity[step.index], sparsity_profile="uniform")
        keeps: dict[nn.Module, torch.Tensor] = {}
        if world > 1 and stats:
            distributed.all_reduce_statistics(stats, step.device)
        block_layers = []
        for name, layer in layers.items():
            weight = weight_matrix(layer)
            try:
                result = prune(weight.to(step.device), stats.get(name), layer_config)
                if config.update == "admm":
                    result = admm_refine(weight.to(step.device), result, stats.get(name), config)
            except (NonFiniteError, ValueError) as error:
                raise type(error)(f"{name}: {error}") from None
            if world > 1:  # every rank continues from rank 0's weights, bit for bit
                distributed.broadcast_from_first(result.weight)
                distributed.broadcast_from_first(result.keep)
            set_weight_matrix(layer, result.weight)
            if targets is not None:
                keeps[layer] = result.keep
            entry = {
                "name": name,
                "shape": list(weight.shape),
                "parameters": weight.numel(),
                "pruned": int((~result.keep).sum().item()),
                "sparsity": result.sparsity,
                **result.info,
            }
            report.layers.append(entry)
            block_layers.append(name)
            stats.pop(name, None)
        block_entry: dict[str, Any] = {"index": step.index, "name": step.name, "layers": block_layers}
        if targets is not None and keeps:
            settings = ReconstructionSettings(
                config.reconstruct_steps, config.reconstruct_lr, reconstruction_seed(config.seed, step.index)
            )
            try:
                block_entry["reconstruction"] = reconstruct_block(
                    step.block, step.hidden, step.arguments, step.token_masks, targets, keeps, settings
                )
            except FloatingPointError as error:
                raise NonFiniteError(f"{step.name}: {error}") from None
            if world > 1:  # each rank trained on its own shard; all continue from rank 0's weights
                for layer in keeps:
                    distributed.broadcast_from_first(layer.weight.data)
            last = step.index == len(find_decoder_stack(model).blocks) - 1
            if isinstance(targets, ActivationStore) and (config.reconstruct_target == "prefix" or last):
                targets.close()  # the dense stream lives on into the next block
        report.blocks.append(block_entry)
    report.seconds = time.perf_counter() - started + sum(b.get("seconds", 0.0) for b in report.blocks[:start])
    return report
