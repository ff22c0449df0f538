import pytest


@pytest.fixture(autouse=True)
def reference_kernels(request, monkeypatch):
    """Pruning tests run the kernels' PyTorch references (the kernels have their own tests against them;
    Triton's CPU interpreter is slow). Tests marked ``triton_kernels`` run the Triton path instead."""
    if request.node.get_closest_marker("triton_kernels") is None:
        monkeypatch.setenv("POLYSPARSE_KERNELS", "reference")
