"""Deciding, per call, whether a Triton kernel can run, and saying so when it cannot.

A host wrapper asks :func:`triton_reason` whether its tensors can go to Triton. Triton runs on CUDA tensors,
or on CPU tensors through its interpreter when ``TRITON_INTERPRET=1`` was set before the kernel modules were
imported (Triton reads the variable when ``@triton.jit`` decorates a function). Everything else falls back to
the PyTorch reference; the first fallback of each (op, reason) pair is logged, and every fallback is counted
so that a benchmark can refuse to report a number that the reference produced.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Literal

import torch

Impl = Literal["auto", "triton", "reference"]

log = logging.getLogger("polysparse.kernels")

fallback_counts: Counter[tuple[str, str]] = Counter()
"""How often each ``(op, reason)`` fell back to the reference in this process."""


def interpreter_enabled() -> bool:
    """True when Triton kernels run through the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() not in ("", "0", "false", "no")


def device_reason(device: torch.device | str) -> str | None:
    """``None`` when Triton kernels can run on ``device`` in this process, else why they cannot."""
    device = torch.device(device)
    if interpreter_enabled():
        return None if device.type == "cpu" else f"TRITON_INTERPRET=1 needs CPU tensors, got {device}"
    if device.type == "cuda":
        return None
    return f"{device} is not a CUDA device and TRITON_INTERPRET is not set"


def triton_reason(*tensors: torch.Tensor) -> str | None:
    """``None`` when Triton can take these tensors, else why it cannot."""
    if interpreter_enabled():
        if all(t.device.type == "cpu" for t in tensors):
            return None
        return "TRITON_INTERPRET=1 needs CPU tensors"
    if all(t.is_cuda for t in tensors):
        return None
    return "tensors are not on a CUDA device and TRITON_INTERPRET is not set"


def forced_impl() -> Impl:
    """``POLYSPARSE_KERNELS`` (``auto``, ``triton`` or ``reference``): every wrapper called with
    ``impl="auto"`` follows it. The test suite uses ``reference`` where kernels are not under test, since
    Triton's CPU interpreter is slow."""
    value = os.environ.get("POLYSPARSE_KERNELS", "auto").strip().lower() or "auto"
    if value not in ("auto", "triton", "reference"):
        raise ValueError(f"POLYSPARSE_KERNELS must be auto, triton or reference, got {value!r}")
    return value  # type: ignore[return-value]


def choose_impl(op: str, impl: Impl, *tensors: torch.Tensor, unsupported: str | None = None) -> bool:
    """Return True to run Triton, False to run the reference.

    ``unsupported`` is the caller's own reason the kernel cannot take these inputs (dtype, shape). With
    ``impl="triton"`` any reason raises instead of falling back; with ``"reference"`` Triton never runs.
    ``impl="auto"`` follows ``POLYSPARSE_KERNELS`` (``triton`` / ``reference``) when that is set.
    """
    if impl == "auto":
        impl = forced_impl()
    if impl == "reference":
        return False
    reason = unsupported or triton_reason(*tensors)
    if reason is None:
        return True
    if impl == "triton":
        raise RuntimeError(f"{op}: the Triton kernel cannot run here: {reason}")
    note_fallback(op, reason)
    return False


def note_fallback(op: str, reason: str) -> None:
    """Count a fallback to the reference and log it the first time it happens."""
    key = (op, reason)
    if fallback_counts[key] == 0:
        log.info("%s: using the PyTorch reference (%s)", op, reason)
    fallback_counts[key] += 1


def launcher(tuned, hand, config) -> tuple[object, dict]:
    """The kernel to launch and its extra launch arguments: the autotuned ``tuned`` when ``config`` is None,
    else the plain ``@triton.jit`` ``hand`` with ``config``'s meta-parameters, warps and stages (tests and
    benchmarks pin a configuration this way; the autotuner would otherwise pick its own)."""
    if config is None:
        return tuned, {}
    return hand, dict(config.kwargs, num_warps=config.num_warps, num_stages=config.num_stages)
