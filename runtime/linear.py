"""``Sparse24Linear``: a linear layer whose weight is held in the 2:4 format, run through a chosen backend.

The module holds the compressed weight of :mod:`polysparse.kernels.sparse24` (``values`` ``(out, in/2)`` in
the weight's dtype, ``meta`` ``(out, in/16)`` int16) as buffers, so ``.to(device)`` / ``.half()`` move and
cast them like any weight and ``state_dict()`` holds exactly what a checkpoint stores. Backends:

* ``triton``: polysparse's :func:`~polysparse.kernels.sparse24_matmul.sparse24_linear` (fp16/bf16,
  ``in`` and ``out`` multiples of 64; CUDA, or CPU through ``TRITON_INTERPRET=1`` for tests).
* ``torch``: PyTorch's semi-structured sparse tensor (cuSPARSELt where the build has it, else CUTLASS) via
  :func:`~polysparse.kernels.sparse24_convert.to_torch_semi_structured`; CUDA sm80+ only, fp16/bf16.
* ``dense``: ``F.linear`` on the decompressed weight. Where the weight is decompressed is a memory/speed
  trade: on CPU (the only place this backend is the *whole* path) the dense weight is decompressed once and
  cached, because the PyTorch reference decompression costs more than the matmul it feeds and the CPU has
  no sparse kernel to save memory for anyway; on CUDA it is decompressed per call into a temporary (one
  weight-sized write with the Triton decompress kernel), so the model keeps its compressed footprint while
  ``auto`` sends prefill-size calls to cuBLAS. ``cache_dense=True/False`` overrides the rule per layer.
* ``auto``: chosen per call from the number of rows ``M`` (tokens in the call) by a :class:`DispatchTable`.

Whatever is requested, the backend that actually ran is counted (:func:`backend_runs`) and a fallback (a
requested backend that cannot run on these inputs) is logged once per (layer shape, reason): a benchmark can
say what it measured. Under ``torch.compile`` the counting is skipped (a traced graph runs no Python).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from polysparse.kernels import (
    aligned_meta,
    check_compressed,
    compress_24,
    decompress_24,
    decompress_24_reference,
    device_reason,
    m_bucket,
    semi_structured_reason,
    sparse24_linear_unsupported,
    to_torch_semi_structured,
)
from polysparse.runtime.backends import BACKENDS, Backend

log = logging.getLogger("polysparse.runtime")

Layout = Literal["linear", "conv1d"]

_HALF_DTYPES = (torch.float16, torch.bfloat16)

# Provider names of the kernel benchmark (bench/kernels/sparse24_matmul.py) -> runtime backends.
_PROVIDER_BACKEND = {
    "triton": "triton",
    "dense": "dense",
    "torch-cusparselt": "torch",
    "torch-cutlass": "torch",
}


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


# ----------------------------------------------------------------------------------------------------------
# Dispatch table
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatchTable:
    """Which backend ``auto`` runs for a call of ``M`` rows on a CUDA device.

    ``entries`` are ``(in_features, out_features, m_bucket, backend)`` with ``m_bucket = ceil(log2(M))``, as
    the kernel benchmark measures them (its ``dispatch_table``); for a shape it measured, the entry of the
    nearest bucket decides. Shapes it did not measure, and a table without entries, follow the default rule:
    ``triton`` for ``M <= decode_max_m`` (decode and small batches, memory bound: the compressed weight is
    9/16 of the dense bytes) and ``dense`` (cuBLAS) above (prefill, compute bound: expanding the weight in
    registers is pure overhead there). On a CPU, ``auto`` is always ``dense``: the Triton interpreter exists
    for tests, not for speed.
    """

    entries: tuple[tuple[int, int, int, str], ...] = ()
    decode_max_m: int = 64
    source: str = "default rule"

    def __post_init__(self) -> None:
        for entry in self.entries:
            if len(entry) != 4 or entry[3] not in ("triton", "torch", "dense"):
                raise ValueError(
                    f"dispatch entry must be (in, out, m_bucket, triton|torch|dense), got {entry}"
                )

    def choose(self, m: int, out_features: int, in_features: int) -> str:
        """The backend for a CUDA call of ``m`` rows on a ``out_features x in_features`` weight."""
        candidates = [e for e in self.entries if e[0] == in_features and e[1] == out_features]
        if not candidates:
            return "triton" if m <= self.decode_max_m else "dense"
        bucket = m_bucket(m)
        return min(candidates, key=lambda e: (abs(e[2] - bucket), e[2]))[3]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], *, source: str = "rows") -> DispatchTable:
        """From the kernel benchmark's ``dispatch_table`` rows (``in_features``, ``out_features``,
        ``m_bucket``, ``best`` provider); providers the runtime has no backend for are dropped."""
        entries = []
        for row in rows:
            backend = _PROVIDER_BACKEND.get(str(row["best"]))
            if backend is not None:
                entries.append(
                    (int(row["in_features"]), int(row["out_features"]), int(row["m_bucket"]), backend)
                )
        return cls(entries=tuple(entries), source=source)

    @classmethod
    def from_json(cls, path: str | Path) -> DispatchTable:
        """The ``dispatch_table`` of a kernel benchmark result file (``sparse24_matmul.json``)."""
        path = Path(path)
        payload = json.loads(path.read_text(encoding="utf-8"))
        if payload.get("smoke"):
            raise ValueError(f"{path} is a smoke run (interpreter timings): not a dispatch table")
        device = (payload.get("environment") or {}).get("device", "unknown device")
        return cls.from_rows(payload.get("dispatch_table", []), source=f"{path} ({device})")

    @classmethod
    def load_default(cls, path: str | Path | None) -> DispatchTable:
        """The table of ``path`` when it exists and is a GPU measurement, else the default rule (logged)."""
        if path is not None and Path(path).is_file():
            try:
                return cls.from_json(path)
            except (ValueError, KeyError, json.JSONDecodeError) as error:
                log.warning("ignoring dispatch table %s: %s; using the default rule", path, error)
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "decode_max_m": self.decode_max_m, "entries": len(self.entries)}


DEFAULT_DISPATCH = DispatchTable()

# ----------------------------------------------------------------------------------------------------------
# Backend selection (pure) and the record of what ran
# ----------------------------------------------------------------------------------------------------------


def unavailable_reason(
    backend: str, *, dtype: torch.dtype, device: torch.device, out_features: int, in_features: int
) -> str | None:
    """``None`` when ``backend`` can run a layer of this shape on these inputs, else why not."""
    if backend == "dense":
        return None
    if dtype not in _HALF_DTYPES:
        return f"{backend} takes fp16/bf16, the layer is {dtype}"
    if backend == "triton":
        return sparse24_linear_unsupported(dtype, out_features, in_features) or device_reason(device)

    if backend == "torch":
        reason = semi_structured_reason(device)
        if reason is None and (out_features % 32 or in_features % 64):
            reason = (
                f"semi-structured needs out % 32 == 0 and in % 64 == 0, got {in_features} -> {out_features}"
            )
        return reason
    raise ValueError(f"unknown backend {backend!r}")


def select_backend(
    requested: str,
    *,
    m: int,
    dtype: torch.dtype,
    device: torch.device,
    out_features: int,
    in_features: int,
    table: DispatchTable = DEFAULT_DISPATCH,
) -> tuple[str, str | None]:
    """``(backend to run, fallback reason or None)`` for one call of ``m`` rows."""
    wanted = requested
    if requested == "auto":
        if device.type != "cuda":
            return "dense", None
        wanted = table.choose(m, out_features, in_features)
    reason = unavailable_reason(
        wanted, dtype=dtype, device=device, out_features=out_features, in_features=in_features
    )
    if reason is None:
        return wanted, None
    return "dense", f"{wanted} unavailable: {reason}"


_runs: Counter[tuple[str, str, str | None]] = Counter()
_logged: set[tuple[int, int, str]] = set()


def _note_run(requested: str, ran: str, reason: str | None, out_features: int, in_features: int) -> None:
    _runs[(requested, ran, reason)] += 1
    if reason is not None and (in_features, out_features, reason) not in _logged:
        _logged.add((in_features, out_features, reason))
        log.warning(
            "Sparse24Linear %d -> %d: %s requested, running dense (%s)",
            in_features,
            out_features,
            requested,
            reason,
        )


def backend_runs() -> list[dict[str, Any]]:
    """Each ``(requested, ran, fallback reason)`` seen by eager forward calls in this process, counted."""
    return [
        {"requested": req, "ran": ran, "fallback_reason": reason, "calls": count}
        for (req, ran, reason), count in sorted(
            _runs.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")
        )
    ]


def reset_backend_runs() -> None:
    """Forget the counts and which fallbacks were logged (a new measurement logs them again)."""
    _runs.clear()
    _logged.clear()


# ----------------------------------------------------------------------------------------------------------
# The module
# ----------------------------------------------------------------------------------------------------------


class Sparse24Linear(nn.Module):
    """``y = x W^T + b`` with ``W`` (``out x in``) stored as 2:4 ``values`` + ``meta`` buffers.

    Build it with :meth:`from_dense` (validates that the weight is 2:4) or from an ``nn.Linear`` /
    GPT-2 ``Conv1D`` with :meth:`from_module`. ``layout`` records which module type it replaced (a
    ``Conv1D`` stores ``W^T``; the 2:4 groups always run along ``in_features``), so a checkpoint can be
    exported back to the original dense layout.
    """

    def __init__(
        self,
        values: torch.Tensor,
        meta: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        backend: Backend = "auto",
        dispatch: DispatchTable = DEFAULT_DISPATCH,
        cache_dense: bool | None = None,
        layout: Layout = "linear",
    ) -> None:
        super().__init__()
        if not values.is_meta:
            out_features, in_features = check_compressed(values, meta)
        else:  # shells built on the meta device while loading a checkpoint
            out_features, in_features = values.shape[0], 2 * values.shape[1]
        self.in_features = in_features
        self.out_features = out_features
        self.register_buffer("values", values)
        self.register_buffer("meta", meta)
        if bias is not None:
            if tuple(bias.shape) != (out_features,):
                raise ValueError(f"bias has shape {tuple(bias.shape)}, expected ({out_features},)")
            self.bias = nn.Parameter(bias, requires_grad=False)
        else:
            self.register_parameter("bias", None)
        self._backend = check_backend(backend)
        self._dispatch = dispatch
        self.cache_dense = cache_dense
        self.layout = layout
        self._clear_caches()

    # --- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_dense(
        cls, weight: torch.Tensor, bias: torch.Tensor | None = None, **kwargs: Any
    ) -> Sparse24Linear:
        """Compress an ``(out, in)`` weight; raises ``ValueError`` naming the first group that is not 2:4."""
        weight = weight.detach()
        values, meta = compress_24(weight, impl="auto" if weight.is_cuda else "reference")
        return cls(values, meta, None if bias is None else bias.detach(), **kwargs)

    @classmethod
    def from_module(cls, module: nn.Module, **kwargs: Any) -> Sparse24Linear:
        """From an ``nn.Linear`` or a transformers ``Conv1D`` (whose weight is stored ``in x out``)."""
        layout = module_layout(module)
        weight = module.weight.detach()
        if layout == "conv1d":
            weight = weight.t()
        return cls.from_dense(weight.contiguous(), module.bias, layout=layout, **kwargs)

    def to_dense_module(self) -> nn.Module:
        """An ``nn.Linear`` (or ``Conv1D``) holding the decompressed weight: the dense-with-zeros layer."""
        weight = self.dense_weight()
        bias = None if self.bias is None else self.bias.detach().clone()
        if self.layout == "conv1d":
            from transformers.pytorch_utils import Conv1D

            with torch.device("meta"):
                module = Conv1D(self.out_features, self.in_features)
            module.weight = nn.Parameter(weight.t().contiguous(), requires_grad=False)
            if bias is None:  # Conv1D always has a bias
                bias = torch.zeros(self.out_features, dtype=weight.dtype, device=weight.device)
            module.bias = nn.Parameter(bias, requires_grad=False)
            return module
        module = nn.Linear(self.in_features, self.out_features, bias=bias is not None, device="meta")
        module.weight = nn.Parameter(weight, requires_grad=False)
        if bias is not None:
            module.bias = nn.Parameter(bias, requires_grad=False)
        return module

    # --- backend --------------------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = check_backend(value)
        self._plans.clear()

    @property
    def dispatch(self) -> DispatchTable:
        return self._dispatch

    @dispatch.setter
    def dispatch(self, value: DispatchTable) -> None:
        self._dispatch = value
        self._plans.clear()

    def backend_for(self, m: int) -> tuple[str, str | None]:
        """The backend a call of ``m`` rows runs, and why it is not the one asked for (None if it is)."""
        return select_backend(
            self._backend,
            m=m,
            dtype=self.values.dtype,
            device=self.values.device,
            out_features=self.out_features,
            in_features=self.in_features,
            table=self._dispatch,
        )

    def _plan(self, m: int) -> tuple[str, tuple[str, str, str | None]]:
        """``(backend to run, record key)`` for calls of ``m`` rows, decided once per ``m`` (a decode step
        then costs one dict lookup, not a selection: Python overhead per layer counts at batch 1)."""
        plan = self._plans.get(m) if not torch.compiler.is_compiling() else None
        if plan is None:
            backend, reason = self.backend_for(m)
            plan = (backend, (self._backend, backend, reason))
            if not torch.compiler.is_compiling():
                self._plans[m] = plan
        return plan

    # --- caches -------------------------------------------------------------------------------------------

    def _clear_caches(self) -> None:
        # Plain attributes, not buffers: derived data never goes into a state dict or a checkpoint.
        self._dense: torch.Tensor | None = None
        self._meta_aligned: torch.Tensor | None = None
        self._semi: torch.Tensor | None = None
        self._plans: dict[int, tuple[str, tuple[str, str, str | None]]] = {}

    def _apply(self, fn, recurse: bool = True):
        # .to() / .half() / .cuda() replace the buffers: every derived copy is stale.
        self._clear_caches()
        return super()._apply(fn, recurse)

    def release_caches(self) -> None:
        """Drop the cached dense weight, aligned metadata and semi-structured tensor."""
        self._clear_caches()

    def _caches_dense(self) -> bool:
        return self.values.device.type == "cpu" if self.cache_dense is None else self.cache_dense

    def dense_weight(self) -> torch.Tensor:
        """The decompressed ``(out, in)`` weight (a new tensor; exact)."""
        if torch.compiler.is_compiling() or not self.values.is_cuda:
            # The reference is plain tensor ops: traceable, and on CPU faster than the interpreter.
            return decompress_24_reference(self.values, self.meta)
        return decompress_24(self.values, self.meta)

    def _dense_for_forward(self) -> torch.Tensor:
        if self._dense is not None:
            return self._dense
        weight = self.dense_weight()
        if self._caches_dense() and not torch.compiler.is_compiling():
            self._dense = weight
        return weight

    def _aligned(self) -> torch.Tensor:
        if self._meta_aligned is not None:
            return self._meta_aligned
        meta = aligned_meta(self.meta)
        if not torch.compiler.is_compiling():
            self._meta_aligned = meta
        return meta

    def _semi_structured(self) -> torch.Tensor:
        if self._semi is None:
            self._semi = to_torch_semi_structured(self.values, self.meta)
        return self._semi

    # --- forward ------------------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features or x.dtype != self.values.dtype:
            raise ValueError(
                f"input {x.dtype} (..., {x.shape[-1]}) does not fit a {self.values.dtype} "
                f"{self.in_features} -> {self.out_features} layer"
            )
        backend, record = self._plan(x.numel() // self.in_features)
        if not torch.compiler.is_compiling():
            _note_run(*record, self.out_features, self.in_features)
        if backend == "triton":
            # The op directly: values/meta were validated when the layer was built.
            return torch.ops.polysparse.sparse24_linear(x, self.values, self._aligned(), self.bias, "triton")
        if backend == "torch":
            x2d = x.reshape(-1, self.in_features)
            y = F.linear(x2d, self._semi_structured(), self.bias)
            return y.reshape(*x.shape[:-1], self.out_features)
        return F.linear(x, self._dense_for_forward(), self.bias)

    def compressed_nbytes(self) -> int:
        """Bytes of the stored weight: values + metadata (+ bias)."""
        total = (
            self.values.numel() * self.values.element_size() + self.meta.numel() * self.meta.element_size()
        )
        return total + (0 if self.bias is None else self.bias.numel() * self.bias.element_size())

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, backend={self.backend}, layout={self.layout}"
        )


def module_layout(module: nn.Module) -> Layout:
    """``"linear"`` for ``nn.Linear``, ``"conv1d"`` for transformers' ``Conv1D``; ``TypeError`` otherwise."""
    if isinstance(module, nn.Linear):
        return "linear"
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is a dependency
        Conv1D = ()  # noqa: N806
    if Conv1D and isinstance(module, Conv1D):
        return "conv1d"
    raise TypeError(f"{type(module).__name__} is neither nn.Linear nor Conv1D")
