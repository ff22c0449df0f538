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
from polysparse.sparsify.checkpointing import PruneCheckpoint, ResumeState, run_fingerprint
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
    walk_settings,
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
    _check_run(config, windows, checkpoint_dir, block_loader)
    skipped = check_pattern_fits(model, config)
    check_something_to_prune(model, config, skipped)
    calibration = windows.summary() if windows is not None else {"windows": 0}
    report = PruneReport(config=config.to_dict(), calibration=calibration, skipped=skipped)
    windows, checkpoint_dir = _rank_share(report, windows, checkpoint_dir)
    block_sparsity = _block_sparsity(model, config, windows, report, progress, block_loader)
    checkpoint, resume = _restore(model, config, report, checkpoint_dir, block_loader)
    blocks = len(find_decoder_stack(model).blocks)
    run = _BlockRun(
        config=config,
        report=report,
        left_dense={entry["name"] for entry in skipped},
        block_sparsity=block_sparsity,
        blocks=blocks,
        world=distributed.rank_and_world()[1],
        dense_stream=_resumed_dense_stream(config, resume, blocks, checkpoint_dir),
    )
    start = resume.next_block if resume is not None else 0
    steps = sequential_blocks(
        model,
        windows,
        progress=progress,
        description=f"{config.method} {config.sparsity_label}",
        start=start,
        start_hidden=resume.hidden if resume is not None else None,
        after_block=lambda step, next_inputs: run.finish_block(step, next_inputs, checkpoint),
        block_loader=block_loader,
        offload_dir=_offload_dir(config, checkpoint_dir),
        **walk_settings(config),
    )
    started = time.perf_counter()
    run.block_started = started
    for step in steps:
        run.prune_block(step)
    report.seconds = time.perf_counter() - started + sum(b.get("seconds", 0.0) for b in report.blocks[:start])
    return report


def _check_run(
    config: PruneConfig,
    windows: TokenWindows | None,
    checkpoint_dir: str | Path | None,
    block_loader: BlockLoader | None,
) -> None:
    """Refuse a run that cannot start: streaming without a checkpoint folder, calibration steps without
    windows, windows longer than ``config.seqlen``."""
    if block_loader is not None and checkpoint_dir is None:
        raise ValueError("streaming blocks from disk needs a checkpoint_dir to keep the pruned blocks in")
    if windows is None and config.method != "magnitude":
        raise ConfigError(f"{config.method} needs calibration windows")
    if windows is None and needs_calibration(config):
        raise ConfigError(f"{', '.join(calibrated_steps(config))} need calibration windows")
    if windows is not None and windows.seqlen > config.seqlen:
        raise ConfigError(f"windows are {windows.seqlen} tokens long, more than seqlen={config.seqlen}")


def _rank_share(
    report: PruneReport, windows: TokenWindows | None, checkpoint_dir: str | Path | None
) -> tuple[TokenWindows | None, str | Path | None]:
    """This rank's share of the windows and its own checkpoint folder (the whole of both on one rank)."""
    rank, world = distributed.rank_and_world()
    if world > 1:
        report.calibration["ranks"] = world
        if windows is not None:
            windows = distributed.shard_windows(windows, rank, world)
        if checkpoint_dir is not None:
            checkpoint_dir = Path(checkpoint_dir) / f"rank-{rank}"
    return windows, checkpoint_dir


def _block_sparsity(
    model: nn.Module,
    config: PruneConfig,
    windows: TokenWindows | None,
    report: PruneReport,
    progress: bool,
    block_loader: BlockLoader | None,
) -> list[float] | None:
    """Each block's sparsity under an outlier-weighted profile (recorded in the report); None if uniform."""
    if config.sparsity_profile == "uniform":  # owl, owl-lang below
        return None
    # On the dense model, before a resumed run loads its pruned blocks: the same profile every time.
    from polysparse.sparsify.profiles import owl_profile

    report.profile = owl_profile(model, config, windows, progress=progress, block_loader=block_loader)
    return report.profile["block_sparsity"]


def _restore(
    model: nn.Module,
    config: PruneConfig,
    report: PruneReport,
    checkpoint_dir: str | Path | None,
    block_loader: BlockLoader | None,
) -> tuple[PruneCheckpoint | None, ResumeState | None]:
    """The run's checkpoint (None without ``checkpoint_dir``) and what an earlier run left to resume from
    (None when nothing): its pruned blocks are loaded and its report entries taken over."""
    if checkpoint_dir is None:
        return None, None
    # A streamed model's blocks are not in memory: their files are hashed instead.
    content_digest = getattr(block_loader, "content_digest", None)
    fingerprint = run_fingerprint(
        model,
        config.to_dict(),
        report.calibration.get("sha256"),
        weights_sha256=content_digest() if content_digest is not None else None,
    )
    checkpoint = PruneCheckpoint(checkpoint_dir, fingerprint)
    resume = checkpoint.restore(find_decoder_stack(model).blocks, load_weights=block_loader is None)
    if resume is not None:
        report.layers = resume.report.get("layers", [])
        report.blocks = resume.report.get("blocks", [])
    return checkpoint, resume


def _resumed_dense_stream(
    config: PruneConfig, resume: ResumeState | None, blocks: int, checkpoint_dir: str | Path | None
) -> Sequence[torch.Tensor] | None:
    """Block-wise reconstruction towards the dense model carries the dense model's activations along: a
    resumed run takes them from its checkpoint."""
    if resume is None or config.reconstruct == "none" or config.reconstruct_target != "dense":
        return None
    dense_stream = resume.streams.get("dense")
    if dense_stream is None and resume.next_block < blocks:
        raise ConfigError(f"{checkpoint_dir} lacks the dense activations to resume reconstruction from")
    return dense_stream


def _offload_dir(config: PruneConfig, checkpoint_dir: str | Path | None) -> str | Path | None:
    """Where disk offload writes activations: the configured folder, else beside the checkpoints."""
    if config.offload == "disk" and config.offload_dir is None and checkpoint_dir is not None:
        # Beside the checkpoints, on the disk the user chose for the run, rather than in a /tmp that may be
        # small or in memory; whatever a killed run left there is stale.
        offload_dir = Path(checkpoint_dir) / "activations"
        shutil.rmtree(offload_dir, ignore_errors=True)
        return offload_dir
    return config.offload_dir


@dataclass
class _BlockRun:
    """The per-block work of one :func:`prune_model` run and the state it carries from block to block."""

    config: PruneConfig
    report: PruneReport
    left_dense: set[str]
    block_sparsity: list[float] | None
    blocks: int
    world: int
    dense_stream: Sequence[torch.Tensor] | None = None
    block_started: float = 0.0

    def prune_block(self, step: BlockStep) -> None:
        """Statistics, masks (and the ADMM update), reconstruction of one block; its entry in the report."""
        config = self.config
        self.block_started = time.perf_counter()
        _check_finite_parameters(step)
        layers = {
            name: layer
            for name, layer in prunable_layers(step.block, step.name, config.targets, config.ignore).items()
            if name not in self.left_dense
        }
        extra = {"hessian": True} if config.update == "admm" else {}  # ADMM needs X^T X after any method
        stats, select_batch, handles = attach_statistics(step, layers, config.method, **extra)
        targets = self._reconstruction_targets(step, layers)
        try:
            if stats or (targets is not None and config.reconstruct_target == "prefix"):
                outputs = targets if config.reconstruct_target == "prefix" else None
                step.forward_batches(before_batch=select_batch, outputs=outputs)
        finally:
            for handle in handles:
                handle.remove()
        keeps = self._prune_layers(step, layers, stats, keep_masks=targets is not None)
        block_entry: dict[str, Any] = {"index": step.index, "name": step.name, "layers": list(layers)}
        if targets is not None and keeps:
            block_entry["reconstruction"] = self._reconstruct(step, targets, keeps)
        self.report.blocks.append(block_entry)

    def _reconstruction_targets(
        self, step: BlockStep, layers: dict[str, nn.Module]
    ) -> ActivationStore | list[torch.Tensor] | None:
        """What the block's output is trained towards (None without reconstruction): the dense model's
        outputs, advancing the dense stream through every block (also one with nothing to prune), or a store
        for the pruned prefix's outputs, filled by the statistics pass."""
        config = self.config
        if config.reconstruct == "none" or not len(step.hidden):
            return None
        if config.reconstruct_target != "dense":
            return _empty_store(step) if layers else None
        dense_inputs = self.dense_stream if self.dense_stream is not None else step.hidden
        if not isinstance(dense_inputs, (ActivationStore, list)):  # read back from a checkpoint
            store = _empty_store(step)
            for batch in dense_inputs:
                store.append(batch.to(step.device))
            dense_inputs = store
        targets = replace(step, hidden=dense_inputs).forward_batches(outputs=_empty_store(step))
        if dense_inputs is not step.hidden and isinstance(dense_inputs, ActivationStore):
            dense_inputs.close()
        self.dense_stream = targets
        return targets

    def _prune_layers(
        self, step: BlockStep, layers: dict[str, nn.Module], stats: dict[str, Any], keep_masks: bool
    ) -> dict[nn.Module, torch.Tensor]:
        """Prune (and update) every layer of the block from its statistics; report each. Returns the kept
        positions per layer when ``keep_masks`` (reconstruction trains only those)."""
        config = self.config
        layer_config = config
        if self.block_sparsity is not None:
            layer_config = replace(
                config, sparsity=self.block_sparsity[step.index], sparsity_profile="uniform"
            )
        world = self.world
        if world > 1 and stats:
            distributed.all_reduce_statistics(stats, step.device)
        prune = METHODS[config.method]
        keeps: dict[nn.Module, torch.Tensor] = {}
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
            if keep_masks:
                keeps[layer] = result.keep
            self.report.layers.append(
                {
                    "name": name,
                    "shape": list(weight.shape),
                    "parameters": weight.numel(),
                    "pruned": int((~result.keep).sum().item()),
                    "sparsity": result.sparsity,
                    **result.info,
                }
            )
            stats.pop(name, None)
        return keeps

    def _reconstruct(
        self,
        step: BlockStep,
        targets: ActivationStore | list[torch.Tensor],
        keeps: dict[nn.Module, torch.Tensor],
    ) -> dict[str, Any]:
        """Train the block's kept weights towards ``targets``; the reconstruction's record."""
        config = self.config
        settings = ReconstructionSettings(
            config.reconstruct_steps,
            config.reconstruct_lr,
            reconstruction_seed(config.seed, step.index),
            loss=config.reconstruct_loss,
            prox=float(config.reconstruct_prox),
        )
        try:
            record = reconstruct_block(
                step.block, step.hidden, step.arguments, step.token_masks, targets, keeps, settings
            )
        except FloatingPointError as error:
            raise NonFiniteError(f"{step.name}: {error}") from None
        if self.world > 1:  # each rank trained on its own shard; all continue from rank 0's weights
            for layer in keeps:
                distributed.broadcast_from_first(layer.weight.data)
        last = step.index == self.blocks - 1
        if isinstance(targets, ActivationStore) and (config.reconstruct_target == "prefix" or last):
            targets.close()  # the dense stream lives on into the next block
        return record

    def finish_block(
        self, step: BlockStep, next_inputs: ActivationStore | None, checkpoint: PruneCheckpoint | None
    ) -> None:
        """After the walk moved the activations on: time the block and keep its state in the checkpoint."""
        self.report.blocks[-1]["seconds"] = time.perf_counter() - self.block_started
        if checkpoint is not None:
            carried = next_inputs is not None and self.dense_stream is not None
            streams = {"dense": self.dense_stream} if carried else None
            checkpoint.save(
                step.index,
                step.block,
                next_inputs,
                {"layers": self.report.layers, "blocks": self.report.blocks},
                **({"streams": streams} if streams else {}),
            )
