"""What to prune and how: one frozen configuration shared by the library, the CLI and the report."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from polysparse.sparsify.settings import setting

Method = Literal["magnitude", "wanda", "sparsegpt"]
METHOD_NAMES: tuple[str, ...] = ("magnitude", "wanda", "sparsegpt")
UPDATE_NAMES: tuple[str, ...] = ("none", "admm")
RECONSTRUCT_NAMES: tuple[str, ...] = ("none", "blockwise")
RECONSTRUCT_TARGETS: tuple[str, ...] = ("dense", "prefix")
RECONSTRUCT_LOSSES: tuple[str, ...] = ("mse", "relative")
PROFILE_NAMES: tuple[str, ...] = ("uniform", "owl", "owl-lang")
OWL_PROFILES: tuple[str, ...] = ("owl", "owl-lang")
ON_INDIVISIBLE_NAMES: tuple[str, ...] = ("skip", "error")
OFFLOAD_NAMES: tuple[str, ...] = ("none", "cpu", "disk")
OFFLOAD_DTYPE_NAMES: tuple[str, ...] = ("float16", "bfloat16")


class ConfigError(ValueError):
    """An invalid pruning configuration."""


@dataclass(frozen=True)
class NMPattern:
    """``N`` of every ``M`` consecutive input weights of a row are pruned (2:4 keeps two of four).

    This is the convention of the Wanda and SparseGPT code; 2:4 and 4:8 are both 50% sparse.
    """

    n: int
    m: int

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int) and isinstance(self.m, int)) or not 0 < self.n < self.m:
            raise ConfigError(f"an N:M pattern needs whole numbers 0 < N < M, got {self.n}:{self.m}")

    @classmethod
    def parse(cls, text: str) -> NMPattern:
        match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
        if not match:
            raise ConfigError(f"malformed N:M pattern {text!r}; expected e.g. 2:4 or 4:8")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def sparsity(self) -> float:
        return self.n / self.m

    def misfit(self, in_features: int) -> str | None:
        """``None`` when a layer of ``in_features`` inputs takes the pattern (whole groups), else why not."""
        if in_features % self.m:
            return f"in_features={in_features} is not a multiple of M={self.m}"
        return None

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"


SPARSE24 = NMPattern(2, 4)
"""The pattern the 2:4 sparse format and runtime take (two of every four weights pruned): the default where a
command prunes for the sparse runtime."""


@dataclass(frozen=True)
class PruneConfig:
    """Pruning settings. Give exactly one of ``sparsity`` (unstructured, per row) or ``pattern`` (N:M).

    ``targets`` / ``ignore`` are regular expressions searched in module names such as
    ``model.layers.3.mlp.down_proj``; by default every Linear (and GPT-2 Conv1D) inside the decoder blocks
    is pruned. Embeddings and ``lm_head`` sit outside the blocks and are never pruned.

    ``offload`` keeps the calibration activations between blocks on the working device (``none``), in
    host memory (``cpu``) or on disk (``disk``, under ``offload_dir``; default: the run's working folder,
    else a temporary one); ``offload_dtype`` stores them in float16 / bfloat16. Where they live does not
    change the result; storing them in a narrower dtype than the model's can.

    After a layer's mask is chosen, ``update="admm"`` re-solves its kept weights exactly for the layer's
    least squares (:mod:`polysparse.sparsify.methods.admm`, ``admm_iterations``). After a block's layers are
    pruned, ``reconstruct="blockwise"`` trains the block's kept weights for ``reconstruct_steps`` Adam steps
    at ``reconstruct_lr`` to match ``reconstruct_target``: the dense model's own outputs of that block
    (``dense``) or the dense block's outputs on the pruned prefix's inputs (``prefix``), scoring each token's
    error as is (``reconstruct_loss="mse"``) or relative to the target token's norm (``"relative"``), with a
    proximal pull toward the weights the block was pruned to when ``reconstruct_prox`` > 0; see
    :mod:`polysparse.sparsify.reconstruction`. ``sparsity_profile="owl"`` gives each block its own
    unstructured sparsity from its outlier ratio (Yin et al., 2024; ``owl_m``, ``owl_lambda``), averaging
    to ``sparsity``; see :mod:`polysparse.sparsify.methods.owl`. ``"owl-lang"`` takes each block's outlier
    ratio per calibration language of a mixed spec and keeps the largest, so that no language's outliers
    decide less than they would alone (:mod:`polysparse.sparsify.profiles`).
    """

    method: Method = setting("wanda")
    sparsity: float | None = setting(None, help="unstructured sparsity per row, 0 < s < 1 (or --pattern)")
    pattern: NMPattern | None = setting(
        None, help="N:M pattern, N pruned of every M (2:4, 4:8; or --sparsity)"
    )
    targets: tuple[str, ...] = setting(
        (), metavar="REGEX", recipe="targets", help="prune only layers whose name matches (repeatable)"
    )
    ignore: tuple[str, ...] = setting(
        (), metavar="REGEX", help="leave layers whose name matches dense (repeatable)"
    )
    nsamples: int = setting(128, help="calibration windows (default %(default)s)")
    seqlen: int = setting(2048, help="tokens per window, BOS included (default %(default)s)")
    seed: int = setting(0)
    batch_size: int = setting(1, help="windows per forward pass")
    blocksize: int = setting(128, help="SparseGPT lazy-update block (default %(default)s)")
    percdamp: float = setting(
        0.01, recipe="damp", help="SparseGPT's and ADMM's damping (default %(default)s)"
    )
    device: str | None = setting(
        None, help="device for the working block (default: cuda if present, else cpu)"
    )
    on_indivisible: Literal["skip", "error"] = setting(
        "skip", help="layers whose in_features is not a multiple of M: leave dense, or stop"
    )
    offload: Literal["none", "cpu", "disk"] = setting(
        "none",
        help="where the calibration activations wait between blocks: on the working device (none), in host "
        "memory (cpu: the GPU holds one batch at a time) or on disk (disk: memory holds one batch)",
    )
    offload_dtype: Literal["float16", "bfloat16"] | None = setting(
        None, help="store the activations between blocks in this dtype (half the memory; rounds them)"
    )
    offload_dir: str | None = setting(
        None, help="folder for --offload disk (default: the run's working folder beside --out)"
    )
    update: Literal["none", "admm"] = setting(
        "none", help="after each layer's mask: admm re-solves its kept weights for the layer's least squares"
    )
    admm_iterations: int = setting(20, recipe="iters", help="ADMM iterations per layer (default %(default)s)")
    reconstruct: Literal["none", "blockwise"] = setting(
        "none",
        help="after each block's masks: train its kept weights to match the dense output (Adam, masks exact)",
    )
    reconstruct_steps: int = setting(
        32, recipe="steps", help="Adam steps per block, one batch each (default %(default)s)"
    )
    # 3e-4: the lowest held-out block error of the rates tried on Gemma 3 270M (docs/recovery.md).
    reconstruct_lr: float = setting(3e-4, recipe="lr", help="Adam learning rate (default %(default)s)")
    reconstruct_target: Literal["dense", "prefix"] = setting(
        "dense",
        help="dense: the dense model's own block outputs; prefix: the dense block on the pruned inputs",
    )
    reconstruct_loss: Literal["mse", "relative"] = setting(
        "mse",
        recipe="loss",
        help="mse: each token's squared error as is; relative: against the target token's squared norm",
    )
    reconstruct_prox: float = setting(
        0.0,
        recipe="prox",
        help="weight of a proximal pull toward the pruned weights during reconstruction (0: off)",
    )
    sparsity_profile: Literal["uniform", "owl", "owl-lang"] = setting(
        "uniform",
        help="owl: per-block sparsity from outlier ratios (Yin et al. 2024), mean = --sparsity; owl-lang: "
        "the largest ratio over the calibration languages of a mixed --calib",
    )
    owl_m: float = setting(5.0, recipe="m", help="OWL outlier threshold M (default %(default)s)")
    owl_lambda: float = setting(0.08, recipe="lambda", help="OWL lambda (default %(default)s)")

    def __post_init__(self) -> None:
        if isinstance(self.pattern, str):
            object.__setattr__(self, "pattern", NMPattern.parse(self.pattern))
        for name in ("targets", "ignore"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
            for expression in value:
                try:
                    re.compile(expression)
                except re.error as error:
                    raise ConfigError(f"{name}: invalid regular expression {expression!r}: {error}") from None
        if self.method not in METHOD_NAMES:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHOD_NAMES)}")
        if (self.sparsity is None) == (self.pattern is None):
            raise ConfigError("give exactly one of sparsity (e.g. 0.5) or pattern (e.g. 2:4)")
        if self.sparsity is not None and not (
            isinstance(self.sparsity, (int, float)) and 0.0 < float(self.sparsity) < 1.0
        ):
            raise ConfigError(f"sparsity must lie strictly between 0 and 1, got {self.sparsity!r}")
        for name in ("nsamples", "seqlen", "batch_size", "blocksize"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if self.seqlen < 2:
            raise ConfigError("seqlen must be at least 2 (a BOS token and one text token)")
        if self.percdamp <= 0:
            raise ConfigError(f"percdamp must be positive, got {self.percdamp}")
        if self.pattern is not None and self.method == "sparsegpt" and self.blocksize % self.pattern.m:
            raise ConfigError(
                f"SparseGPT blocksize {self.blocksize} must be a multiple of M={self.pattern.m}"
            )
        if self.on_indivisible not in ON_INDIVISIBLE_NAMES:
            raise ConfigError(f"on_indivisible must be 'skip' or 'error', got {self.on_indivisible!r}")
        if self.offload not in OFFLOAD_NAMES:
            raise ConfigError(f"offload must be 'none', 'cpu' or 'disk', got {self.offload!r}")
        if self.offload_dtype is not None and self.offload_dtype not in OFFLOAD_DTYPE_NAMES:
            raise ConfigError(f"offload_dtype must be float16 or bfloat16, got {self.offload_dtype!r}")
        if self.offload_dir is not None and self.offload != "disk":
            raise ConfigError("offload_dir is only used with offload='disk'")
        self._check_recovery()

    def _check_recovery(self) -> None:
        """The post-mask steps (ADMM update, block-wise reconstruction) and the sparsity profile."""
        choices = (
            ("update", UPDATE_NAMES),
            ("reconstruct", RECONSTRUCT_NAMES),
            ("reconstruct_target", RECONSTRUCT_TARGETS),
            ("reconstruct_loss", RECONSTRUCT_LOSSES),
            ("sparsity_profile", PROFILE_NAMES),
        )
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("admm_iterations", "reconstruct_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if not (isinstance(self.reconstruct_lr, (int, float)) and 0.0 < self.reconstruct_lr < 1.0):
            raise ConfigError(f"reconstruct_lr must lie in (0, 1), got {self.reconstruct_lr!r}")
        prox = self.reconstruct_prox
        if isinstance(prox, bool) or not (isinstance(prox, (int, float)) and 0.0 <= prox < float("inf")):
            raise ConfigError(f"reconstruct_prox must be zero (off) or a positive number, got {prox!r}")
        if not (isinstance(self.owl_m, (int, float)) and self.owl_m > 0):
            raise ConfigError(f"owl_m (a multiple of the mean score) must be positive, got {self.owl_m!r}")
        if not (isinstance(self.owl_lambda, (int, float)) and 0.0 < self.owl_lambda < 1.0):
            raise ConfigError(f"owl_lambda must lie strictly between 0 and 1, got {self.owl_lambda!r}")
        if self.sparsity_profile in OWL_PROFILES:
            if self.pattern is not None:
                raise ConfigError(
                    f"sparsity_profile={self.sparsity_profile!r} needs unstructured sparsity: an N:M "
                    "pattern is the same in every layer, leaving no room for per-layer sparsities"
                )
            # OWL's block sparsities span 2 * lambda around the target: they stay within target +- 2 lambda.
            low, high = self.target_sparsity - 2 * self.owl_lambda, self.target_sparsity + 2 * self.owl_lambda
            if not (low > 0.0 and high < 1.0):
                limit = min(self.target_sparsity, 1 - self.target_sparsity) / 2
                raise ConfigError(
                    f"owl_lambda={self.owl_lambda} lets block sparsities reach [{low:g}, {high:g}] around "
                    f"sparsity={self.target_sparsity}, outside (0, 1); choose owl_lambda < {limit:g}"
                )

    @property
    def target_sparsity(self) -> float:
        return float(self.sparsity) if self.sparsity is not None else self.pattern.sparsity

    @property
    def sparsity_label(self) -> str:
        return str(self.pattern) if self.pattern is not None else f"{self.target_sparsity:.0%} unstructured"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pattern"] = str(self.pattern) if self.pattern is not None else None
        data["targets"] = list(self.targets)
        data["ignore"] = list(self.ignore)
        return data


def prune_default(name: str) -> Any:
    """The default of a :class:`PruneConfig` field: the one home of the CLI's and the jobs' defaults."""
    return PruneConfig.__dataclass_fields__[name].default
