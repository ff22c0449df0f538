"""polysparse.runtime: 2:4 sparse linear layers in Hugging Face models, compressed checkpoints, timing.

Depends on :mod:`polysparse.kernels`, and reads what :mod:`polysparse.sparsify` writes through sparsify's
output helpers (the report file, the atomic output folder, safetensors folders, the meta-device builder).
"""

from polysparse.runtime.checkpoint import (
    CheckpointError,
    CheckpointExistsError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    NotSparse24Error,
    SparsityMetadata,
    checkpoint_summary,
    export,
    is_sparse_checkpoint,
    load_sparse,
    read_sparsity_config,
    save_sparse,
)
from polysparse.runtime.linear import (
    BACKENDS,
    DispatchTable,
    Sparse24Linear,
    backend_runs,
    reset_backend_runs,
    select_backend,
)
from polysparse.runtime.swap import (
    SwapReport,
    densify_model,
    is_24,
    set_backend,
    sparse_layers,
    sparsify_model,
)
from polysparse.runtime.timing import (
    GenerationTiming,
    PeakMemory,
    Spread,
    synchronize,
    time_generation,
    weight_bytes_per_step,
)

__all__ = [
    "BACKENDS",
    "CheckpointError",
    "CheckpointExistsError",
    "CheckpointMismatchError",
    "CorruptCheckpointError",
    "DispatchTable",
    "GenerationTiming",
    "NotSparse24Error",
    "PeakMemory",
    "Sparse24Linear",
    "SparsityMetadata",
    "Spread",
    "SwapReport",
    "checkpoint_summary",
    "backend_runs",
    "densify_model",
    "export",
    "is_24",
    "is_sparse_checkpoint",
    "load_sparse",
    "read_sparsity_config",
    "reset_backend_runs",
    "save_sparse",
    "select_backend",
    "set_backend",
    "sparse_layers",
    "sparsify_model",
    "synchronize",
    "time_generation",
    "weight_bytes_per_step",
]
