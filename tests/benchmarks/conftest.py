"""The benchmarks time what ``polysparse prune`` runs on a CPU.

tests/conftest.py turns Triton's interpreter on so that the kernel tests run the Triton kernels on CPU
tensors; a real CPU prune has no interpreter, and every kernel wrapper's ``auto`` choice falls back to its
PyTorch path there. This puts the benchmarks back on that path.
"""

import pytest


@pytest.fixture(autouse=True)
def cpu_prune_path(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.delenv("POLYSPARSE_KERNELS", raising=False)
