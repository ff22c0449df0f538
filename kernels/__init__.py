"""polysparse.kernels: Triton kernels with their PyTorch references and host wrappers.

One module per op, each holding a plain reference, the ``@triton.jit`` kernel and a wrapper that checks its
inputs, launches, and falls back to the reference where Triton cannot run (:mod:`.dispatch`):

* :mod:`.topk_mask`: per-row top-k masks, unstructured (exact k per row) and N:M;
* :mod:`.sparsegpt`: SparseGPT's blocked OBS solve;
* :mod:`.sparse24`: the 2:4 format (compress, decompress, prune-and-compress) and
  :mod:`.sparse24_convert`, its conversions to compressed-tensors' and PyTorch's layouts;
* :mod:`.sparse24_matmul`: ``x @ W^T`` for a 2:4 ``W``.

Depends on torch and triton only (never on the other polysparse packages).
"""

from polysparse._packages import refuse_bare_import

if __name__ != "polysparse.kernels":  # the folder imported as a bare top-level package
    refuse_bare_import(__name__)

from polysparse.kernels.dispatch import (
    Impl,
    device_reason,
    fallback_counts,
    forced_impl,
    interpreter_enabled,
    triton_reason,
)
from polysparse.kernels.sparse24 import (
    META_ROW_ALIGN,
    aligned_meta,
    check_compressed,
    check_meta,
    compress_24,
    compress_24_reference,
    decompress_24,
    decompress_24_reference,
    is_aligned_meta,
    keep_from_meta,
    meta_shape,
    padded_meta_storage,
    prune_and_compress_24,
    prune_and_compress_24_reference,
)
from polysparse.kernels.sparse24_convert import (
    from_cutlass_layout,
    from_sparse24_bitmask,
    from_torch_semi_structured,
    semi_structured_reason,
    to_cutlass_layout,
    to_sparse24_bitmask,
    to_torch_semi_structured,
)
from polysparse.kernels.sparse24_matmul import (
    GEMV_MAX_M,
    m_bucket,
    sparse24_linear,
    sparse24_linear_reference,
    sparse24_linear_unsupported,
)
from polysparse.kernels.sparsegpt import (
    block_prune_mask,
    sparsegpt_solve,
    sparsegpt_solve_reference,
    sparsegpt_solve_torch,
)
from polysparse.kernels.topk_mask import (
    nm_mask,
    nm_mask_reference,
    scores_reference,
    unstructured_mask,
    unstructured_mask_reference,
)

__all__ = [
    "GEMV_MAX_M",
    "META_ROW_ALIGN",
    "Impl",
    "aligned_meta",
    "block_prune_mask",
    "check_compressed",
    "check_meta",
    "compress_24",
    "compress_24_reference",
    "decompress_24",
    "decompress_24_reference",
    "device_reason",
    "fallback_counts",
    "forced_impl",
    "from_cutlass_layout",
    "from_sparse24_bitmask",
    "from_torch_semi_structured",
    "interpreter_enabled",
    "is_aligned_meta",
    "keep_from_meta",
    "m_bucket",
    "meta_shape",
    "nm_mask",
    "nm_mask_reference",
    "padded_meta_storage",
    "prune_and_compress_24",
    "prune_and_compress_24_reference",
    "scores_reference",
    "semi_structured_reason",
    "sparse24_linear",
    "sparse24_linear_reference",
    "sparse24_linear_unsupported",
    "sparsegpt_solve",
    "sparsegpt_solve_reference",
    "sparsegpt_solve_torch",
    "to_cutlass_layout",
    "to_sparse24_bitmask",
    "to_torch_semi_structured",
    "triton_reason",
    "unstructured_mask",
    "unstructured_mask_reference",
]
