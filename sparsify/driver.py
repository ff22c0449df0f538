"""The sequential driver: walk any Hugging Face decoder block by block on calibration windows.

1. *Capture.* Every decoder block's ``forward`` is replaced for one pass of the model by a stub that records
   the arguments the model passes to that block and hands the hidden states through unchanged. Arguments
   are captured **per block**: Gemma 3's sliding-window and full-attention blocks get different masks and
   RoPE tables, so copying block 0's arguments to every block (what the research code does) is wrong.
   The model runs with ``use_cache=False`` and any cache object that still turns up is replaced by
   ``None``, so no window can attend to another window's keys. Identical argument sets (all unpadded
   windows of one length share theirs) are stored once.
2. *Walk.* For each block: move it to the working device, let the caller observe its inputs (hooks,
   statistics, pruning), then run the (possibly pruned) block on the inputs to produce the next block's
   inputs, and move it back. Only one block sits on the accelerator at a time; the activations between
   blocks stay on it too, or in host memory or on disk when offloaded (see
   :mod:`polysparse.sparsify.activations`).

:func:`sequential_blocks` is the walk as a generator; :func:`prune_model` uses it to prune.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from polysparse.sparsify import distributed
from polysparse.sparsify.activations import ActivationStore
from polysparse.sparsify.calibration import TokenWindows
from polysparse.sparsify.checkpointing import PruneCheckpoint, run_fingerprint
from polysparse.sparsify.config import ConfigError, PruneConfig
from polysparse.sparsify.methods import METHODS, admm_refine, statistics_for
from polysparse.sparsify.model_graph import (
    DecoderStack,
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
from polysparse.sparsify.stats import LayerStatistics, NonFiniteError, float16_hint

log = logging.getLogger("polysparse.sparsify")

try:
    from transformers.cache_utils import Cache
except ImportError:  # pragma: no cover
    Cache = ()  # type: ignore[assignment,misc]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``: this process's CUDA device if any (``LOCAL_RANK`` under torchrun), else the CPU."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device(device)


def check_device(device: str | torch.device | None) -> torch.device:
    """The device a run will use, refused with a clear message if this machine does not have it."""
    try:
        resolved = resolve_device(device)
    except RuntimeError as error:  # torch.device("gpu")
        raise ConfigError(f"unknown device {device!r}: {error}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}"
            raise ConfigError(
                f"device {device!r}: no CUDA device is available (torch {torch.__version__} built {build}); "
                "use --device cpu"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r}: MPS is not available here; use --device cpu")
    return resolved


def _map_tensors(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, tuple):
        return tuple(_map_tensors(v, fn) for v in value)
    if isinstance(value, list):
        return [_map_tensors(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


def _same(a: Any, b: Any) -> bool:
    """Structural equality with tensors compared by value (shape, dtype and contents)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and a.device == b.device
            and torch.equal(a, b)
        )
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a is b or (type(a) is type(b) and a == b)


def _without_cache(value: Any) -> Any:
    if Cache and isinstance(value, Cache):
        return None
    return value


@dataclass
class BlockArguments:
    """Positional (after the hidden states) and keyword arguments the model passed to one block."""

    args: tuple
    kwargs: dict[str, Any]

    def to(self, device: torch.device) -> BlockArguments:
        move = lambda t: t.to(device)  # noqa: E731
        return BlockArguments(_map_tensors(self.args, move), _map_tensors(self.kwargs, move))


@dataclass
class CapturedInputs:
    """Inputs of the first block per batch, and every block's arguments per batch (deduplicated)."""

    hidden: list[torch.Tensor] | ActivationStore
    token_masks: list[torch.Tensor]
    arguments: list[list[BlockArguments]]  # per block: the distinct argument sets
    argument_index: list[list[int]]  # per block, per batch: index into arguments[block]
    returns_tuple: bool


class _CaptureDone(Exception):
    """Raised by the last block's stub: the rest of the model's forward is not needed."""


def capture_block_inputs(
    model: nn.Module,
    stack: DecoderStack,
    windows: TokenWindows,
    batch_size: int,
    hidden: ActivationStore | None = None,
    keep_hidden: bool = True,
) -> CapturedInputs:
    """Run the model once over the windows with every block stubbed out; see the module docstring.

    The first block's inputs go into ``hidden`` when given (offloaded activations), else into a list;
    ``keep_hidden=False`` records only the arguments (a resumed walk reads its inputs from the checkpoint).
    """
    blocks = stack.blocks
    captured = CapturedInputs(
        hidden=hidden if hidden is not None else [],
        token_masks=[],
        arguments=[[] for _ in blocks],
        argument_index=[[] for _ in blocks],
        returns_tuple=False,
    )
    learned_convention: list[bool] = []

    def make_stub(index: int, original: Callable[..., Any]) -> Callable[..., Any]:
        def stub(*args: Any, **kwargs: Any) -> Any:
            if args:
                hidden, rest = args[0], tuple(_without_cache(a) for a in args[1:])
            else:
                hidden, rest = kwargs.pop("hidden_states"), ()
            kwargs = {k: _without_cache(v) for k, v in kwargs.items()}
            if "use_cache" in kwargs:
                kwargs["use_cache"] = False
            record = BlockArguments(rest, kwargs)
            known = captured.arguments[index]
            for position, existing in enumerate(known):
                if _same(existing.args, record.args) and _same(existing.kwargs, record.kwargs):
                    captured.argument_index[index].append(position)
                    break
            else:
                known.append(record)
                captured.argument_index[index].append(len(known) - 1)
            if index == 0 and keep_hidden:
                captured.hidden.append(hidden.detach())
            if index == 0 and not learned_convention:
                # Learn whether blocks return a tensor or a tuple from one real call, so the stubs
                # hand back what the model's loop expects (a tensor indexed [0] would lose its batch).
                if any(p.device.type == "meta" for p in blocks[0].parameters()):
                    learned_convention.append(False)
                else:
                    out = original(hidden, *rest, **kwargs)
                    learned_convention.append(isinstance(out, tuple))
            if index == len(blocks) - 1:
                raise _CaptureDone  # nothing after the last block (final norm, LM head) is needed
            if learned_convention and learned_convention[0]:
                return (hidden,)
            return hidden

        return stub

    for index, block in enumerate(blocks):
        block.forward = make_stub(index, block.forward)
    try:
        with torch.no_grad():
            embed_device = _input_device(model)
            for input_ids, attention_mask in windows.batches(batch_size):
                captured.token_masks.append(attention_mask.bool())
                with contextlib.suppress(_CaptureDone):
                    model(
                        input_ids=input_ids.to(embed_device),
                        attention_mask=attention_mask.to(embed_device),
                        use_cache=False,
                    )
    finally:
        for block in blocks:
            del block.forward  # the instance attribute shadowed the class's forward
    captured.returns_tuple = bool(learned_convention and learned_convention[0])
    calls = len(captured.argument_index[0])  # one entry per call of the first block
    if calls != len(captured.token_masks):
        raise RuntimeError(
            f"the first decoder block ({stack.block_name(0)}) was called {calls} times for "
            f"{len(captured.token_masks)} batches; polysparse needs one call per forward"
        )
    return captured


def _input_device(model: nn.Module) -> torch.device:
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None:
        return next(embeddings.parameters()).device
    return next(model.parameters()).device


class BlockLoader(Protocol):
    """Materialises a block's parameters before its step and releases them after it."""

    def load(self, index: int, block: nn.Module) -> None: ...

    def unload(self, index: int, block: nn.Module) -> None: ...


@dataclass
class BlockStep:
    """One decoder block during the walk: on the working device, with its inputs per batch."""

    index: int
    name: str
    block: nn.Module
    device: torch.device
    hidden: Sequence[torch.Tensor]  # indexing yields the batch on the working device
    token_masks: list[torch.Tensor]
    arguments: list[BlockArguments]
    returns_tuple: bool

    def forward_batches(
        self,
        before_batch: Callable[[int], None] | None = None,
        outputs: ActivationStore | list[torch.Tensor] | None = None,
    ) -> ActivationStore | list[torch.Tensor] | None:
        """Run the block on every batch; ``before_batch(i)`` is called before batch ``i``.

        The outputs are appended to ``outputs`` when it is given (and it is returned), else dropped: the
        statistics pass only needs the hooks to see the inputs.
        """
        with torch.no_grad():
            for i, (hidden, arguments) in enumerate(zip(self.hidden, self.arguments)):
                if before_batch is not None:
                    before_batch(i)
                out = self.block(hidden, *arguments.args, **arguments.kwargs)
                if outputs is not None:
                    outputs.append(out[0] if isinstance(out, tuple) else out)
        return outputs


def sequential_blocks(
    model: nn.Module,
    windows: TokenWindows | None,
    *,
    device: torch.device | str | None = None,
    batch_size: int = 1,
    progress: bool = True,
    description: str = "blocks",
    start: int = 0,
    start_hidden: Sequence[torch.Tensor] | None = None,
    after_block: Callable[[BlockStep, ActivationStore | None], None] | None = None,
    block_loader: BlockLoader | None = None,
    offload: str = "none",
    offload_dtype: str | None = None,
    offload_dir: str | Path | None = None,
) -> Iterator[BlockStep]:
    """Yield each decoder block with its inputs; after the caller is done, run it to get the next inputs.

    With ``windows=None`` (magnitude pruning needs no activations) blocks are visited without inputs and
    nothing runs. ``start`` / ``start_hidden`` resume a walk at a later block with that block's saved
    inputs; ``after_block(step, next_inputs)`` is called once a block is finished (``next_inputs`` is None
    after the last block, whose outputs nothing needs, and without windows). A ``block_loader``
    materialises each block's parameters just before its step and releases them after it (models larger
    than memory). ``offload`` / ``offload_dtype`` say where and how the activations between blocks are
    kept (:class:`~polysparse.sparsify.activations.ActivationStore`); ``offload="disk"`` writes them under
    ``offload_dir`` (default: a temporary folder, removed afterwards).
    """
    device = resolve_device(device)
    model.eval()
    stack = find_decoder_stack(model)
    if start >= len(stack.blocks):  # a resumed run whose every block is done: nothing to capture or run
        return
    captured = None
    inputs: ActivationStore | None = None
    masks: list[torch.Tensor] = []
    temporary_root = None
    if offload == "disk" and offload_dir is None and windows is not None:
        offload_dir = temporary_root = tempfile.mkdtemp(prefix="polysparse-activations-")
    try:
        if windows is not None:
            inputs = ActivationStore(device, offload, offload_dtype, offload_dir)
            captured = capture_block_inputs(
                model, stack, windows, batch_size, hidden=inputs, keep_hidden=not start
            )
            if start:
                batches = len(captured.token_masks)
                if start_hidden is None or len(start_hidden) != batches:
                    raise ValueError(f"resuming at block {start} needs its inputs for all {batches} batches")
                inputs.extend(start_hidden)
            masks = [m.to(device) for m in captured.token_masks]
        bar = tqdm(
            total=len(stack.blocks), initial=start, desc=description, disable=not progress, unit="block"
        )
        for index, block in enumerate(stack.blocks):
            if index < start:
                continue
            if block_loader is not None:
                block_loader.load(index, block)
            home = next(block.parameters()).device
            block.to(device)
            arguments: list[BlockArguments] = []
            if captured is not None:
                distinct = [a.to(device) for a in captured.arguments[index]]
                arguments = [distinct[i] for i in captured.argument_index[index]]
            step = BlockStep(
                index=index,
                name=stack.block_name(index),
                block=block,
                device=device,
                hidden=inputs if inputs is not None else [],
                token_masks=masks,
                arguments=arguments,
                returns_tuple=captured.returns_tuple if captured is not None else False,
            )
            yield step
            outputs = None
            if inputs is not None and index < len(stack.blocks) - 1:
                outputs = step.forward_batches(outputs=inputs.successor())
            if after_block is not None:
                after_block(step, outputs)
            if outputs is not None:
                inputs.close()
                inputs = outputs
            block.to(home)
            if block_loader is not None:
                block_loader.unload(index, block)
            del arguments, step
            bar.update(1)
        bar.close()
    finally:
        if inputs is not None:
            inputs.close()
        if temporary_root is not None:
            shutil.rmtree(temporary_root, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------
# Pruning
# ----------------------------------------------------------------------------------------------------------


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


def _split_indivisible(
    layers: dict[str, nn.Module], config: PruneConfig
) -> tuple[dict[str, nn.Module], list[dict[str, Any]]]:
    if config.pattern is None:
        return layers, []
    keep, skipped = {}, []
    for name, layer in layers.items():
        in_features = weight_matrix(layer).shape[1]
        if in_features % config.pattern.m:
            skipped.append(
                {
                    "name": name,
                    "reason": f"in_features={in_features} is not a multiple of M={config.pattern.m}",
                }
            )
        else:
            keep[name] = layer
    return keep, skipped


def check_pattern_fits(model: nn.Module, config: PruneConfig) -> list[dict[str, Any]]:
    """Layers that cannot take the N:M pattern; raises when ``config.on_indivisible == 'error'``."""
    stack = find_decoder_stack(model)
    skipped: list[dict[str, Any]] = []
    for index, block in enumerate(stack.blocks):
        layers = prunable_layers(block, stack.block_name(index), config.targets, config.ignore)
        skipped += _split_indivisible(layers, config)[1]
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


def _attach_statistics(
    step: BlockStep, layers: dict[str, nn.Module], method: str, hessian: bool = False
) -> tuple[dict[str, LayerStatistics], Callable[[int], None], list[Any]]:
    """Forward hooks that feed each layer's inputs, minus padding, into its accumulator.

    ``hessian=True``: every layer also accumulates ``X^T X`` (the ADMM update needs it after any method).
    """
    stats: dict[str, LayerStatistics] = {}
    handles = []
    current: dict[str, torch.Tensor] = {}
    warned: set[str] = set()

    def select_batch(i: int) -> None:
        current["mask"] = step.token_masks[i]
        current["shared"] = {}  # layers fed the same tensor in this batch share its sums

    for name, layer in layers.items():
        accumulator = statistics_for(method, weight_matrix(layer).shape[1], hessian=hessian)
        if accumulator is None:
            continue
        stats[name] = accumulator

        def hook(module: nn.Module, inputs: tuple, output: Any, name: str = name) -> None:
            x = inputs[0]
            mask = current.get("mask")
            if mask is not None and mask.numel() == x[..., 0].numel():
                mask = mask.reshape(x.shape[:-1])
            elif mask is not None:
                if name not in warned:
                    log.warning("%s: inputs %s do not line up with tokens; padding not masked", name, x.shape)
                    warned.add(name)
                mask = None
            try:
                stats[name].add(x, mask, shared=current.get("shared"))
            except NonFiniteError as error:
                raise NonFiniteError(f"{name}: {error}{float16_hint(x.dtype)}") from None

        handles.append(layer.register_forward_hook(hook))
    return stats, select_batch, handles


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
    if config.sparsity_profile == "owl":
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
        layers, _ = _split_indivisible(
            prunable_layers(step.block, step.name, config.targets, config.ignore), config
        )
        extra = {"hessian": True} if config.update == "admm" else {}  # ADMM needs X^T X after any method
        stats, select_batch, handles = _attach_statistics(step, layers, config.method, **extra)
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
