"""Pruning: calibration text, activation statistics, the methods, the sequential driver, evaluation.

The public entry point is :func:`prune_model` with a :class:`PruneConfig` and calibration
:class:`TokenWindows`. Names are imported on first use, so ``polysparse.sparsify.corpora`` (pure Python)
can be used without loading torch. The subpackages ``corpora`` (text sources and languages), ``methods``
(the pruning methods as pure functions) and ``tasks`` (multiple-choice evaluation) export their own names.
"""

from polysparse._packages import lazy_exports, refuse_bare_import

if __name__ != "polysparse.sparsify":  # the folder imported as a bare top-level package
    refuse_bare_import(__name__)


_EXPORTS = {  # submodule: the public names it defines
    "config": ("ConfigError", "NMPattern", "PruneConfig", "METHOD_NAMES"),
    "model_graph": (
        "NoDecoderBlocksError", "find_decoder_stack", "prunable_layers", "weight_matrix", "set_weight_matrix",
    ),
    "driver": (
        "IndivisibleLayerError", "PruneReport", "prune_model", "calibrated_steps", "needs_calibration",
        "check_pattern_fits",
    ),
    "walk": ("BlockStep", "sequential_blocks", "capture_block_inputs", "resolve_device", "check_device"),
    "hooks": ("attach_statistics",),
    "stats": ("LayerStatistics", "NonFiniteError"),
    "calibration_spec": ("CalibrationSpec", "SourcePart", "TranslatePart"),
    "calibration": (
        "TokenWindows", "windows_from_documents", "windows_from_texts", "calibration_windows",
        "evaluation_windows", "EVAL_FRACTION",
    ),
    "evaluate": ("perplexity",),
    "loading": (
        "ModelLoadError", "SequenceTooLongError", "load_causal_lm", "check_seqlen", "parse_dtype",
        "check_initialised", "load_tokenizer",
    ),
    "output": (
        "REPORT_FILE", "OutputExistsError", "OutputLocationError", "check_output", "check_output_location",
        "clean_stale_partials", "atomic_output_folder", "save_pruned", "write_report", "ReportError",
        "read_report", "check_output_file", "check_not_input", "check_distinct_outputs",
        "drop_inherited_sparsity_record",
    ),
    "strict_json": ("write_json",),
    "checkpointing": (
        "folder_fingerprint", "LOCK_FILE", "PruneCheckpoint", "WorkFolderLock", "WorkFolderLockedError",
        "ResumeMismatchError", "clear_work_folder", "model_signature", "run_fingerprint",
    ),
    "streaming": (
        "SafetensorsCheckpoint", "StreamingUnsupportedError", "load_streaming_model", "write_streamed_output",
    ),
    "methods": ("HessianError", "METHODS"),
}  # fmt: skip

__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)
