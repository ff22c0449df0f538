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
context's KV cache, so a context is never recomputed per choice. The choices continue in groups of similar
length (less padding), and the output layer runs only at the positions scored: the context's last token and
the choices' tokens, never padding (on Gemma 3 270M that layer costs more than the rest of the model per
token; on the CPU it runs in slabs of the vocabulary, :data:`HEAD_SLAB_ROWS`). Where padding inside the cache
could shift a sliding attention window (a sequence longer than the model's window), the items of that batch
run one at a time instead, each without context padding.
"""

from __future__ import annotations

import copy
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


PASS_COST_TOKENS = 16
"""What one more choice pass costs, in padded tokens of one row: the choice rows of a batch run in groups
of similar length (:func:`length_groups`), and each group is one more forward pass, one more streaming of
the output layer's weights (671 MB for Gemma 3's 262k vocabulary in float32) and one more copy of the
context cache."""


def length_groups(lengths: Sequence[int], pass_cost: int = PASS_COST_TOKENS) -> list[list[int]]:
    """Rows (indices into ``lengths``) in groups that minimise padded tokens plus ``pass_cost`` per group.

    Each group is padded to its longest row, so rows are sorted by length and cut into runs by dynamic
    programming (pure; rows of length 0 need no pass and are left out)."""
    order = sorted((i for i, n in enumerate(lengths) if n > 0), key=lambda i: (lengths[i], i))
    best = [0.0] + [float("inf")] * len(order)  # best[j]: cost of the first j sorted rows
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        longest = lengths[order[j - 1]]
        for i in range(j):
            cost = best[i] + (j - i) * longest + pass_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], len(order)
    while j > 0:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


HEAD_SLAB_ROWS = 1024
"""On the CPU, a plain ``nn.Linear`` output layer runs as one matrix product per slab of this many vocabulary
rows, written into one logits tensor: the same dot products, and on real items the same bits. Measured on
Gemma 3 270M's 262k x 640 layer, one thread, beside two other busy processes on two cores
(``bench/results/tasks/scorer-head-slabs.json``): the scorer's CPU time -15% on translation-choice items,
-7% on continuation-choice; the product alone at 16 / 48 / 120 / 300 input rows 25 / 43 / 57 / 60 GFLOP/s in
one call, 42 / 56 / 54 / 64 in slabs of 1024 (2048 and 4096 no better): the scorer's passes are mostly
narrow, where one call loses most."""


def slab_linear(hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``hidden @ weight.T`` (a bias-free ``nn.Linear``), computed slab by slab of ``weight``'s rows."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    out = torch.empty(flat.shape[0], weight.shape[0], dtype=flat.dtype, device=flat.device)
    for start in range(0, weight.shape[0], HEAD_SLAB_ROWS):
        stop = start + HEAD_SLAB_ROWS
        torch.mm(flat, weight[start:stop].t(), out=out[:, start:stop])
    return out.reshape(*hidden.shape[:-1], weight.shape[0])


class _KeepPositions:
    """Runs the output layer only on the hidden states at chosen (row, position) pairs.

    A pre-hook on the model's output embeddings replaces its ``[batch, length, hidden]`` input with the
    ``[1, n, hidden]`` states picked, so the 262k-wide layer (and any elementwise post-processing the model
    applies, such as Gemma's logit soft-capping) runs on exactly the positions scored, never on padding.
    A plain bias-free ``nn.Linear`` layer on the CPU also runs in slabs (:data:`HEAD_SLAB_ROWS`) while the
    context is open; its own ``forward`` comes back on exit.
    """

    def __init__(self, model: nn.Module, rows: torch.Tensor, positions: torch.Tensor):
        self.head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        self.rows, self.positions = rows, positions
        self.handle = None
        self.slabs = (
            type(self.head) is nn.Linear
            and self.head.bias is None
            and self.head.weight.device.type == "cpu"
            and "forward" not in vars(self.head)
        )

    def _pick(self, module, args):
        hidden = args[0]
        return (hidden[self.rows, self.positions].unsqueeze(0), *args[1:])

    def _slab_forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return slab_linear(hidden, self.head.weight)

    def __enter__(self) -> _KeepPositions:
        if self.head is not None:
            self.handle = self.head.register_forward_pre_hook(self._pick)
            if self.slabs:
                self.head.forward = self._slab_forward
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.remove()
            if self.slabs:
                del self.head.forward

    def logits(self, output) -> torch.Tensor:
        """``[n, vocab]`` logits at the chosen positions from the model's output."""
        if self.handle is None:  # no output embeddings to hook: the model computed every position
            return output.logits[self.rows, self.positions]
        if output.logits.shape[:2] != (1, self.rows.numel()):
            raise RuntimeError(
                f"the output layer returned logits of shape {tuple(output.logits.shape)} for "
                f"{self.rows.numel()} picked positions: the model reshapes its output after the output layer"
            )
        return output.logits[0]


def _target_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[target]`` per row, in float32 (PyTorch's fused log-softmax: on the CPU about
    a quarter faster than ``logits[target] - logsumexp(logits)``, which takes more passes over the rows)."""
    return logits.float().log_softmax(-1).gather(1, targets[:, None])[:, 0]


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
    positions = torch.arange(width, device=device).expand(len(batch), width)
    # Only the logits at each context's last token are needed: the lm_head of a 262k vocabulary costs
    # about as much as the rest of Gemma 3 270M per token.
    keep = _KeepPositions(model, torch.arange(len(batch), device=device), last)
    with keep:
        out = model(
            input_ids=context_ids, attention_mask=context_mask, position_ids=positions, use_cache=True
        )
    first = keep.logits(out).float().log_softmax(-1)

    owner = [row for row, encoded in enumerate(batch) for _ in encoded.choices]
    choices = [choice for encoded in batch for choice in encoded.choices]
    cache_name = "cache" if _accepts(model, "cache") else "past_key_values"  # renamed in transformers 5.2x
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    totals = [first[owner[row], choice[0]].double() for row, choice in enumerate(choices)]
    # The last token of a choice is only ever a target, never an input: a choice of n tokens feeds n - 1.
    groups = length_groups([len(c) - 1 for c in choices])
    for number, group in enumerate(groups):
        longest = max(len(choices[row]) for row in group) - 1
        index = torch.tensor([owner[row] for row in group], device=device)
        # Every pass extends its own copy of the context cache (the last one may take the original).
        group_cache = _repeat_cache(cache if number == len(groups) - 1 else copy.deepcopy(cache), index)
        choice_ids = torch.full((len(group), longest), pad_id, dtype=torch.long)
        choice_mask = torch.zeros((len(group), longest), dtype=torch.long)
        rows, columns, targets = [], [], []
        for i, row in enumerate(group):
            choice = choices[row]
            choice_ids[i, : len(choice) - 1] = torch.tensor(choice[:-1])
            choice_mask[i, : len(choice) - 1] = 1
            rows += [i] * (len(choice) - 1)
            columns += range(len(choice) - 1)
            targets += choice[1:]
        choice_ids, choice_mask = choice_ids.to(device), choice_mask.to(device)
        starts = last.index_select(0, index) + 1
        choice_positions = starts[:, None] + torch.arange(longest, device=device)[None, :]
        mask = torch.cat([context_mask.index_select(0, index), choice_mask], dim=1)
        keep = _KeepPositions(model, torch.tensor(rows, device=device), torch.tensor(columns, device=device))
        with keep:
            follow = model(
                input_ids=choice_ids,
                attention_mask=mask,
                position_ids=choice_positions,
                use_cache=True,
                **{cache_name: group_cache},
            )
        logprobs = _target_logprobs(keep.logits(follow), torch.tensor(targets, device=device)).double()
        sums = torch.zeros(len(group), dtype=torch.float64, device=device)
        sums.index_add_(0, torch.tensor(rows, device=device), logprobs)
        for i, row in enumerate(group):
            totals[row] = totals[row] + sums[i]
    scores = [float(total) for total in totals]
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
