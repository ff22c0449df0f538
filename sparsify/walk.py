"""The block walk: run any Hugging Face decoder block by block on calibration windows.

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

:func:`sequential_blocks` is the walk as a generator; :func:`polysparse.sparsify.driver.prune_model` uses it
to prune, and :mod:`polysparse.sparsify.hooks` feeds the layers' inputs into statistics on the way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from polysparse.sparsify.activations import ActivationStore
from polysparse.sparsify.calibration import TokenWindows
from polysparse.sparsify.config import ConfigError
from polysparse.sparsify.model_graph import (
    DecoderStack,
    find_decoder_stack,
)

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


def walk_settings(config) -> dict[str, Any]:
    """The :func:`sequential_blocks` keywords a :class:`~polysparse.sparsify.config.PruneConfig` decides:
    where blocks run, windows per forward pass, and where and how activations wait between blocks."""
    keys = ("device", "batch_size", "offload", "offload_dtype")
    return {key: getattr(config, key) for key in keys}


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
