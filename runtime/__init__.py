"""polysparse.runtime: 2:4 sparse linear layers in Hugging Face models, compressed checkpoints, timing.

Depends on :mod:`polysparse.kernels`, and reads what :mod:`polysparse.sparsify` writes through sparsify's
output helpers (the report file, the atomic output folder, safetensors folders, the meta-device builder).

Names are imported on first use (``from polysparse.runtime import sparsify_model`` works as ever), so the
torch-free :mod:`polysparse.runtime.backends` is importable without torch (the command line's choices).
"""

from polysparse._packages import lazy_exports, refuse_bare_import

if __name__ != "polysparse.runtime":  # the folder imported as a bare top-level package
    refuse_bare_import(__name__)


_EXPORTS = {
    "BACKENDS": "backends",
    "CheckpointError": "checkpoint",
    "CheckpointExistsError": "checkpoint",
    "CheckpointMismatchError": "checkpoint",
    "CorruptCheckpointError": "checkpoint",
    "DispatchTable": "linear",
    "GenerationTiming": "timing",
    "NotSparse24Error": "checkpoint",
    "PeakMemory": "timing",
    "Sparse24Linear": "linear",
    "SparsityMetadata": "checkpoint",
    "Spread": "timing",
    "SwapReport": "swap",
    "backend_runs": "linear",
    "checkpoint_summary": "checkpoint",
    "densify_model": "swap",
    "export": "checkpoint",
    "is_24": "swap",
    "is_sparse_checkpoint": "checkpoint",
    "load_sparse": "checkpoint",
    "read_sparsity_config": "checkpoint",
    "reset_backend_runs": "linear",
    "save_sparse": "checkpoint",
    "select_backend": "linear",
    "set_backend": "swap",
    "sparse_layers": "swap",
    "sparsify_model": "swap",
    "synchronize": "timing",
    "time_generation": "timing",
    "time_generation_graphed": "graph_decode",
    "graph_decode_reason": "graph_decode",
    "weight_bytes_per_step": "timing",
}

__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)
