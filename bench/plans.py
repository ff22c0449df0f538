"""The settings of the ``eval``, ``study`` and ``bench`` commands: the one home of their defaults.

Torch-free, so the command line (:mod:`polysparse.bench.cli`) derives its options' defaults and choices from
these dataclasses and constants without importing torch, as it does from
:class:`~polysparse.sparsify.config.PruneConfig` for ``prune``; the jobs take their defaults from here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from polysparse.sparsify.calibration_spec import DEFAULT_SHOTS
from polysparse.sparsify.config import SPARSE24, PruneConfig, prune_default
from polysparse.sparsify.corpora import normalize_language


def plan_default(plan: type, name: str) -> Any:
    """The default of a field of one of these dataclasses (``plan_default(StudyPlan, "nsamples")``)."""
    return plan.__dataclass_fields__[name].default


# ----------------------------------------------------------------------------------------------------------
# eval
# ----------------------------------------------------------------------------------------------------------

EVAL_WINDOWS = 32
"""``polysparse eval``: held-out windows per source."""
EVAL_SEQLEN = 512
"""``polysparse eval``: tokens per window, BOS included."""
TASK_BATCH_SIZE = 8
"""Task items per forward pass."""
TASK_LIMIT = 500
"""Items per task (and language, in a study) unless ``--limit`` / ``--task-limit`` says otherwise (gettext
gives thousands per language; 500 x 4 choices score in minutes on a 2-core CPU, see README)."""
SEED = 0
"""The seed of window draws and orders in ``eval`` and ``bench`` unless ``--seed`` is given."""


# ----------------------------------------------------------------------------------------------------------
# study
# ----------------------------------------------------------------------------------------------------------


class StudyInputError(ValueError):
    """A study that cannot run as asked: a language without text, or another study's tables in ``out``."""


@dataclass(frozen=True)
class StudyPlan:
    """Everything that determines a study's numbers; cells are keyed by the parts that affect them."""

    model: str
    langs: tuple[str, ...]
    method: str = prune_default("method")
    sparsity: float | None = prune_default("sparsity")
    pattern: str | None = str(SPARSE24)  # the study compares calibration languages at 2:4 unless told
    calib_source: str = "handbook"
    eval_source: str = "install-guide"
    mix: bool = True
    translate_source: str | None = "gettext"
    shots: int = DEFAULT_SHOTS
    # A study prunes once per row: 32 windows x 512 tokens (not prune's 128 x 2048) keeps a row in minutes.
    nsamples: int = 32
    seqlen: int = 512
    eval_windows: int = 8
    eval_seqlen: int = 256
    seed: int = prune_default("seed")
    dtype: str = "auto"
    tasks: tuple[str, ...] = ()
    task_limit: int = TASK_LIMIT

    def __post_init__(self) -> None:
        from polysparse.bench.study_tasks import validate_specs

        object.__setattr__(self, "langs", tuple(normalize_language(lang) for lang in self.langs))
        if len(set(self.langs)) != len(self.langs) or not self.langs:
            raise StudyInputError(f"give distinct languages, got {self.langs}")
        self.prune_config()  # validates method, sparsity / pattern
        object.__setattr__(self, "tasks", tuple(t.strip() for t in self.tasks if t.strip()))
        for name in ("shots", "nsamples", "seqlen", "eval_windows", "eval_seqlen", "task_limit"):
            value = getattr(self, name)
            if value < 1:
                raise StudyInputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        validate_specs(self.tasks, self.langs)

    def prune_config(self, method: str | None = None) -> PruneConfig:
        return PruneConfig(
            method=method or self.method,
            sparsity=self.sparsity,
            pattern=self.pattern,
            nsamples=self.nsamples,
            seqlen=self.seqlen,
            seed=self.seed,
        )

    @property
    def sparsity_label(self) -> str:
        return self.prune_config().sparsity_label


# ----------------------------------------------------------------------------------------------------------
# bench (throughput)
# ----------------------------------------------------------------------------------------------------------

CACHE_KINDS = ("dynamic", "static")
"""KV cache kinds of ``polysparse bench`` (the first is the default)."""

DECODE_MODES = ("graph", "eager")
"""How ``polysparse bench`` times decode: ``graph`` replays one CUDA graph per token with a static cache
(:mod:`polysparse.runtime.graph_decode`; CUDA only), ``eager`` runs the steps one by one with ``cache``."""


class BenchSetupError(ValueError):
    """The models cannot be benchmarked as asked (no 2:4 layers, prompt too long, bad sizes)."""


@dataclass(frozen=True)
class ThroughputPlan:
    """What to measure. Sizes are per call: ``batch`` sequences of ``prompt`` tokens, ``new_tokens`` each."""

    batch_sizes: tuple[int, ...] = (1, 8, 16)
    prompt_lengths: tuple[int, ...] = (128, 2048)
    new_tokens: int = 128
    repeats: int = 3
    warmup: int = 1
    cache: str = CACHE_KINDS[0]
    seed: int = SEED
    decode_modes: tuple[str, ...] = DECODE_MODES

    def __post_init__(self) -> None:
        for name in ("batch_sizes", "prompt_lengths"):
            values = tuple(int(v) for v in getattr(self, name))
            if not values or min(values) < 1:
                raise BenchSetupError(f"{name} must be positive integers, got {values}")
            object.__setattr__(self, name, values)
        if self.new_tokens < 2:
            raise BenchSetupError("new_tokens must be at least 2 (one prefill token, one decode step)")
        if self.repeats < 1 or self.warmup < 0:
            raise BenchSetupError("repeats must be >= 1 and warmup >= 0")
        if self.cache not in CACHE_KINDS:
            raise BenchSetupError(f"cache must be {' or '.join(CACHE_KINDS)}, got {self.cache!r}")
        modes = tuple(self.decode_modes)
        if not modes or set(modes) - set(DECODE_MODES) or len(set(modes)) != len(modes):
            raise BenchSetupError(f"decode_modes must be distinct values of {DECODE_MODES}, got {modes}")
        object.__setattr__(self, "decode_modes", modes)


def parse_sizes(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,8,16"`` -> ``(1, 8, 16)``."""
    if not isinstance(text, str):
        return tuple(int(v) for v in text)
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BenchSetupError(f"expected comma-separated integers, got {text!r}") from None
