"""Tiny randomly initialised causal LMs of several architectures, built from configs (no downloads)."""

from __future__ import annotations

import torch
from transformers import (
    AutoModelForCausalLM,
    Gemma3TextConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

VOCAB = 320

ARCHITECTURES = ("llama", "qwen2", "mistral", "gemma3", "gpt2")


# Decoder sizes shared by the Llama-like architectures; each entry below adds or replaces what differs.
_DECODER = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
)
_CONFIGS = {
    "llama": (LlamaConfig, _DECODER),
    "qwen2": (Qwen2Config, {**_DECODER, "intermediate_size": 96}),
    "mistral": (MistralConfig, {**_DECODER, "num_hidden_layers": 2, "sliding_window": 8}),
    # Sliding window shorter than the windows used in tests, so sliding and full attention differ.
    "gemma3": (
        Gemma3TextConfig,
        {
            **_DECODER,
            "num_hidden_layers": 4,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "sliding_window": 6,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        },
    ),
    "gpt2": (GPT2Config, dict(n_embd=64, n_layer=3, n_head=4, n_positions=256)),
}


def tiny_config(arch: str, **overrides):
    if arch not in _CONFIGS:
        raise ValueError(arch)
    config_class, sizes = _CONFIGS[arch]
    cfg = config_class(**sizes, vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def tiny_model(arch: str, seed: int = 0, dtype: torch.dtype = torch.float32, **overrides):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, **overrides), dtype=dtype)
    # Random init gives tiny weights in some architectures; widen them so pruning decisions matter.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.08)
    return model.eval()


def random_windows(n: int = 4, length: int = 12, seed: int = 0, pad_last: int = 0):
    """Random token windows starting with BOS; the last ``pad_last`` positions of the last window padded."""
    from polysparse.sparsify.calibration import TokenWindows

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (n, length), generator=g)
    ids[:, 0] = 1
    mask = torch.ones_like(ids)
    if pad_last:
        ids[-1, -pad_last:] = 0
        mask[-1, -pad_last:] = 0
    return TokenWindows(ids, mask, "random")


_TRAINING_TEXT = (
    "Polysparse prunes language models for the language they serve. "
    "Der Hund läuft schnell über die Wiese und bellt laut. "
    "Le chat dort sur le canapé pendant que la pluie tombe. "
    "El modelo aprende a predecir la siguiente palabra del texto. "
) * 4


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained in memory on a few invented sentences (vocabulary <= VOCAB)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<pad>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_TRAINING_TEXT], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
