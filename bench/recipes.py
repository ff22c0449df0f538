"""Recipes: a pruning configuration written as words, e.g. ``sparsegpt 2:4 +admm +recon steps=64``.

``<method> <pattern or sparsity> [+admm] [+recon[=dense|prefix]] [+owl|+owl-lang] [WORD=VALUE ...]``: the
switches turn on :class:`~polysparse.sparsify.config.PruneConfig`'s ``update``, ``reconstruct`` (and
``reconstruct_target``) and ``sparsity_profile``; each ``WORD=VALUE`` sets the ``PruneConfig`` field that
declares that word (``setting(..., recipe="steps")``), typed as the field is: ``steps=N``, ``lr=X``, ``m=M``,
``lambda=L``, ``iters=N``, ``damp=X`` (SparseGPT's and ADMM's ``percdamp``), ``loss=mse|relative`` and
``prox=X`` (the reconstruction's loss and proximal weight), ``targets=REGEX`` (prune only
the layers whose names match: a cheap partial run). Two words are the recipe's own rather than
``PruneConfig``'s: ``calib=SPEC`` (e.g. ``calib=handbook:de=0.5,manpages:de=0.5``) replaces the run's
calibration spec and ``windows=N`` its number of calibration windows, for this recipe.
A recipe's cells are keyed on its *effective* settings (:func:`effective_settings`), not on its words, so a
changed default never reuses stale cells.
"""

from __future__ import annotations

import inspect
import json
import typing
from dataclasses import dataclass, fields
from typing import Any

from polysparse.bench.studies.cells import cell_key
from polysparse.sparsify.calibration_spec import CalibrationSpec
from polysparse.sparsify.config import ConfigError, NMPattern, PruneConfig
from polysparse.sparsify.methods.admm import admm_update
from polysparse.sparsify.reconstruction import EVAL_BATCHES

RESULT_NEUTRAL_FIELDS = ("offload", "offload_dir")
"""``PruneConfig`` fields that do not change the pruned weights (where activations wait between blocks)."""
LATER_FIELDS: dict[str, Any] = {"reconstruct_loss": "mse", "reconstruct_prox": 0.0}
"""``PruneConfig`` fields added after cells were keyed on the effective settings, each with the value that
does what the code did before it: there they stay out of the key, so the older cells still match (a later
change of the field's default changes the key)."""


def recipe_words() -> dict[str, str]:
    """``{word: PruneConfig field}`` for the ``WORD=VALUE`` words, as the fields declare them."""
    return {f.metadata["recipe"]: f.name for f in fields(PruneConfig) if f.metadata.get("recipe")}


@dataclass(frozen=True)
class Recipe:
    """A named pruning recipe: the words it was written as, the ``PruneConfig`` fields they set, and the
    recipe's own calibration spec (``calib=``) and window count (``windows=``) where its words give them."""

    text: str
    settings: dict[str, Any]
    calib: str | None = None
    windows: int | None = None

    @classmethod
    def parse(cls, text: str) -> Recipe:
        words = text.split()
        if len(words) < 2:
            raise ConfigError(f"recipe {text!r}: write '<method> <pattern or sparsity> [+admm] [+recon] ...'")
        settings: dict[str, Any] = {"method": words[0]}
        if ":" in words[1]:
            settings["pattern"] = str(NMPattern.parse(words[1]))
        else:
            settings["sparsity"] = float(words[1])
        named = recipe_words()
        calib, windows = None, None
        for word in words[2:]:
            key, _, value = word.partition("=")
            if word == "+admm":
                settings["update"] = "admm"
            elif key == "+recon":
                settings["reconstruct"] = "blockwise"
                if value:
                    settings["reconstruct_target"] = value
            elif word in ("+owl", "+owl-lang"):
                settings["sparsity_profile"] = word[1:]
            elif value and key in named:
                settings[named[key]] = _typed(text, named[key], value)
            elif value and key == "calib":
                try:
                    calib = CalibrationSpec.parse(value).text
                except ValueError as error:
                    raise ConfigError(f"recipe {text!r}: {error}") from None
            elif value and key == "windows":
                windows = _typed(text, "nsamples", value)
                if windows < 1:
                    raise ConfigError(f"recipe {text!r}: windows must be a positive whole number")
            else:
                raise ConfigError(f"recipe {text!r}: unknown word {word!r}")
        PruneConfig(**settings)  # validates
        return cls(" ".join(words), settings, calib, windows)

    def config(self, nsamples: int, seqlen: int, seed: int) -> PruneConfig:
        return PruneConfig(nsamples=self.windows or nsamples, seqlen=seqlen, seed=seed, **self.settings)


def _typed(text: str, name: str, value: str) -> Any:
    """``value`` as the ``PruneConfig`` field ``name`` takes it (a tuple field: a one-item tuple)."""
    kind = typing.get_type_hints(PruneConfig)[name]
    if typing.get_origin(kind) is tuple:
        return (value,)
    if typing.get_origin(kind) is typing.Literal:
        return value  # one of the field's choices: PruneConfig checks which
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"recipe {text!r}: {name} takes a {kind.__name__}, got {value!r}") from None


def effective_settings(config: PruneConfig) -> dict[str, Any]:
    """Everything that decides the weights a recipe prunes to, as JSON values: the key of its cells.

    Every ``PruneConfig`` field as resolved (defaults included) but the result-neutral ones and the
    :data:`LATER_FIELDS` at their old behaviour, plus the defaults
    of the steps the driver runs that are not ``PruneConfig`` fields: the ADMM solve's keyword defaults
    (``rho_start``, ``rho_end``, ``solver``) with ``update="admm"``, and the number of batches on which
    reconstruction decides whether to keep its training with ``reconstruct="blockwise"``.
    """
    settings = {k: v for k, v in config.to_dict().items() if k not in RESULT_NEUTRAL_FIELDS}
    for name, before in LATER_FIELDS.items():
        if settings[name] == before:
            del settings[name]
    if config.update == "admm":
        parameters = inspect.signature(admm_update).parameters.values()
        settings["admm_defaults"] = {
            p.name: p.default
            for p in parameters
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("percdamp", "iterations", "start")
        }
    if config.reconstruct != "none":
        settings["reconstruct_eval_batches"] = EVAL_BATCHES
    return as_json(settings)


def recipe_cell_key(recipe: Recipe, config: PruneConfig, *, model: str, calib: str) -> str:
    """The cell group of ``recipe`` pruned with ``config`` on ``calib`` windows: its text, then a hash."""
    return cell_key(recipe.text, {"model": model, "calib": calib, "settings": effective_settings(config)})


def as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples as lists, keys sorted, other objects as strings)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))
