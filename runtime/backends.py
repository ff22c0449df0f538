"""The runtime's backend names (torch-free, so the command line takes its ``--backend`` choices from here).

``auto`` picks per layer from the dispatch table, ``triton`` runs polysparse's 2:4 kernels, ``torch`` the
semi-structured sparse tensors of PyTorch (cuSPARSELt / CUTLASS), ``dense`` the decompressed weight; see
:mod:`polysparse.runtime.linear`.
"""

from __future__ import annotations

from typing import Literal

Backend = Literal["auto", "triton", "torch", "dense"]
BACKENDS: tuple[str, ...] = ("auto", "triton", "torch", "dense")
"""Every backend name; the first is the default."""
