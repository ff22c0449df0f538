"""Streaming activation statistics of one linear layer's inputs, padding excluded.

For inputs ``X`` (tokens x in_features) seen over the calibration windows:

* Wanda needs ``||X_j||_2^2`` per input feature ``j``;
* SparseGPT needs ``sum_t x_t x_t^T`` (its Hessian is ``H = 2/n * sum x x^T``).

Both are accumulated in float32 (float64 on request) whatever the model's dtype, one batch at a time, so
nothing but the running sums is kept. Positions whose token mask is False (padding) are dropped before
they are added: a padded batch gives the same statistics as its unpadded sequences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

GRAM_PANEL = 128
"""Column panel of :func:`gram` on the CPU: of 128, 256 and 512, 128 was fastest for Gemma 3 270M's input
widths (640, 1024, 2048) at 512 tokens per batch on one thread
(``python -P -m polysparse.bench.experiments.gram_speed`` -> ``bench/results/sparsegpt_speed/gram.md``)."""


def gram(x: torch.Tensor, panel: int = GRAM_PANEL) -> torch.Tensor:
    """``x^T x`` of a (tokens x features) matrix.

    On the CPU only the panels on and above the diagonal are multiplied and the rest is mirrored: about half
    the arithmetic of one ``x.t() @ x``, which BLAS computes in full. After the blocks' forward passes these
    sums are SparseGPT's largest cost on the CPU; the panels take 27-35% off each call (``GRAM_PANEL``). Other
    devices keep the single product (one cuBLAS call; many small launches would cost more than they save).
    """
    features = x.shape[1]
    if x.device.type != "cpu" or features <= panel:
        return x.t() @ x
    out = torch.empty(features, features, dtype=x.dtype, device=x.device)
    for start in range(0, features, panel):
        stop = min(start + panel, features)
        rows = x[:, start:stop].t() @ x[:, start:]
        out[start:stop, start:] = rows
        out[stop:, start:stop] = rows[:, stop - start :].t()
    return out


class NonFiniteError(ValueError):
    """NaN or Inf in weights or activations."""


def float16_hint(dtype: torch.dtype) -> str:
    """The likely cause of NaN or Inf in float16 activations, as a clause for an error message."""
    if dtype != torch.float16:
        return ""
    return (
        " (float16 overflows in this model's activations, beyond 65504: use --dtype bfloat16, which has "
        "float32's range, or --dtype float32)"
    )


@dataclass
class LayerStatistics:
    """Running sums for one layer. ``want_norms`` for Wanda, ``want_hessian`` for SparseGPT."""

    in_features: int
    want_norms: bool = False
    want_hessian: bool = False
    dtype: torch.dtype = torch.float32
    ntokens: int = 0
    sq_norms: torch.Tensor | None = field(default=None, repr=False)
    xtx: torch.Tensor | None = field(default=None, repr=False)

    def add(
        self,
        inputs: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        shared: dict[tuple, tuple] | None = None,
    ) -> None:
        """Add a batch of inputs ``[..., in_features]``; ``token_mask`` (``inputs.shape[:-1]``) keeps True.

        ``shared``: a dict that lives for one batch. Layers fed the very same tensor (q, k and v; gate and
        up) then compute its sums once: the first call stores them there, the others add the same values,
        so every accumulator ends bitwise as if it had computed its own.
        """
        if inputs.shape[-1] != self.in_features:
            raise ValueError(f"inputs have {inputs.shape[-1]} features, expected {self.in_features}")
        key = (id(inputs), self.want_norms, self.want_hessian, self.dtype)
        entry = shared.get(key) if shared is not None else None
        if entry is not None and entry[0] is inputs:  # the same tensor object, kept alive by the entry
            _, norms, xtx, ntokens = entry
            self._accumulate(norms, xtx, ntokens, copy=True)
            return
        norms, xtx, ntokens = self._sums(inputs, token_mask)
        if shared is not None:
            shared[key] = (inputs, norms, xtx, ntokens)
        self._accumulate(norms, xtx, ntokens, copy=shared is not None)

    def _accumulate(
        self, norms: torch.Tensor | None, xtx: torch.Tensor | None, ntokens: int, copy: bool
    ) -> None:
        if ntokens == 0:
            return
        if norms is not None:
            self.sq_norms = (
                (norms.clone() if copy else norms) if self.sq_norms is None else self.sq_norms.add_(norms)
            )
        if xtx is not None:
            self.xtx = (xtx.clone() if copy else xtx) if self.xtx is None else self.xtx.add_(xtx)
        self.ntokens += ntokens

    def _sums(
        self, inputs: torch.Tensor, token_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, int]:
        """This batch's ``sum x_j^2`` and ``sum x x^T`` (as requested) and its number of real tokens."""
        x = inputs.detach()
        if token_mask is not None:
            if token_mask.shape != x.shape[:-1]:
                raise ValueError(f"token mask {tuple(token_mask.shape)} does not fit inputs {tuple(x.shape)}")
            token_mask = token_mask.to(device=x.device, dtype=torch.bool)
            if not token_mask.all():  # indexing copies; unpadded batches (the common case) skip it
                x = x[token_mask]
        x = x.reshape(-1, self.in_features).to(self.dtype)
        if x.shape[0] == 0:
            return None, None, 0
        # NaN/Inf in x reach these sums (x_j^2 sits on the diagonal of x^T x), so checking the small
        # per-batch results catches them at a fraction of the cost of scanning x itself.
        norms = xtx = None
        if self.want_norms:
            norms = (x * x).sum(dim=0)
            self._check(norms)
        if self.want_hessian:
            xtx = gram(x)
            self._check(torch.diagonal(xtx))
        return norms, xtx, x.shape[0]

    @staticmethod
    def _check(summary: torch.Tensor) -> None:
        if not torch.isfinite(summary).all():
            raise NonFiniteError("NaN or Inf in the layer's input activations")

    def feature_norms(self) -> torch.Tensor:
        """``||X_j||_2`` per input feature (Wanda's scale)."""
        if self.sq_norms is None:
            raise ValueError("no activations were recorded for this layer")
        return self.sq_norms.sqrt()

    def hessian(self) -> torch.Tensor:
        """``H = 2/n * sum x x^T`` in the accumulator dtype (a new tensor)."""
        if self.xtx is None or self.ntokens == 0:
            raise ValueError("no activations were recorded for this layer")
        return self.xtx * (2.0 / self.ntokens)

    def merge_(self, other: LayerStatistics) -> LayerStatistics:
        """Add another accumulator's sums into this one (used to combine shards of the calibration)."""
        self.ntokens += other.ntokens
        for name in ("sq_norms", "xtx"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs is not None:
                setattr(self, name, theirs.clone() if mine is None else mine.add_(theirs))
        return self
