import pytest
import torch

from helpers.sparse_models import sparse_tiny_model
from helpers.tiny_models import tiny_tokenizer
from polysparse.runtime.checkpoint import save_sparse
from polysparse.runtime.swap import sparsify_model


@pytest.fixture(scope="session")
def saved_sparse(tmp_path_factory):
    """``saved_sparse(arch, dtype)`` -> folder of a tiny 2:4 model saved with save_sparse (cached)."""
    cache = {}

    def make(arch: str, dtype: torch.dtype = torch.float16):
        key = (arch, dtype)
        if key not in cache:
            model = sparse_tiny_model(arch, dtype=dtype)
            sparsify_model(model)
            folder = tmp_path_factory.mktemp("sparse") / f"{arch}-{str(dtype).split('.')[-1]}"
            save_sparse(model, folder, tokenizer=tiny_tokenizer())
            cache[key] = folder
        return cache[key]

    return make
