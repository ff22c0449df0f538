"""polysparse.runtime: 2:4 sparse linear layers in Hugging Face models, compressed checkpoints, timing.

Depends on :mod:`polysparse.kernels`, and reads what :mod:`polysparse.sparsify` writes through sparsify's
output helpers (the report file, the atomic output folder, safetensors folders, the meta-device builder).

Names are imported on first use (``from polysparse.runtime import sparsify_model`` works as ever), so the
torch-free :mod:`polysparse.runtime.backends` is importable without torch (the command line's choices).
"""

from polysparse._packages import lazy_exports, refuse_bare_import

if __name__ != "polysparse.runtime":  # the folder imported as a bare top-level package
    refuse_bare_import(__name__)


_EXPORTS = {  # submodule: the public names it defines
    "backends": ("BACKENDS",),
    "checkpoint": (
        "CheckpointError", "CheckpointExistsError", "CheckpointMismatchError", "CorruptCheckpointError",
        "NotSparse24Error", "SparsityMetadata", "checkpoint_summary", "export", "is_sparse_checkpoint",
        "load_sparse", "read_sparsity_config", "save_sparse",
    ),
    "linear": ("DispatchTable", "Sparse24Linear", "backend_runs", "reset_backend_runs", "select_backend"),
    "timing": (
        "GenerationTiming", "PeakMemory", "Spread", "synchronize", "time_generation", "weight_bytes_per_step",
    ),
    "swap": ("SwapReport", "densify_model", "is_24", "set_backend", "sparse_layers", "sparsify_model"),
    "graph_decode": ("time_generation_graphed", "graph_decode_reason"),
}  # fmt: skip

__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)
