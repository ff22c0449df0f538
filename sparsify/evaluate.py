"""Perplexity on token windows, padding excluded."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from polysparse.sparsify.calibration import TokenWindows
from polysparse.sparsify.stats import NonFiniteError, float16_hint

_LARGEST_LOG_PERPLEXITY = math.log(sys.float_info.max)  # 709.78: exp() of more overflows


@dataclass(frozen=True)
class Perplexity:
    perplexity: float
    nll: float
    tokens: int
    windows: int
    seqlen: int
    description: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def perplexity(
    model: nn.Module,
    windows: TokenWindows,
    *,
    batch_size: int = 1,
    progress: bool = False,
    description: str = "perplexity",
) -> Perplexity:
    """``exp`` of the mean next-token negative log-likelihood over all real (unpadded) target tokens.

    The model runs where its input embeddings are. Each window is scored on its own (no cache, no
    context from other windows); the first token (BOS) is context only.
    """
    device = model.get_input_embeddings().weight.device
    total_nll = 0.0
    total_tokens = 0
    model.eval()
    batches = list(windows.batches(batch_size))
    with torch.no_grad():
        for input_ids, attention_mask in tqdm(batches, desc=description, disable=not progress, unit="batch"):
            input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
            logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
            targets = input_ids[:, 1:]
            valid = (attention_mask[:, 1:] * attention_mask[:, :-1]).bool()
            nll = nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
            ).reshape(targets.shape)
            if not torch.isfinite(nll[valid]).all():
                raise NonFiniteError(
                    f"{description}: the model's logits or loss are NaN or Inf"
                    f"{float16_hint(logits.dtype)}; no perplexity is reported"
                )
            total_nll += nll[valid].double().sum().item()
            total_tokens += int(valid.sum().item())
    if total_tokens == 0:
        raise ValueError("no target tokens to score")
    mean = total_nll / total_tokens
    if mean > _LARGEST_LOG_PERPLEXITY:
        raise NonFiniteError(
            f"{description}: the mean negative log-likelihood is {mean:.4g} nats per token, so perplexity "
            "overflows a float; the model's predictions are broken (weights out of range?)"
        )
    return Perplexity(
        perplexity=math.exp(mean),
        nll=mean,
        tokens=total_tokens,
        windows=len(windows),
        seqlen=windows.seqlen,
        description=windows.description,
    )
