"""Test-wide set-up.

Triton decides at decoration time whether kernels run through its interpreter, so the variable is set
here, before any polysparse kernel module is imported: on a machine without a GPU every Triton kernel is
then exercised on CPU tensors. On a GPU machine, run with ``TRITON_INTERPRET=0`` to test the compiled
kernels (tests marked ``gpu`` run only where CUDA is present).
"""

import os
import sys
from pathlib import Path

# `python -m pytest` started in the repository root puts the root first on sys.path, where its folders
# (kernels/, bench/, ...) would shadow the PyPI packages of the same names that transformers imports
# (Hugging Face's `kernels`). The project's own command is `python -P -m pytest` (Makefile); this keeps the
# plain form working too. The folders refuse a bare import with a message that says so (kernels/__init__.py).
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _ROOT]

os.environ.setdefault("TRITON_INTERPRET", "0" if os.environ.get("POLYSPARSE_TEST_GPU") else "1")
# Tiny test tensors run fastest on one thread (measured: a SparseGPT test went from 21 s to 0.8 s on the
# 2-core CI-sized machine under load); subprocesses started by tests inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


# Tests that read the real Debian packages (``debian-handbook``, ``installation-guide-amd64``, ``manpages-*``,
# gettext catalogues) skip when a package is absent, naming the package to install; with
# ``POLYSPARSE_REQUIRE_DEBIAN_TEXT=1`` (CI, after ``make debian-packages``) they fail instead.
@pytest.fixture
def require_installed():
    def check(path: str, package: str) -> Path:
        found = Path(path)
        if found.exists() and any(found.iterdir()):
            return found
        message = f"{path} is missing: install the Debian package {package} (make debian-packages)"
        if os.environ.get("POLYSPARSE_REQUIRE_DEBIAN_TEXT", "") not in ("", "0"):
            pytest.fail(message)
        pytest.skip(message)

    return check
