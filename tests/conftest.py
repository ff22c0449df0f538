"""Test-wide set-up.

Triton decides at decoration time whether kernels run through its interpreter, so the variable is set
here, before any polysparse kernel module is imported: on a machine without a GPU every Triton kernel is
then exercised on CPU tensors. On a GPU machine, run with ``TRITON_INTERPRET=0`` to test the compiled
kernels (tests marked ``gpu`` run only where CUDA is present).
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "0" if os.environ.get("POLYSPARSE_TEST_GPU") else "1")

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
