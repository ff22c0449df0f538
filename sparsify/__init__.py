"""Pruning: calibration text, activation statistics, the methods, the sequential driver, evaluation.

The public entry point is :func:`prune_model` with a :class:`PruneConfig` and calibration
:class:`TokenWindows`. Names are imported on first use, so ``polysparse.sparsify.corpora`` (pure Python)
can be used without loading torch. The subpackages ``corpora`` (text sources and languages), ``methods``
(the pruning methods as pure functions) and ``tasks`` (multiple-choice evaluation) export their own names.
"""

from polysparse._packages import lazy_exports, refuse_bare_import

if __name__ != "polysparse.sparsify":  # the folder imported as a bare top-level package
    refuse_bare_import(__name__)


_EXPORTS = {
    "ConfigError": "config",
    "NMPattern": "config",
    "PruneConfig": "config",
    "METHOD_NAMES": "config",
    "NoDecoderBlocksError": "model_graph",
    "find_decoder_stack": "model_graph",
    "prunable_layers": "model_graph",
    "weight_matrix": "model_graph",
    "set_weight_matrix": "model_graph",
    "IndivisibleLayerError": "driver",
    "PruneReport": "driver",
    "prune_model": "driver",
    "calibrated_steps": "driver",
    "needs_calibration": "driver",
    "check_pattern_fits": "driver",
    "BlockStep": "walk",
    "sequential_blocks": "walk",
    "capture_block_inputs": "walk",
    "resolve_device": "walk",
    "check_device": "walk",
    "attach_statistics": "hooks",
    "LayerStatistics": "stats",
    "NonFiniteError": "stats",
    "CalibrationSpec": "calibration_spec",
    "SourcePart": "calibration_spec",
    "TranslatePart": "calibration_spec",
    "TokenWindows": "calibration",
    "windows_from_documents": "calibration",
    "windows_from_texts": "calibration",
    "calibration_windows": "calibration",
    "evaluation_windows": "calibration",
    "EVAL_FRACTION": "calibration",
    "perplexity": "evaluate",
    "ModelLoadError": "loading",
    "SequenceTooLongError": "loading",
    "load_causal_lm": "loading",
    "check_seqlen": "loading",
    "parse_dtype": "loading",
    "REPORT_FILE": "output",
    "OutputExistsError": "output",
    "OutputLocationError": "output",
    "check_output": "output",
    "check_output_location": "output",
    "clean_stale_partials": "output",
    "atomic_output_folder": "output",
    "save_pruned": "output",
    "write_report": "output",
    "ReportError": "output",
    "read_report": "output",
    "check_output_file": "output",
    "check_not_input": "output",
    "check_distinct_outputs": "output",
    "drop_inherited_sparsity_record": "output",
    "write_json": "strict_json",
    "folder_fingerprint": "checkpointing",
    "check_initialised": "loading",
    "load_tokenizer": "loading",
    "LOCK_FILE": "checkpointing",
    "PruneCheckpoint": "checkpointing",
    "WorkFolderLock": "checkpointing",
    "WorkFolderLockedError": "checkpointing",
    "ResumeMismatchError": "checkpointing",
    "clear_work_folder": "checkpointing",
    "model_signature": "checkpointing",
    "run_fingerprint": "checkpointing",
    "SafetensorsCheckpoint": "streaming",
    "StreamingUnsupportedError": "streaming",
    "load_streaming_model": "streaming",
    "write_streamed_output": "streaming",
    "HessianError": "methods",
    "METHODS": "methods",
}

__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)
