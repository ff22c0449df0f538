"""The settings of the ``polysparse`` commands, each declared once (name, type, default, help) as a field of a
frozen dataclass: the command line generates its options from these fields (:mod:`polysparse.bench.options`)
and the jobs take the dataclasses (:mod:`polysparse.bench.jobs`). The pruning settings themselves are
:class:`~polysparse.sparsify.config.PruneConfig`'s; the ``*Run`` classes hold where a command reads and
writes and how it reports, the plans what determines its numbers.

Torch-free, so the command line parses without importing torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from polysparse.runtime.backends import BACKENDS
from polysparse.sparsify.calibration_spec import DEFAULT_SHOTS
from polysparse.sparsify.config import METHOD_NAMES, SPARSE24, PruneConfig, prune_default
from polysparse.sparsify.corpora import normalize_language
from polysparse.sparsify.settings import setting, split_values


def plan_default(plan: type, name: str) -> Any:
    """The default of a field of one of these dataclasses (``plan_default(StudyPlan, "nsamples")``)."""
    return plan.__dataclass_fields__[name].default


TASK_LIMIT = 500
"""Items per task (and language, in a study) unless ``--limit`` / ``--task-limit`` says otherwise (gettext
gives thousands per language; 500 x 4 choices score in minutes on a 2-core CPU)."""
SEED = 0
"""The seed of window draws and orders in ``eval`` and ``bench`` unless ``--seed`` is given."""


# The settings several commands share, declared here once.
def _model(
    help: str = "local Hugging Face folder, or a model that installs offline: gemma-3-270m, smollm2-135m",
):
    return setting(help=help)


def _dtype():
    return setting("auto", help="auto (the checkpoint's), float32, bfloat16, float16")


def _device(what: str = "device"):
    return setting(None, help=f"{what} (default: cuda if present, else cpu)")


def _encoding():
    return setting(
        "utf-8", help="encoding of text: files (default utf-8; decoding is strict: a bad byte stops the run)"
    )


def _quiet():
    return setting(False, help="no progress bars, warnings only")


# ----------------------------------------------------------------------------------------------------------
# prune (the pruning settings are PruneConfig's)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneRun:
    """What ``polysparse prune`` reads and writes, and how it runs.

    ``stream``: ``on`` reads decoder blocks from the safetensors files one at a time (peak memory about one
    block, for models larger than memory), ``off`` loads the whole model, ``auto`` streams when the weights
    take more than half of the available memory. ``checkpoint``: keep per-block state in ``.<out>.work`` so
    that the same command resumes after an interruption (``--no-checkpoint`` turns it off).
    """

    model: str = _model()
    out: str = setting(help="output folder (refused if it exists, unless --overwrite)")
    calib: str | None = setting(
        None,
        help="calibration source spec, e.g. text:notes/*.txt:de, handbook:de, "
        "handbook:de=0.5,handbook:en=0.5 (not needed for magnitude)",
    )
    dtype: str = _dtype()
    overwrite: bool = setting(False, help="replace --out and drop any interrupted run's state")
    checkpoint: bool = setting(True, help="do not keep per-block state for resuming (saves disk writes)")
    stream: Literal["auto", "on", "off"] = setting(
        "auto",
        help="read decoder blocks from disk one at a time (models larger than memory); auto: when the "
        "weights exceed half the available memory",
    )
    encoding: str = _encoding()
    quiet: bool = _quiet()


DEMO_RECIPE = {"method": "sparsegpt", "pattern": str(SPARSE24), "nsamples": 16, "seqlen": 512}
"""``polysparse demo``'s defaults for ``PruneConfig``'s options: SparseGPT 2:4 on 16 windows x 512 tokens."""


@dataclass(frozen=True)
class DemoRun:
    """``polysparse demo``: which model, for which language, where it writes (the recipe is PruneConfig's)."""

    model: str | None = setting(None, help=_model().metadata["help"] + " (default gemma-3-270m)")
    dtype: str = _dtype()
    lang: str = setting("de", help="language to prune for (default %(default)s)")
    eval_windows: int = setting(4, help="held-out windows per language (default %(default)s)")
    out: str = setting("polysparse-demo", help="output folder (default ./%(default)s)")
    # The throughput step's sizes: small, so that it takes seconds on a CPU.
    bench_batch: str = setting("1", option=False)
    bench_prompt: str = setting("32", option=False)
    bench_new_tokens: int = setting(8, option=False)
    bench_repeats: int = setting(2, option=False)
    quiet: bool = _quiet()


# ----------------------------------------------------------------------------------------------------------
# eval
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalPlan:
    """``polysparse eval``: perplexity per source on held-out windows, multiple-choice and lm-eval tasks."""

    model: str = _model()
    data: tuple[str, ...] = setting(
        (), metavar="SPEC", help="evaluation source spec (repeatable), e.g. handbook:de or text:eval.txt:de"
    )
    source: str | None = setting(
        None, help="with --langs: the source to take every language from (e.g. handbook)"
    )
    langs: tuple[str, ...] = setting((), separator=",", help="comma-separated languages, with --source")
    windows: int = setting(32, help="windows per source (default %(default)s)")
    seqlen: int = setting(512, help="tokens per window, BOS included (default %(default)s)")
    seed: int = setting(SEED)
    device: str | None = _device("device to evaluate on")
    dtype: str = _dtype()
    out: str | None = setting(None, help="write JSON here (and Markdown beside it)")
    overwrite: bool = setting(False, help="replace an existing --out file")
    encoding: str = _encoding()
    tasks: str | None = setting(
        None,
        metavar="SPEC[,SPEC]",
        help="multiple-choice tasks: translation-choice:SRC->TGT:PARALLEL (gettext, handbook, "
        "install-guide), continuation-choice:LANG:SOURCE, file:PATH.jsonl",
    )
    limit: int | None = setting(None, help=f"items per task (default {TASK_LIMIT})")
    dump_items: str | None = setting(
        None, metavar="PATH.jsonl", help="write the tasks' items here (task-file format)"
    )
    batch_size: int = setting(8, help="task items per forward pass (default %(default)s)")
    lm_eval: str | None = setting(
        None,
        metavar="TASKS",
        help="lm-eval task names run through lm-eval's simple_evaluate on the loaded model "
        "(pip install 'polysparse[lm-eval]'; needs their data sets on this machine)",
    )
    quiet: bool = _quiet()

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", tuple(self.data))
        object.__setattr__(self, "langs", split_values(self.langs))


# ----------------------------------------------------------------------------------------------------------
# study
# ----------------------------------------------------------------------------------------------------------


class StudyInputError(ValueError):
    """A study that cannot run as asked: a language without text, or another study's tables in ``out``."""


TASK_LIMIT_KINDS = ("translation-choice", "continuation-choice", "file")
"""The task kinds ``--task-limit KIND=N`` takes (those of :func:`polysparse.sparsify.tasks.parse_task`)."""


def parse_task_limits(text: str | int) -> tuple[int, tuple[tuple[str, int], ...]]:
    """``--task-limit``: ``"300"`` or ``"translation-choice=300,continuation-choice=200"`` (a bare number
    among them sets the other kinds) -> ``(default, per kind)``."""
    if isinstance(text, int):
        return text, ()
    default, per_kind = TASK_LIMIT, []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        kind, sep, number = part.rpartition("=")
        try:
            value = int(number)
        except ValueError:
            raise StudyInputError(
                f"--task-limit: {part!r} is not N or KIND=N "
                "(e.g. translation-choice=300,continuation-choice=200)"
            ) from None
        if sep:
            per_kind.append((kind.strip(), value))
        else:
            default = value
    return default, tuple(per_kind)


@dataclass(frozen=True)
class StudyPlan:
    """Everything that determines a study's numbers; cells are keyed by the parts that affect them.

    Neither ``sparsity`` nor ``pattern``: the study compares calibration languages at 2:4."""

    model: str = _model()
    langs: tuple[str, ...] = setting(separator=",", help="comma-separated languages, e.g. en,de,ru,zh,ja,ar")
    method: str = setting(prune_default("method"), choices=METHOD_NAMES)
    sparsity: float | None = setting(None, help="unstructured sparsity per row (or --pattern)")
    pattern: str | None = setting(None, help=f"N:M pattern (default {SPARSE24} without --sparsity)")
    calib_source: str = setting("handbook", help="document source for calibration (%(default)s)")
    eval_source: str = setting(
        "install-guide", help="document source for evaluation (%(default)s; falls back per language)"
    )
    mix: bool = setting(True, help="leave out the equal-mixture row")
    translate_source: str | None = setting(
        "gettext", help="parallel source for X->English translation-prompt rows ('none' to leave them out)"
    )
    shots: int = setting(DEFAULT_SHOTS)
    # A study prunes once per row: 32 windows x 512 tokens (not prune's 128 x 2048) keeps a row in minutes.
    nsamples: int = setting(32)
    seqlen: int = setting(512)
    eval_windows: int = setting(8)
    eval_seqlen: int = setting(256)
    seed: int = setting(prune_default("seed"))
    dtype: str = _dtype()
    tasks: tuple[str, ...] = setting(
        (),
        separator=",",
        metavar="SPEC[,SPEC]",
        help="task columns; X stands for each study language: translation-choice:X->en:gettext,"
        "translation-choice:en->X:gettext,continuation-choice:X:handbook; LANG=SPEC fills the column a "
        "template leaves out (en=translation-choice:en->de:gettext)",
    )
    # A string (from the command line) is parsed into task_limit and task_limits: "300", or
    # "translation-choice=300,continuation-choice=200" (a bare number among them sets the other kinds).
    task_limit: int | str = setting(
        TASK_LIMIT,
        metavar="N|KIND=N[,...]",
        help="items per task and language (default %(default)s), or per task kind: "
        "translation-choice=300,continuation-choice=200",
    )
    # Items per task kind where it differs from task_limit: (("translation-choice", 300), ...).
    task_limits: tuple[tuple[str, int], ...] = setting((), option=False)
    # The languages that get an X->English translation-prompt row; None: every study language but English.
    translate_langs: tuple[str, ...] | None = setting(
        None,
        separator=",",
        metavar="LANG[,LANG]",
        help="languages that get an X->English translation-prompt row (default: every one but English)",
    )
    # Extra rows pruned with a recipe (bench.recipes' words, e.g. "sparsegpt 2:4 +admm +recon"), calibrated
    # on each of recipe_calibs (study languages, or "mix").
    recipe: str | None = setting(
        None,
        help="extra rows pruned with this recipe, e.g. 'sparsegpt 2:4 +admm +recon' (needs --recipe-calib)",
    )
    recipe_calibs: tuple[str, ...] = setting(
        (),
        flag="--recipe-calib",
        separator=",",
        metavar="CALIB[,CALIB]",
        help="the recipe rows' calibrations: study languages or mix, e.g. de,mix",
    )

    def __post_init__(self) -> None:
        from polysparse.bench.studies.study_tasks import validate_specs

        langs = split_values(self.langs)
        object.__setattr__(self, "langs", tuple(normalize_language(lang) for lang in langs))
        if len(set(self.langs)) != len(self.langs) or not self.langs:
            raise StudyInputError(f"give distinct languages, got {self.langs}")
        if self.sparsity is None and self.pattern is None:
            object.__setattr__(self, "pattern", str(SPARSE24))
        if self.translate_source in ("", "none"):
            object.__setattr__(self, "translate_source", None)
        self.prune_config()  # validates method, sparsity / pattern
        object.__setattr__(self, "tasks", split_values(self.tasks))
        if isinstance(self.task_limit, str):
            task_limit, task_limits = parse_task_limits(self.task_limit)
            object.__setattr__(self, "task_limit", task_limit)
            object.__setattr__(self, "task_limits", tuple(self.task_limits) + task_limits)
        for name in ("shots", "nsamples", "seqlen", "eval_windows", "eval_seqlen", "task_limit"):
            value = getattr(self, name)
            if value < 1:
                raise StudyInputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        object.__setattr__(self, "task_limits", tuple((k, int(n)) for k, n in self.task_limits))
        for kind, limit in self.task_limits:
            if kind not in TASK_LIMIT_KINDS or limit < 1:
                raise StudyInputError(
                    f"--task-limit {kind}={limit}: give a task kind ({', '.join(TASK_LIMIT_KINDS)}) and at "
                    "least 1 item"
                )
        validate_specs(self.tasks, self.langs)
        self._check_rows()

    def _check_rows(self) -> None:
        """The translation languages and the recipe rows: each names a study language (or the mix)."""
        if self.translate_langs is not None:
            langs = tuple(normalize_language(lang) for lang in split_values(self.translate_langs))
            object.__setattr__(self, "translate_langs", langs)
            wrong = [lang for lang in langs if lang not in self.langs or lang == "en"]
            if wrong:
                raise StudyInputError(
                    f"--translate-langs {','.join(wrong)}: translation rows are X->English for study "
                    f"languages other than English ({','.join(self.langs)})"
                )
        calibs = tuple(c if c == "mix" else normalize_language(c) for c in split_values(self.recipe_calibs))
        object.__setattr__(self, "recipe_calibs", calibs)
        if (self.recipe is None) != (not calibs):
            raise StudyInputError(
                "give --recipe and --recipe-calib together (the recipe and its calibrations)"
            )
        wrong = [c for c in calibs if c != "mix" and c not in self.langs]
        if wrong or len(set(calibs)) != len(calibs):
            raise StudyInputError(
                f"--recipe-calib {','.join(calibs)}: give distinct study languages ({','.join(self.langs)}) "
                "or mix"
            )
        if self.recipe is not None:
            config = self.recipe_config()
            if config.target_sparsity != self.prune_config().target_sparsity or config.pattern != (
                self.prune_config().pattern
            ):
                raise StudyInputError(
                    f"--recipe {self.recipe!r} prunes to {config.sparsity_label}, the study to "
                    f"{self.sparsity_label}: the recipe rows must share the study's sparsity"
                )

    def task_limit_for(self, kind: str) -> int:
        """Items per task and language for a task kind (``translation-choice``...)."""
        return dict(self.task_limits).get(kind, self.task_limit)

    def recipe_config(self) -> PruneConfig:
        """The configuration of the recipe rows (the study's windows and seed)."""
        from polysparse.bench.recipes import Recipe

        assert self.recipe is not None
        return Recipe.parse(self.recipe).config(self.nsamples, self.seqlen, self.seed)

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


@dataclass(frozen=True)
class StudyRun:
    """Where ``polysparse study`` writes its tables and keeps its finished cells."""

    out: str = setting(help="folder for the tables and heatmap")
    cells: str | None = setting(None, help="folder of finished cells to resume from (default OUT/cells)")
    plot: bool = setting(True, help="no heatmap")
    quiet: bool = _quiet()


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

    batch_sizes: tuple[int, ...] = setting(
        (1, 8, 16), flag="--batch", separator=",", help="comma-separated batch sizes (default %(default)s)"
    )
    prompt_lengths: tuple[int, ...] = setting(
        (128, 2048),
        flag="--prompt",
        separator=",",
        help="comma-separated prompt lengths (default %(default)s)",
    )
    new_tokens: int = setting(128, help="tokens generated per sequence (default %(default)s)")
    repeats: int = setting(3, help="timed runs per variant and size (default %(default)s)")
    warmup: int = setting(1, help="untimed runs per variant and size (default %(default)s)")
    cache: str = setting(CACHE_KINDS[0], choices=CACHE_KINDS, help="KV cache kind")
    seed: int = setting(SEED)
    decode_modes: tuple[str, ...] = setting(DECODE_MODES, option=False)

    def __post_init__(self) -> None:
        for name in ("batch_sizes", "prompt_lengths"):
            values = parse_sizes(getattr(self, name))
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


@dataclass(frozen=True)
class BenchRun:
    """The models ``polysparse bench`` compares, where it runs them and where it writes."""

    model: str = _model("sparse checkpoint (polysparse export/save) or 2:4-pruned folder")
    dense: str | None = setting(None, help="dense reference folder (default: the same weights decompressed)")
    backend: str = setting(BACKENDS[0], choices=BACKENDS)
    dispatch: str | None = setting(
        None, help="kernel benchmark JSON with a dispatch_table (default: bench/results)"
    )
    device: str | None = _device()
    dtype: str = _dtype()
    out: str | None = setting(None, help="output folder (default bench/results/throughput)")
    plot: bool = setting(True, help="no plot")
    quiet: bool = _quiet()


# ----------------------------------------------------------------------------------------------------------
# corpora, export, serve (their jobs take these fields as keywords)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorporaQuery:
    """``polysparse corpora``: which text sources to list, and how."""

    source: tuple[str, ...] = setting((), help="only these sources (repeatable)")
    json: bool = setting(False, help="print JSON instead of a table")
    quiet: bool = _quiet()


@dataclass(frozen=True)
class ExportRun:
    """``polysparse export``: a sparse checkpoint, or a folder pruned 2:4, written in another format."""

    model: str = setting(
        positional=True, help="sparse checkpoint folder, or a folder written by polysparse prune (2:4)"
    )
    format: Literal["dense", "compressed", "compressed-tensors"] = setting()
    out: str = setting(help="output folder")
    overwrite: bool = setting(False)
    quiet: bool = _quiet()


@dataclass(frozen=True)
class ServeRun:
    """``polysparse serve``: the folder served, and where."""

    model: str = setting(
        positional=True, help="compressed folder (polysparse export, the demo's compressed/) or HF folder"
    )
    host: str = setting("127.0.0.1", help="address to listen on (default %(default)s)")
    port: int = setting(8000, help="port (default %(default)s; 0 picks a free one)")
    device: str | None = _device()
    dtype: str = _dtype()
    quiet: bool = _quiet()


def parse_sizes(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,8,16"`` -> ``(1, 8, 16)``."""
    if not isinstance(text, str):
        return tuple(int(v) for v in text)
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BenchSetupError(f"expected comma-separated integers, got {text!r}") from None
