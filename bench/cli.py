"""The ``polysparse`` command line. Parsing only: the work is done by :mod:`polysparse.bench.jobs`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from polysparse.bench.plans import (
    CACHE_KINDS,
    EVAL_SEQLEN,
    EVAL_WINDOWS,
    SEED,
    TASK_BATCH_SIZE,
    TASK_LIMIT,
    StudyPlan,
    ThroughputPlan,
    plan_default,
)
from polysparse.runtime.backends import BACKENDS
from polysparse.sparsify.config import (
    METHOD_NAMES,
    OFFLOAD_DTYPE_NAMES,
    OFFLOAD_NAMES,
    ON_INDIVISIBLE_NAMES,
    PROFILE_NAMES,
    RECONSTRUCT_NAMES,
    RECONSTRUCT_TARGETS,
    SPARSE24,
    UPDATE_NAMES,
    prune_default,
)
from polysparse.sparsify.output import package_version


def _study_default(name: str) -> Any:
    return plan_default(StudyPlan, name)


def _throughput_default(name: str) -> Any:
    return plan_default(ThroughputPlan, name)


def _sizes(sizes: tuple[int, ...]) -> str:
    return ",".join(str(size) for size in sizes)


def _add_model(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--model",
        required=required,
        help="local Hugging Face folder, or a model that installs offline: gemma-3-270m, smollm2-135m",
    )
    parser.add_argument("--dtype", default="auto", help="auto (the checkpoint's), float32, bfloat16, float16")


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")


def _add_encoding(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--encoding",
        default="utf-8",
        help="encoding of text: files (default utf-8; decoding is strict: a bad byte stops the run)",
    )


def _prune_parser(sub) -> None:
    p = sub.add_parser(
        "prune",
        help="prune a model calibrated on text of a language",
        description=(
            "Prune every linear layer inside the decoder blocks with magnitude, Wanda or SparseGPT, block by "
            "block on calibration windows, and write an HF folder plus polysparse.json."
        ),
    )
    _add_model(p)
    p.add_argument("--method", choices=METHOD_NAMES, default=prune_default("method"))
    # Exactly one of the two: PruneConfig holds that rule (a ConfigError, exit status 2), not argparse.
    p.add_argument("--sparsity", type=float, help="unstructured sparsity per row, 0 < s < 1 (or --pattern)")
    p.add_argument("--pattern", help="N:M pattern, N pruned of every M (2:4, 4:8; or --sparsity)")
    p.add_argument(
        "--calib",
        help="calibration source spec, e.g. text:notes/*.txt:de, handbook:de, "
        "handbook:de=0.5,handbook:en=0.5 (not needed for magnitude)",
    )
    p.add_argument(
        "--nsamples",
        type=int,
        default=prune_default("nsamples"),
        help="calibration windows (default %(default)s)",
    )
    p.add_argument(
        "--seqlen",
        type=int,
        default=prune_default("seqlen"),
        help="tokens per window, BOS included (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=prune_default("seed"))
    p.add_argument(
        "--batch-size", type=int, default=prune_default("batch_size"), help="windows per forward pass"
    )
    p.add_argument(
        "--targets",
        action="append",
        default=[],
        metavar="REGEX",
        help="prune only layers whose name matches (repeatable)",
    )
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="REGEX",
        help="leave layers whose name matches dense (repeatable)",
    )
    p.add_argument(
        "--blocksize",
        type=int,
        default=prune_default("blocksize"),
        help="SparseGPT lazy-update block (default %(default)s)",
    )
    p.add_argument(
        "--percdamp",
        type=float,
        default=prune_default("percdamp"),
        help="SparseGPT damping (default %(default)s)",
    )
    p.add_argument("--device", help="device for the working block (default: cuda if present, else cpu)")
    p.add_argument(
        "--on-indivisible",
        choices=ON_INDIVISIBLE_NAMES,
        default=prune_default("on_indivisible"),
        help="layers whose in_features is not a multiple of M: leave dense, or stop",
    )
    p.add_argument("--out", required=True, help="output folder (refused if it exists, unless --overwrite)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace --out and drop any interrupted run's state"
    )
    p.add_argument(
        "--no-checkpoint",
        action="store_true",
        help="do not keep per-block state for resuming (saves disk writes)",
    )
    p.add_argument(
        "--stream",
        choices=("auto", "on", "off"),
        default="auto",
        help="read decoder blocks from disk one at a time (models larger than memory); auto: when the "
        "weights exceed half the available memory",
    )
    p.add_argument(
        "--offload",
        choices=OFFLOAD_NAMES,
        default=prune_default("offload"),
        help="where the calibration activations wait between blocks: on the working device (none), in host "
        "memory (cpu: the GPU holds one batch at a time) or on disk (disk: memory holds one batch)",
    )
    p.add_argument(
        "--offload-dtype",
        choices=OFFLOAD_DTYPE_NAMES,
        help="store the activations between blocks in this dtype (half the memory; rounds them)",
    )
    p.add_argument(
        "--offload-dir",
        help="folder for --offload disk (default: the run's working folder beside --out)",
    )
    _add_encoding(p)
    _add_recovery(p)
    _add_quiet(p)


def _add_recovery(p) -> None:
    """Post-mask recovery and non-uniform sparsity (README: "Better sparse models")."""
    p.add_argument(
        "--update",
        choices=UPDATE_NAMES,
        default=prune_default("update"),
        help="after each layer's mask: admm re-solves its kept weights for the layer's least squares",
    )
    p.add_argument(
        "--admm-iterations",
        type=int,
        default=prune_default("admm_iterations"),
        help="ADMM iterations per layer (default %(default)s)",
    )
    p.add_argument(
        "--reconstruct",
        choices=RECONSTRUCT_NAMES,
        default=prune_default("reconstruct"),
        help="after each block's masks: train its kept weights to match the dense output (Adam, masks exact)",
    )
    p.add_argument(
        "--reconstruct-steps",
        type=int,
        default=prune_default("reconstruct_steps"),
        help="Adam steps per block, one batch each (default %(default)s)",
    )
    p.add_argument(
        "--reconstruct-lr",
        type=float,
        default=prune_default("reconstruct_lr"),
        help="Adam learning rate (default %(default)s)",
    )
    p.add_argument(
        "--reconstruct-target",
        choices=RECONSTRUCT_TARGETS,
        default=prune_default("reconstruct_target"),
        help="dense: the dense model's own block outputs; prefix: the dense block on the pruned inputs",
    )
    p.add_argument(
        "--sparsity-profile",
        choices=PROFILE_NAMES,
        default=prune_default("sparsity_profile"),
        help="owl: per-block sparsity from outlier ratios (Yin et al. 2024), mean = --sparsity; owl-lang: "
        "the largest ratio over the calibration languages of a mixed --calib",
    )
    p.add_argument(
        "--owl-m",
        type=float,
        default=prune_default("owl_m"),
        help="OWL outlier threshold M (default %(default)s)",
    )
    p.add_argument(
        "--owl-lambda",
        type=float,
        default=prune_default("owl_lambda"),
        help="OWL lambda (default %(default)s)",
    )


def _eval_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="perplexity on held-out text, per language",
        description=(
            "Perplexity on held-out windows (documents never used for calibration), one row per source."
        ),
    )
    _add_model(p)
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="SPEC",
        help="evaluation source spec (repeatable), e.g. handbook:de or text:eval.txt:de",
    )
    p.add_argument("--source", help="with --langs: the source to take every language from (e.g. handbook)")
    p.add_argument("--langs", help="comma-separated languages, with --source")
    p.add_argument(
        "--windows", type=int, default=EVAL_WINDOWS, help=f"windows per source (default {EVAL_WINDOWS})"
    )
    p.add_argument(
        "--seqlen",
        type=int,
        default=EVAL_SEQLEN,
        help=f"tokens per window, BOS included (default {EVAL_SEQLEN})",
    )
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--device", help="device to evaluate on (default: cuda if present, else cpu)")
    p.add_argument("--out", help="write JSON here (and Markdown beside it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    _add_encoding(p)
    p.add_argument(
        "--tasks",
        metavar="SPEC[,SPEC]",
        help="multiple-choice tasks: translation-choice:SRC->TGT:PARALLEL (gettext, handbook, "
        "install-guide), "
        "continuation-choice:LANG:SOURCE, file:PATH.jsonl",
    )
    p.add_argument("--limit", type=int, help=f"items per task (default {TASK_LIMIT})")
    p.add_argument(
        "--dump-items", metavar="PATH.jsonl", help="write the tasks' items here (task-file format)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=TASK_BATCH_SIZE,
        help=f"task items per forward pass (default {TASK_BATCH_SIZE})",
    )
    p.add_argument(
        "--lm-eval",
        metavar="TASKS",
        help="lm-eval task names run through lm-eval's simple_evaluate on the loaded model "
        "(pip install 'polysparse[lm-eval]'; needs their data sets on this machine)",
    )
    _add_quiet(p)


def _demo_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on the embedded default, no flags needed",
        description=(
            "Prune Gemma 3 270M (installed offline from PyPI) for German with SparseGPT 2:4, calibrated "
            "on the Debian Administrator's Handbook in German; report held-out perplexity dense vs pruned "
            "in German and English; swap in 2:4 sparse layers, check them against the pruned model, time "
            "dense vs sparse, and save the pruned and the compressed model. Sized for minutes on a 2-core "
            "CPU."
        ),
    )
    _add_model(p, required=False)
    p.add_argument("--lang", default="de", help="language to prune for (default de)")
    p.add_argument("--method", choices=METHOD_NAMES, default="sparsegpt")
    p.add_argument("--pattern", default=str(SPARSE24))
    p.add_argument("--nsamples", type=int, default=16, help="calibration windows (default 16)")
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument("--eval-windows", type=int, default=4, help="held-out windows per language (default 4)")
    p.add_argument("--out", default="polysparse-demo", help="output folder (default ./polysparse-demo)")
    p.add_argument(
        "--update",
        choices=UPDATE_NAMES,
        default=prune_default("update"),
        help="ADMM weight update after masks",
    )
    p.add_argument(
        "--reconstruct",
        choices=RECONSTRUCT_NAMES,
        default=prune_default("reconstruct"),
        help="block-wise reconstruction",
    )
    p.add_argument(
        "--reconstruct-steps",
        type=int,
        default=prune_default("reconstruct_steps"),
        help=f"Adam steps per block (default {prune_default('reconstruct_steps')})",
    )
    _add_quiet(p)


def _study_parser(sub) -> None:
    p = sub.add_parser(
        "study",
        help="calibration language x evaluation language matrix",
        description=(
            "Prune once per calibration language (plus magnitude, an equal mix, and X->English translation "
            "prompts) and evaluate every pruned model on every language. Resumable: finished cells are kept."
        ),
    )
    _add_model(p)
    p.add_argument("--langs", required=True, help="comma-separated languages, e.g. en,de,ru,zh,ja,ar")
    p.add_argument("--method", choices=METHOD_NAMES, default=_study_default("method"))
    # At most one of the two (the plan's PruneConfig refuses both); neither: the plan's pattern.
    p.add_argument("--sparsity", type=float, help="unstructured sparsity per row (or --pattern)")
    p.add_argument("--pattern", help=f"N:M pattern (default {_study_default('pattern')} without --sparsity)")
    calib_source, eval_source = _study_default("calib_source"), _study_default("eval_source")
    p.add_argument(
        "--calib-source", default=calib_source, help=f"document source for calibration ({calib_source})"
    )
    p.add_argument(
        "--eval-source",
        default=eval_source,
        help=f"document source for evaluation ({eval_source}; falls back per language)",
    )
    p.add_argument("--no-mix", action="store_true", help="leave out the equal-mixture row")
    p.add_argument(
        "--translate-source",
        default=_study_default("translate_source"),
        help="parallel source for X->English translation-prompt rows ('none' to leave them out)",
    )
    for option in ("shots", "nsamples", "seqlen", "eval_windows", "eval_seqlen", "seed"):
        p.add_argument(f"--{option.replace('_', '-')}", type=int, default=_study_default(option))
    p.add_argument("--out", required=True, help="folder for the tables and heatmap")
    p.add_argument("--cells", help="folder of finished cells to resume from (default OUT/cells)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument(
        "--tasks",
        metavar="SPEC[,SPEC]",
        help="task columns; X stands for each study language: translation-choice:X->en:gettext,"
        "translation-choice:en->X:gettext,continuation-choice:X:handbook",
    )
    p.add_argument(
        "--task-limit",
        type=int,
        default=_study_default("task_limit"),
        help=f"items per task and language (default {_study_default('task_limit')})",
    )
    _add_quiet(p)


def _corpora_parser(sub) -> None:
    p = sub.add_parser("corpora", help="list the text sources and languages available on this machine")
    p.add_argument("--source", action="append", default=[], help="only these sources (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_quiet(p)


def _bench_parser(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="throughput of a 2:4 sparse model against its dense twin",
        description=(
            "Time prefill and decode of a sparse checkpoint (or a 2:4-pruned HF folder) and of the same "
            "model with dense layers, alternating, in one process; write JSON, Markdown and a plot."
        ),
    )
    p.add_argument(
        "--model", required=True, help="sparse checkpoint (polysparse export/save) or 2:4-pruned folder"
    )
    p.add_argument("--dense", help="dense reference folder (default: the same weights decompressed)")
    batch, prompt = (_sizes(_throughput_default(name)) for name in ("batch_sizes", "prompt_lengths"))
    p.add_argument("--batch", default=batch, help=f"comma-separated batch sizes (default {batch})")
    p.add_argument("--prompt", default=prompt, help=f"comma-separated prompt lengths (default {prompt})")
    for option, what in (
        ("new_tokens", "tokens generated per sequence"),
        ("repeats", "timed runs per variant and size"),
        ("warmup", "untimed runs per variant and size"),
    ):
        default = _throughput_default(option)
        p.add_argument(
            f"--{option.replace('_', '-')}", type=int, default=default, help=f"{what} (default {default})"
        )
    p.add_argument("--backend", choices=BACKENDS, default=BACKENDS[0])
    p.add_argument("--dispatch", help="kernel benchmark JSON with a dispatch_table (default: bench/results)")
    p.add_argument("--cache", choices=CACHE_KINDS, default=_throughput_default("cache"), help="KV cache kind")
    p.add_argument("--device", help="device (default: cuda if present, else cpu)")
    p.add_argument("--dtype", default="auto", help="auto (the checkpoint's), float32, bfloat16, float16")
    p.add_argument("--seed", type=int, default=_throughput_default("seed"))
    p.add_argument("--out", help="output folder (default bench/results/throughput)")
    p.add_argument("--no-plot", action="store_true")
    _add_quiet(p)


def _export_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a sparse checkpoint as dense, compressed or compressed-tensors",
        description=(
            "Convert a polysparse sparse checkpoint, or a 2:4 folder written by polysparse prune: dense "
            "(zeros written out, for any engine), compressed "
            "(polysparse's values + metadata) or compressed-tensors (sparse-24-bitmask)."
        ),
    )
    p.add_argument("model", help="sparse checkpoint folder, or a folder written by polysparse prune (2:4)")
    p.add_argument("--format", choices=("dense", "compressed", "compressed-tensors"), required=True)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true")
    _add_quiet(p)


def _serve_parser(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="an OpenAI-compatible server for a compressed 2:4 (or any causal LM) folder",
        description=(
            "Serve /v1/completions and /v1/chat/completions (streaming or not) for one model, named by its "
            "folder; sparse layers run polysparse's kernels on CUDA and the dense fallback elsewhere. "
            "Ctrl+C stops it."
        ),
    )
    p.add_argument("model", help="compressed folder (polysparse export, the demo's compressed/) or HF folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--device", help="device (default: cuda if present, else cpu)")
    p.add_argument("--dtype", default="auto", help="auto (the checkpoint's), float32, bfloat16, float16")
    _add_quiet(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polysparse",
        description="Prune multilingual causal LMs for the language they serve, and run them sparse.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _prune_parser(sub)
    _eval_parser(sub)
    _study_parser(sub)
    _corpora_parser(sub)
    _demo_parser(sub)
    _bench_parser(sub)
    _export_parser(sub)
    _serve_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.quiet:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    from polysparse.bench import demo, jobs, serve

    handlers = {
        "prune": jobs.prune_job,
        "eval": jobs.eval_job,
        "study": jobs.study_job,
        "corpora": jobs.corpora_job,
        "demo": demo.demo_job,
        "bench": jobs.bench_job,
        "export": jobs.export_job,
        "serve": serve.serve_job,
    }
    options = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        handlers[args.command](**options)
        return 0
    except jobs.USER_ERRORS as error:
        print(f"polysparse {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"polysparse {args.command}: interrupted; {_kept(args)}", file=sys.stderr)
        return 130
    except Exception as error:
        from polysparse.bench.user_errors import out_of_space

        if not out_of_space(error):
            raise
        print(
            f"polysparse {args.command}: error: no room to write ({type(error).__name__}: {error}); free "
            f"disk space or raise the file-size limit, then run the same command again; {_kept(args)}",
            file=sys.stderr,
        )
        return 2


def _kept(args: argparse.Namespace) -> str:
    """What an interrupted command leaves for the next run (outputs are written whole or not at all)."""
    if args.command == "prune" and not args.no_checkpoint:
        return "the output was not written; finished blocks are kept and the same command resumes after them"
    if args.command in ("study", "bench"):
        return "finished cells are kept and the same command computes only the missing ones"
    if args.command == "demo":
        return "run the same command again (it starts over)"
    return "nothing was written to the output"


if __name__ == "__main__":
    sys.exit(main())
