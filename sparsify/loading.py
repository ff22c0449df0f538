"""Loading a causal LM and its tokenizer from a local Hugging Face folder, with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from polysparse.sparsify.config import ConfigError


class ModelLoadError(ValueError):
    """The folder is missing, incomplete, or does not hold a causal language model."""


class SequenceTooLongError(ValueError):
    """Windows longer than the positions the model was trained for."""


_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def max_positions(folder: str | Path) -> tuple[int, str] | None:
    """The number of positions a model folder's config allows, and the config key that says so.

    ``None`` when ``config.json`` is missing, unreadable or names no limit (loading reports the first two).
    Multimodal configs are read through their ``text_config``.
    """
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for section in (config, config.get("text_config") or {}):
        for key in _POSITION_KEYS:
            value = section.get(key)
            if isinstance(value, int) and value > 0:
                return value, key
    return None


def check_seqlen(folder: str | Path, seqlen: int, flag: str = "--seqlen") -> None:
    """Refuse windows longer than the model's positions, before any text is read or weight loaded.

    Positions past the trained range either crash (GPT-2's learned position table: IndexError) or run on
    rotary angles the model never saw, so calibration and perplexity there say nothing about the model.
    """
    limit = max_positions(folder)
    if limit is not None and seqlen > limit[0]:
        raise SequenceTooLongError(
            f"{flag} {seqlen} is longer than the {limit[0]} positions {folder} was trained for "
            f"({limit[1]} in config.json); use {flag} {limit[0]} or less"
        )


_DTYPES = {
    "auto": "auto",
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def parse_dtype(name: str | torch.dtype) -> str | torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    if name not in _DTYPES:
        raise ConfigError(f"unknown dtype {name!r}; choose one of {', '.join(_DTYPES)}")
    return _DTYPES[name]


def check_model_folder(path: str | Path) -> Path:
    """Return the folder if it looks like a Hugging Face causal LM; raise :class:`ModelLoadError` else."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    folder = Path(path)
    if not folder.exists():
        raise ModelLoadError(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is not a folder (expected a Hugging Face model folder)")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"{folder} has no config.json; is it a Hugging Face model folder?")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"{config_file} is not valid JSON: {error}") from None
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    causal = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or any(
        a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures
    )
    if not causal:
        raise ModelLoadError(
            f"{folder} holds a {model_type or 'model of unknown type'} "
            f"({', '.join(architectures) or 'no architectures'}), not a causal language model"
        )
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise ModelLoadError(f"{folder} has no weight files (*.safetensors)")
    return folder


def load_causal_lm(path: str | Path, dtype: str | torch.dtype = "auto", tokenizer: bool = True):
    """``(model, tokenizer)`` from a local folder, on the CPU, in eval mode; never reaches a hub."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = check_model_folder(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=parse_dtype(dtype), local_files_only=True)
    except Exception as error:  # safetensors, torch and transformers raise many types on bad files
        raise ModelLoadError(
            f"could not load the model in {folder}: {type(error).__name__}: {error}"
        ) from error
    tok = None
    if tokenizer:
        try:
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError) as error:
            raise ModelLoadError(f"could not load the tokenizer in {folder}: {error}") from error
    return model.eval(), tok
