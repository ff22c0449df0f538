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


def check_model_folder(path: str | Path, *, compressed_ok: bool = False) -> Path:
    """Return the folder if it looks like a Hugging Face causal LM; raise :class:`ModelLoadError` else.

    A compressed 2:4 folder (``polysparse export``) is refused unless ``compressed_ok``: pruning and
    evaluation read dense weights, the runtime's loaders (serving) read the compressed ones."""
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
    compressed = _compressed_format(config)
    if compressed is not None and not compressed_ok:
        raise ModelLoadError(
            f"{folder} is a compressed 2:4 checkpoint (format {compressed}, written by polysparse export), "
            "not a dense Hugging Face folder; write one with `polysparse export "
            f"{folder} --format dense --out DENSE_FOLDER` (or load it with polysparse.runtime.load_sparse)"
        )
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise ModelLoadError(f"{folder} has no weight files (*.safetensors)")
    return folder


# The sparse formats polysparse export writes whose weights transformers cannot read as they are (the
# ``dense`` export is a plain HF folder): polysparse's own layout, and compressed-tensors' sparse-24-bitmask,
# which the compressed-tensors releases this project is tested with do not decompress.
_COMPRESSED_FORMATS = ("polysparse-sparse24", "sparse-24-bitmask")

# Files one of which a tokenizer needs (fast: tokenizer.json; slow: a sentencepiece or BPE vocabulary).
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "*.tiktoken",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
)


def _compressed_format(config: dict) -> str | None:
    block = config.get("sparsity_config")
    if isinstance(block, dict) and block.get("format") in _COMPRESSED_FORMATS:
        return str(block["format"])
    return None


def load_tokenizer(folder: Path):
    """The tokenizer of a model folder; a folder without tokenizer files is named as such."""
    from transformers import AutoTokenizer

    if not any(any(folder.glob(pattern)) for pattern in _TOKENIZER_FILES):
        raise ModelLoadError(
            f"{folder} has no tokenizer files (one of {', '.join(_TOKENIZER_FILES)}); copy them from the "
            "folder the model came from"
        )
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise ModelLoadError(f"could not load the tokenizer in {folder}: {error}") from error


def check_initialised(folder: Path, missing_keys) -> None:
    """Refuse a model for which transformers had to initialise weights: the folder lacks them (a base
    model saved without its language-model head, a file missing a layer's weight), and transformers fills
    them with random values and goes on. Tied weights (an ``lm_head`` tied to the embedding) are not
    missing."""
    missing = sorted(missing_keys or ())
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        head = (
            " (the folder holds a base model without its language-model head)"
            if any(key.split(".")[0] in ("lm_head", "embed_out", "output") for key in missing)
            else ""
        )
        raise ModelLoadError(
            f"{folder} lacks weights that the model needs: {shown}{head}; transformers would fill them with "
            "random values. Give the folder of a complete causal language model"
        )


def load_causal_lm(path: str | Path, dtype: str | torch.dtype = "auto", tokenizer: bool = True):
    """``(model, tokenizer)`` from a local folder, on the CPU, in eval mode; never reaches a hub."""
    from transformers import AutoModelForCausalLM

    folder = check_model_folder(path)
    tok = load_tokenizer(folder) if tokenizer else None  # first: it fails in a moment, the weights take long
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            folder, dtype=parse_dtype(dtype), local_files_only=True, output_loading_info=True
        )
    except Exception as error:  # safetensors, torch and transformers raise many types on bad files
        raise ModelLoadError(
            f"could not load the model in {folder}: {type(error).__name__}: {error}"
        ) from error
    check_initialised(folder, info.get("missing_keys"))
    return model.eval(), tok
