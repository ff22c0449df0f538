"""Round trip against compressed-tensors itself: its ``Sparse24BitMaskCompressor`` (0.14, the last release
that reads ``sparse-24-bitmask``) decompresses polysparse's export to exactly the pruned weights.

compressed-tensors is optional: 0.14 declares ``transformers<5`` although the decompressor runs with
transformers 5, so no extra can depend on it. Install it beside the venv to run this test:
``pip install --no-deps "compressed-tensors==0.14.*" loguru`` (pydantic comes with lm-eval).
"""

import pytest
import torch

from polysparse.runtime.checkpoint import export, load_sparse
from polysparse.runtime.swap import sparse_layers

compressors = pytest.importorskip(
    "compressed_tensors.compressors", reason="compressed-tensors is not installed"
)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_compressed_tensors_decompresses_the_pruned_weights(saved_sparse, tmp_path, arch):
    source = saved_sparse(arch)
    out = export(source, tmp_path / "ct", "compressed-tensors")
    pruned = {
        f"{name}.weight": layer.dense_weight() for name, layer in sparse_layers(load_sparse(source)).items()
    }
    compressor = compressors.Sparse24BitMaskCompressor(config=None)
    decompressed = dict(compressor.decompress(str(out / "model.safetensors")))
    assert set(pruned) <= set(decompressed)
    for name, weight in pruned.items():
        theirs = decompressed[name]
        assert theirs.dtype == weight.dtype and theirs.shape == weight.shape, name
        assert torch.equal(theirs.view(torch.int16), weight.view(torch.int16)), name  # bit for bit
