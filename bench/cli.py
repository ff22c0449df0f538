"""The ``polysparse`` command line. Parsing only: the work is done by :mod:`polysparse.bench.jobs`.

The options of ``prune``, ``eval``, ``study`` and ``bench`` are generated from their settings' dataclass
fields (:mod:`polysparse.bench.options`); the other commands take a few options of their own.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from polysparse.bench.options import add_options, from_args
from polysparse.bench.plans import (
    DEMO_RECIPE,
    BenchRun,
    CorporaQuery,
    DemoRun,
    EvalPlan,
    ExportRun,
    PruneRun,
    ServeRun,
    StudyPlan,
    StudyRun,
    ThroughputPlan,
)
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.output import package_version

# The PruneConfig fields the demo takes as options (the rest stay at their defaults).
DEMO_OPTIONS = ("method", "pattern", "nsamples", "seqlen", "update", "reconstruct", "reconstruct_steps")


# The commands whose options are generated: help, description, and the settings their job takes, in order.
SETTINGS_COMMANDS: dict[str, tuple[str, str, tuple[type, ...]]] = {
    "prune": (
        "prune a model calibrated on text of a language",
        "Prune every linear layer inside the decoder blocks with magnitude, Wanda or SparseGPT, block by "
        "block on calibration windows, and write an HF folder plus polysparse.json.",
        # --sparsity and --pattern: exactly one; PruneConfig holds that rule (a ConfigError, exit status 2).
        (PruneRun, PruneConfig),
    ),
    "eval": (
        "perplexity on held-out text, per language",
        "Perplexity on held-out windows (documents never used for calibration), one row per source.",
        (EvalPlan,),
    ),
    "study": (
        "calibration language x evaluation language matrix",
        "Prune once per calibration language (plus magnitude, an equal mix, and X->English translation "
        "prompts) and evaluate every pruned model on every language. Resumable: finished cells are kept.",
        (StudyPlan, StudyRun),
    ),
    "bench": (
        "throughput of a 2:4 sparse model against its dense twin",
        "Time prefill and decode of a sparse checkpoint (or a 2:4-pruned HF folder) and of the same "
        "model with dense layers, alternating, in one process; write JSON, Markdown and a plot.",
        (BenchRun, ThroughputPlan),
    ),
    "corpora": ("list the text sources and languages available on this machine", None, (CorporaQuery,)),
    "export": (
        "write a sparse checkpoint as dense, compressed or compressed-tensors",
        "Convert a polysparse sparse checkpoint, or a 2:4 folder written by polysparse prune: dense "
        "(zeros written out, for any engine), compressed (polysparse's values + metadata) or "
        "compressed-tensors (sparse-24-bitmask).",
        (ExportRun,),
    ),
    "serve": (
        "an OpenAI-compatible server for a compressed 2:4 (or any causal LM) folder",
        "Serve /v1/completions and /v1/chat/completions (streaming or not) for one model, named by its "
        "folder; sparse layers run polysparse's kernels on CUDA and the dense fallback elsewhere. Ctrl+C "
        "stops it.",
        (ServeRun,),
    ),
}


def _settings_parser(sub, command: str) -> None:
    summary, description, settings = SETTINGS_COMMANDS[command]
    parser = sub.add_parser(command, help=summary, description=description)
    for dataclass in settings:
        add_options(parser, dataclass)


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
    add_options(p, DemoRun)
    skip = tuple(name for name in PruneConfig.__dataclass_fields__ if name not in DEMO_OPTIONS)
    add_options(p, PruneConfig, skip=skip, defaults=DEMO_RECIPE)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polysparse",
        description="Prune multilingual causal LMs for the language they serve, and run them sparse.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("prune", "eval", "study", "corpora"):
        _settings_parser(sub, command)
    _demo_parser(sub)
    for command in ("bench", "export", "serve"):
        _settings_parser(sub, command)
    return parser


def _handlers() -> dict[str, Callable[[argparse.Namespace], Any]]:
    """Each command's job, called with the settings built from the parsed options (imported when run)."""
    from polysparse.bench import demo, exports, jobs, serve

    def settings_job(job: Callable, command: str) -> Callable[[argparse.Namespace], Any]:
        return lambda args: job(*(from_args(dataclass, args) for dataclass in SETTINGS_COMMANDS[command][2]))

    def keywords_job(job: Callable, command: str) -> Callable[[argparse.Namespace], Any]:
        (settings,) = SETTINGS_COMMANDS[command][2]
        return lambda args: job(**vars(from_args(settings, args)))

    return {
        "prune": settings_job(jobs.prune_job, "prune"),
        "eval": settings_job(jobs.eval_job, "eval"),
        "study": settings_job(jobs.study_job, "study"),
        "bench": settings_job(jobs.bench_job, "bench"),
        "corpora": keywords_job(jobs.corpora_job, "corpora"),
        "demo": lambda a: demo.demo_job(from_args(DemoRun, a), from_args(PruneConfig, a)),
        "export": keywords_job(exports.export_job, "export"),
        "serve": keywords_job(serve.serve_job, "serve"),
    }


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
    handlers = _handlers()
    from polysparse.bench.user_errors import USER_ERRORS, out_of_space

    try:
        handlers[args.command](args)
        return 0
    except USER_ERRORS as error:
        print(f"polysparse {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"polysparse {args.command}: interrupted; {_kept(args)}", file=sys.stderr)
        return 130
    except Exception as error:
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
    if args.command == "prune" and args.checkpoint:
        return "the output was not written; finished blocks are kept and the same command resumes after them"
    if args.command in ("study", "bench"):
        return "finished cells are kept and the same command computes only the missing ones"
    if args.command == "demo":
        return "run the same command again (it starts over)"
    return "nothing was written to the output"


if __name__ == "__main__":
    sys.exit(main())
