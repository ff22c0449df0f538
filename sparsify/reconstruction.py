"""Block-wise reconstruction after masking: train a block's kept weights to match a target output.

Once a decoder block's layers are pruned, its kept weights are optimised so that the block's output on the
calibration windows matches a target: mean squared error over real tokens (padding masked out), Adam with a
cosine-decayed learning rate, one calibration batch per step in a seeded order. The gradient of every
pruned weight is zeroed before each step and the weights are multiplied by their masks after it, so the
sparsity pattern is exact after every step (N:M stays valid): only kept weights ever change.

The block trains in float32 whatever the model's dtype (float32 master weights; the block's other
parameters, its inputs and its floating-point arguments are cast for the duration) and is cast back to
its own dtypes at the end, where a pruned zero stays zero.

Which target (``PruneConfig.reconstruct_target``) is decided by the driver: ``dense`` is the dense
model's own output of this block (its activations, carried along the walk beside the pruned ones), so a
block also learns to undo the error of the pruned blocks before it; ``prefix`` is the dense block's output
on the pruned prefix's inputs, the local target of layer-wise methods. The student always sees the pruned
prefix's inputs, as it will at inference. ``bench/scripts/reconstruction_gemma.sh`` measures both.

Two options shape what the training fits (``PruneConfig.reconstruct_loss`` and ``reconstruct_prox``):

- ``loss="relative"`` scores every token by its squared error relative to the target's squared norm
  (:func:`relative_mse`). A decoder's residual stream carries a few tokens of huge norm (BOS, and the
  delimiters a model uses as attention sinks); in absolute terms their errors dominate the mean squared
  error, so ``mse`` spends a block's training on a handful of tokens, while each later block reads its input
  through a normalisation that cares about an error relative to the token's own scale.
- ``prox`` > 0 adds a proximal term toward the weights the block started from (those of the pruning method
  and its weight update, ADMM's exact least-squares solution where one ran): the mean over layers of
  ``||W - W0||^2 / ||W0||^2`` (:func:`proximal_penalty`), weighted by ``prox`` times the block's loss
  before training, so that the same ``prox`` means the same trade-off in every block whatever the scale of
  its activations. Training then corrects what the layer-wise solve cannot (errors that compound across
  layers) with fewer departures from it that only the calibration text asks for.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from polysparse.sparsify.model_graph import weight_matrix

EVAL_BATCHES = 8
"""Batches on which the block output error is reported before and after training (a fixed subset:
evaluating all 64 windows twice would cost as much as ~40 training steps on the 2-core CPU)."""


@dataclass(frozen=True)
class ReconstructionSettings:
    steps: int
    lr: float
    seed: int = 0
    loss: str = "mse"
    prox: float = 0.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown reconstruction loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if not self.prox >= 0.0:
            raise ValueError(f"the proximal weight must be zero or positive, got {self.prox!r}")


def masked_mse(output: torch.Tensor, target: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over real tokens (``token_mask`` True) and features of ``(output - target)^2``."""
    diff = (output - target.to(output.dtype)).pow(2)
    if token_mask is None:
        return diff.mean()
    mask = token_mask.reshape(diff.shape[:-1]).to(device=diff.device, dtype=diff.dtype)
    tokens = mask.sum().clamp_min(1.0)
    return (diff.sum(dim=-1) * mask).sum() / (tokens * diff.shape[-1])


def relative_mse(output: torch.Tensor, target: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over real tokens of ``||output - target||^2 / ||target||^2`` (each token's squared error relative
    to its own target's squared norm; a zero target counts as norm 1)."""
    diff = (output - target.to(output.dtype)).pow(2).sum(dim=-1)
    norm = target.to(output.dtype).pow(2).sum(dim=-1)
    relative = diff / torch.where(norm > 0, norm, torch.ones_like(norm))
    if token_mask is None:
        return relative.mean()
    mask = token_mask.reshape(relative.shape).to(device=relative.device, dtype=relative.dtype)
    return (relative * mask).sum() / mask.sum().clamp_min(1.0)


LOSSES = {"mse": masked_mse, "relative": relative_mse}
"""Block output losses by name (``PruneConfig.reconstruct_loss``)."""


def proximal_penalty(weights: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of ``||W - W0||^2 / ||W0||^2``: how far training moved each layer, relative to its
    size (pruned weights are zero in both, so only kept weights count). A zero anchor counts as norm 1."""
    if len(weights) != len(anchors) or not weights:
        raise ValueError(f"{len(weights)} weights and {len(anchors)} anchors: need one anchor per weight")
    terms = []
    for weight, anchor in zip(weights, anchors):
        size = anchor.pow(2).sum()
        terms.append((weight - anchor).pow(2).sum() / torch.where(size > 0, size, torch.ones_like(size)))
    return torch.stack(terms).mean()


def keep_in_parameter_layout(layer: nn.Module, keep: torch.Tensor) -> torch.Tensor:
    """The (out x in) keep-mask laid out like ``layer.weight`` (GPT-2's Conv1D stores in x out)."""
    keep = keep.to(device=layer.weight.device, dtype=torch.bool)
    return keep if weight_matrix(layer) is layer.weight else keep.t().contiguous()


def _cast_floats(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, tuple):
        return tuple(_cast_floats(v, dtype) for v in value)
    if isinstance(value, list):
        return [_cast_floats(v, dtype) for v in value]
    if isinstance(value, dict):
        return {k: _cast_floats(v, dtype) for k, v in value.items()}
    return value


def _batch_order(batches: int, steps: int, seed: int) -> list[int]:
    """Epochs of seeded permutations of the batches, cut to ``steps``."""
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    while len(order) < steps:
        order += torch.randperm(batches, generator=generator).tolist()
    return order[:steps]


def reconstruction_seed(seed: int, block_index: int) -> int:
    """One seed per block, the same in every process (resume draws the same order)."""
    return zlib.crc32(f"reconstruct:{seed}:{block_index}".encode())


def reconstruct_block(
    block: nn.Module,
    hidden: Sequence[torch.Tensor],
    arguments: Sequence[Any],
    token_masks: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    keeps: dict[nn.Module, torch.Tensor],
    settings: ReconstructionSettings,
) -> dict[str, Any]:
    """Train the weights of the layers in ``keeps`` (layer -> (out x in) keep-mask) in place; see module doc.

    ``hidden``, ``arguments`` (objects with ``args`` / ``kwargs``), ``token_masks`` and ``targets`` are per
    batch. Returns what happened: the block output error (``settings.loss``, mean over up to
    :data:`EVAL_BATCHES` batches) before and after, the first and last training losses (without the proximal
    term), seconds, and ``reverted``: training that did not lower that error is undone (the pruned weights
    are kept).
    """
    started = time.perf_counter()
    batches = len(hidden)
    if batches == 0 or not keeps:
        return {"steps": 0}
    if len(targets) != batches or len(arguments) != batches:
        raise ValueError(f"{batches} input batches but {len(targets)} targets and {len(arguments)} arguments")
    saved_dtypes = {name: t.dtype for name, t in list(block.named_parameters()) + list(block.named_buffers())}
    saved_grad = {name: p.requires_grad for name, p in block.named_parameters()}
    layers = list(keeps)
    block.float()
    params = [layer.weight for layer in layers]
    masks = [keep_in_parameter_layout(layer, keeps[layer]).to(torch.float32) for layer in layers]
    for p in block.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    float_args = [_cast_floats((a.args, a.kwargs), torch.float32) for a in arguments]

    def run(i: int) -> torch.Tensor:
        args, kwargs = float_args[i]
        out = block(hidden[i].to(torch.float32), *args, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    loss_of = LOSSES[settings.loss]

    def error(indices: list[int]) -> float:
        with torch.no_grad():
            return sum(loss_of(run(i), targets[i], token_masks[i]).item() for i in indices) / len(indices)

    evaluation = list(range(min(EVAL_BATCHES, batches)))
    losses: list[float] = []
    reverted = False
    try:
        before = error(evaluation)
        initial = [p.detach().clone() for p in params]
        optimizer = torch.optim.Adam(params, lr=settings.lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * s / settings.steps))
        )
        with torch.enable_grad():
            for i in _batch_order(batches, settings.steps, settings.seed):
                loss = loss_of(run(i), targets[i], token_masks[i])
                total = loss
                if settings.prox > 0:  # scaled by the loss before training: the same trade-off in every block
                    total = loss + settings.prox * before * proximal_penalty(params, initial)
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                for p, mask in zip(params, masks):
                    p.grad.mul_(mask)
                optimizer.step()
                schedule.step()
                with torch.no_grad():
                    for p, mask in zip(params, masks):
                        p.mul_(mask)  # Adam's update of a zero-gradient weight is 0; this makes it exact
                losses.append(loss.item())
        after = error(evaluation)
        if not after < before:  # never leave a block worse than pruning left it (or NaN)
            with torch.no_grad():
                for p, start in zip(params, initial):
                    p.copy_(start)
            reverted = True
    finally:
        for name, p in block.named_parameters():
            p.requires_grad_(saved_grad[name])
            p.grad = None
        with torch.no_grad():
            for name, tensor in list(block.named_parameters()) + list(block.named_buffers()):
                if tensor.dtype != saved_dtypes[name]:
                    tensor.data = tensor.data.to(saved_dtypes[name])
    if not all(math.isfinite(v) for v in losses):
        raise FloatingPointError("block reconstruction diverged (NaN or Inf loss); lower reconstruct_lr")
    return {
        "steps": settings.steps,
        "lr": settings.lr,
        **({"loss": settings.loss} if settings.loss != "mse" else {}),
        **({"prox": settings.prox} if settings.prox else {}),
        "error_before": before,
        "error_after": after,
        "reverted": reverted,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "seconds": time.perf_counter() - started,
    }
