"""Scoring multiple-choice items as lm-eval scores them, with the context's forward pass shared.

Convention (lm-eval's ``loglikelihood`` for ``multiple_choice`` tasks):

- whitespace that ends the context is moved to the front of each choice;
- ``context + choice`` and ``context`` are tokenized without special tokens, and the choice's tokens are
  those of ``context + choice`` past the length of ``context``'s tokens; the model sees ``context``'s
  tokens followed by them (so a merge across the boundary is scored as lm-eval scores it);
- the tokenizer's BOS token is prepended to every context (as the model was trained; Gemma's perplexity is
  2-3x off without it, see :mod:`polysparse.sparsify.evaluate`); a tokenizer without one gets none;
- a choice's score is the sum of the log-probabilities of its tokens; ``acc`` picks the highest score,
  ``acc_norm`` the highest score per UTF-8 byte of the choice string (lm-eval divides by characters;
  bytes treat scripts alike, a CJK character being three bytes as it is about one token).

Each batch runs its contexts once (right-padded, padding masked) and continues every choice from the
context's KV cache, so a context is never recomputed per choice. Where padding inside the cache could
shift a sliding attention window (a sequence longer than the model's window), the items of that batch
run one at a time instead, each without context padding.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from polysparse.sparsify.tasks.items import Item, TaskError

log = logging.getLogger("polysparse.sparsify")


@dataclass(frozen=True)
class EncodedItem:
    """Token ids of one item: the context (BOS first) and each choice's continuation tokens."""

    context: tuple[int, ...]
    choices: tuple[tuple[int, ...], ...]
    choice_bytes: tuple[int, ...]


@dataclass(frozen=True)
class ItemScore:
    """Sum of log-probabilities per choice, with the choices' token and byte counts."""

    loglikelihoods: tuple[float, ...]
    tokens: tuple[int, ...]
    choice_bytes: tuple[int, ...]
    label: int

    @property
    def prediction(self) -> int:
        return _argmax(self.loglikelihoods)

    @property
    def prediction_norm(self) -> int:
        return _argmax([ll / max(1, b) for ll, b in zip(self.loglikelihoods, self.choice_bytes)])

    @property
    def correct(self) -> bool:
        return self.prediction == self.label

    @property
    def correct_norm(self) -> bool:
        return self.prediction_norm == self.label


def _argmax(values: Sequence[float]) -> int:
    # First maximum, as numpy.argmax (lm-eval) picks it.
    best = 0
    for i, value in enumerate(values):
        if value > values[best]:
            best = i
    return best


def split_pair(context: str, choice: str) -> tuple[str, str]:
    """Move the context's trailing whitespace to the front of the choice (lm-eval's ``_encode_pair``)."""
    stripped = context.rstrip()
    return stripped, context[len(stripped) :] + choice


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def encode_item(tokenizer, item: Item, max_length: int | None = None) -> EncodedItem:
    """Context and choice tokens of ``item`` under the convention above.

    With ``max_length``, a context too long for its longest choice loses tokens from its start (after
    BOS), as lm-eval keeps the last ``max_length`` tokens.
    """
    bos = getattr(tokenizer, "bos_token_id", None)
    prefix = [int(bos)] if bos is not None else []
    choices = []
    context_ids: list[int] | None = None
    for choice in item.choices:
        context, continuation = split_pair(item.context, choice)
        ids = _ids(tokenizer, context)
        if context_ids is None:
            context_ids = ids
        whole = _ids(tokenizer, context + continuation)
        tail = whole[len(ids) :]
        if not tail:
            raise TaskError(f"item {item.id or '(no id)'}: choice {choice!r} has no tokens past the context")
        choices.append(tuple(tail))
    context_ids = prefix + (context_ids or [])
    if not context_ids:
        raise TaskError(
            f"item {item.id or '(no id)'}: empty context and a tokenizer without BOS: nothing to condition on"
        )
    if max_length is not None:
        room = max_length - max(len(c) for c in choices)
        if room < len(prefix) + 1:
            raise TaskError(f"item {item.id or '(no id)'}: a choice is longer than {max_length} tokens")
        if len(context_ids) > room:
            context_ids = prefix + context_ids[len(context_ids) - room + len(prefix) :]
    return EncodedItem(
        context=tuple(context_ids),
        choices=tuple(choices),
        choice_bytes=tuple(len(c.encode("utf-8")) for c in item.choices),
    )


def reference_loglikelihoods(model: nn.Module, encoded: EncodedItem) -> list[float]:
    """The plain way (one full forward of context + choice per choice, no cache, no padding): the
    definition the batched scorer is tested against."""
    device = model.get_input_embeddings().weight.device
    out = []
    with torch.no_grad():
        for choice in encoded.choices:
            ids = torch.tensor([list(encoded.context) + list(choice)], device=device)
            logprobs = model(input_ids=ids, use_cache=False).logits[0].float().log_softmax(-1)
            start = len(encoded.context)
            positions = torch.arange(start - 1, start - 1 + len(choice), device=device)
            out.append(float(logprobs[positions, ids[0, start:]].double().sum()))
    return out


def _sliding_window(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and not any("sliding" in str(t) for t in layer_types):
        return None
    return int(window) if window else None


def _accepts(model: nn.Module, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _repeat_cache(cache, index: torch.Tensor):
    """The cache with batch rows picked by ``index`` (each context's row once per choice)."""
    if hasattr(cache, "batch_select_indices") and hasattr(cache, "layers"):
        for layer in cache.layers:
            if getattr(layer, "keys", None) is not None and layer.keys.numel():
                layer.keys = layer.keys.index_select(0, index.to(layer.keys.device))
                layer.values = layer.values.index_select(0, index.to(layer.values.device))
        return cache
    if hasattr(cache, "reorder_cache"):
        cache.reorder_cache(index)
        return cache
    if isinstance(cache, tuple):  # legacy tuple of (key, value) per layer
        return tuple(tuple(t.index_select(0, index.to(t.device)) for t in layer) for layer in cache)
    raise TypeError(f"cannot repeat a KV cache of type {type(cache).__name__}")


def _score_batch(model: nn.Module, batch: Sequence[EncodedItem], pad_id: int) -> list[list[float]]:
    device = model.get_input_embeddings().weight.device
    lengths = [len(e.context) for e in batch]
    width = max(lengths)
    context_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    context_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, encoded in enumerate(batch):
        context_ids[row, : lengths[row]] = torch.tensor(encoded.context)
        context_mask[row, : lengths[row]] = 1
    context_ids, context_mask = context_ids.to(device), context_mask.to(device)
    last = torch.tensor(lengths, device=device) - 1
    kwargs = {}
    keep = torch.unique(last)
    if _accepts(model, "logits_to_keep"):
        # Only the logits at each context's last token are needed: the lm_head of a 262k vocabulary
        # costs about as much as the rest of Gemma 3 270M per token.
        kwargs["logits_to_keep"] = keep
    positions = torch.arange(width, device=device).expand(len(batch), width)
    out = model(
        input_ids=context_ids,
        attention_mask=context_mask,
        position_ids=positions,
        use_cache=True,
        **kwargs,
    )
    logits = out.logits
    column = torch.searchsorted(keep, last) if "logits_to_keep" in kwargs else last
    first = logits[torch.arange(len(batch), device=device), column].float().log_softmax(-1)

    owner = [row for row, encoded in enumerate(batch) for _ in encoded.choices]
    choices = [choice for encoded in batch for choice in encoded.choices]
    index = torch.tensor(owner, device=device)
    cache_name = "cache" if _accepts(model, "cache") else "past_key_values"  # renamed in transformers 5.2x
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    cache = _repeat_cache(cache, index)
    longest = max(len(c) for c in choices)
    scores: list[float] = []
    if longest > 1:
        choice_ids = torch.full((len(choices), longest - 1), pad_id, dtype=torch.long)
        choice_mask = torch.zeros((len(choices), longest - 1), dtype=torch.long)
        for row, choice in enumerate(choices):
            # The last token of a choice is only ever a target, never an input.
            choice_ids[row, : len(choice) - 1] = torch.tensor(choice[:-1])
            choice_mask[row, : len(choice) - 1] = 1
        choice_ids, choice_mask = choice_ids.to(device), choice_mask.to(device)
        starts = last.index_select(0, index) + 1
        choice_positions = starts[:, None] + torch.arange(longest - 1, device=device)[None, :]
        mask = torch.cat([context_mask.index_select(0, index), choice_mask], dim=1)
        follow = model(
            input_ids=choice_ids,
            attention_mask=mask,
            position_ids=choice_positions,
            use_cache=True,
            **{cache_name: cache},
        ).logits
    for row, choice in enumerate(choices):
        total = first[owner[row], choice[0]].double()
        if len(choice) > 1:
            logprobs = follow[row, : len(choice) - 1].float().log_softmax(-1)
            targets = torch.tensor(choice[1:], device=device)
            total = total + logprobs.gather(1, targets[:, None]).double().sum()
        scores.append(float(total))
    grouped, start = [], 0
    for encoded in batch:
        grouped.append(scores[start : start + len(encoded.choices)])
        start += len(encoded.choices)
    return grouped


def score_items(
    model: nn.Module,
    tokenizer,
    items: Sequence[Item],
    *,
    batch_size: int = 8,
    max_choice_tokens: int = 512,
    max_length: int | None = None,
    progress: bool = False,
    description: str = "items",
) -> list[ItemScore]:
    """Log-likelihood of every choice of every item, in the items' order.

    ``batch_size`` items share a context pass; a batch also closes when its choice rows times their
    longest choice would exceed ``max_choice_tokens`` (the choice pass's logits hold that many rows of
    the vocabulary: 0.5 GB in float32 for Gemma's 262k at the default).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_length is None:
        max_length = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    encoded = [encode_item(tokenizer, item, max_length) for item in items]
    pad_id = getattr(tokenizer, "pad_token_id", None)
    pad_id = int(pad_id) if pad_id is not None else 0
    window = _sliding_window(model)
    # Similar context lengths together: less padding. Results go back to the items' order.
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i].context), i))
    batches: list[list[int]] = []
    for i in order:
        rows = len(encoded[i].choices)
        longest = max(len(c) for c in encoded[i].choices)
        if batches:
            current = batches[-1]
            all_rows = rows + sum(len(encoded[j].choices) for j in current)
            all_longest = max([longest] + [len(c) for j in current for c in encoded[j].choices])
            if len(current) < batch_size and all_rows * all_longest <= max_choice_tokens:
                current.append(i)
                continue
        batches.append([i])
    results: list[list[float] | None] = [None] * len(encoded)
    model.eval()
    bar = tqdm(total=len(encoded), desc=description, disable=not progress, unit="item")
    with torch.no_grad():
        for members in batches:
            group = [encoded[i] for i in members]
            span = max(len(e.context) for e in group) + max(len(c) for e in group for c in e.choices)
            if window is not None and span > window and len(group) > 1:
                scored = [_score_batch(model, [e], pad_id)[0] for e in group]
            else:
                scored = _score_batch(model, group, pad_id)
            for i, values in zip(members, scored):
                results[i] = values
            bar.update(len(members))
    bar.close()
    return [
        ItemScore(
            loglikelihoods=tuple(values),
            tokens=tuple(len(c) for c in e.choices),
            choice_bytes=e.choice_bytes,
            label=item.label,
        )
        for item, e, values in zip(items, encoded, results)
    ]
