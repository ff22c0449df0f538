"""Answering a parsed request with the model: ``generate`` with the request's sampling, whole or streamed.

Streaming and not give the same text: both decode the generated tokens as one sequence and cut it where a
stop sequence first ends (:func:`first_stop`); a stream emits only text that later tokens cannot change (no
unfinished UTF-8 character, nothing a stop sequence could still claim).
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.generation.stopping_criteria import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from polysparse.runtime.serving.requests import RequestError, Sampling

_UNFINISHED_CHARACTER = "\ufffd"  # what decoding shows for the first bytes of a multi-byte character


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" (end of sequence or a stop sequence) or "length" (max_tokens reached)
    prompt_tokens: int
    completion_tokens: int


def first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Where ``text`` is cut: the start of the stop sequence whose first occurrence ends first (the longest
    of those ending at the same place), or ``None``. A stream and the whole text agree on it."""
    best = None
    for stop in stops:
        start = text.find(stop)
        if start < 0:
            continue
        key = (start + len(stop), start)
        if best is None or key < best:
            best = key
    return None if best is None else best[1]


def stable_length(text: str, stops: Sequence[str]) -> int:
    """How much of a growing ``text`` a stream can emit: not an unfinished character at its end, nor the
    last ``len(longest stop) - 1`` characters, which may be the start of a stop sequence."""
    end = len(text.rstrip(_UNFINISHED_CHARACTER))
    hold = max((len(stop) for stop in stops), default=1) - 1
    return max(0, min(end, len(text) - hold))


class _Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class _TokenQueue(BaseStreamer):
    """Receives generate's new tokens (the prompt, sent first, is skipped) for another thread to decode."""

    def __init__(self) -> None:
        self.tokens: queue.Queue[list[int] | None] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.tokens.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.tokens.put(None)


class Generator:
    """A model and its tokenizer answering one request at a time (``generate`` is not re-entrant)."""

    def __init__(self, model, tokenizer) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.context = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        self.device = next(model.parameters()).device
        self._lock = threading.Lock()

    # --- prompts ----------------------------------------------------------------------------------------

    def encode_prompt(self, prompt: str) -> dict[str, torch.Tensor]:
        return self._checked(self.tokenizer(prompt, return_tensors="pt"))

    def encode_chat(self, messages: Sequence[Mapping[str, str]]) -> dict[str, torch.Tensor]:
        if not getattr(self.tokenizer, "chat_template", None):
            raise RequestError("this model has no chat template: use /v1/completions", param="messages")
        encoded = self.tokenizer.apply_chat_template(
            [dict(message) for message in messages],
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
        )
        return self._checked(encoded)

    def _checked(self, encoded: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if encoded["input_ids"].shape[-1] == 0:
            raise RequestError("the prompt is empty (no tokens)", param="prompt")
        return {
            key: encoded[key].to(self.device) for key in ("input_ids", "attention_mask") if key in encoded
        }

    def _check_length(self, inputs: dict[str, torch.Tensor], sampling: Sampling) -> int:
        length = int(inputs["input_ids"].shape[-1])
        if self.context is not None and length + sampling.max_tokens > self.context:
            raise RequestError(
                f"the prompt's {length} tokens and max_tokens={sampling.max_tokens} exceed the model's "
                f"context of {self.context} tokens",
                param="max_tokens",
            )
        return length

    # --- generation -------------------------------------------------------------------------------------

    def _generation_config(self, sampling: Sampling):
        config = copy.deepcopy(self.model.generation_config)
        overrides: dict[str, Any] = {"max_new_tokens": sampling.max_tokens, "num_beams": 1, "top_k": None}
        if sampling.greedy:
            overrides.update(do_sample=False, temperature=None, top_p=None)
        else:  # the request's distribution: OpenAI has no top_k, so a model default must not narrow it
            overrides.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        if sampling.stop:
            overrides["stop_strings"] = list(sampling.stop)
        if config.pad_token_id is None:
            pad = self.tokenizer.pad_token_id
            overrides["pad_token_id"] = self.tokenizer.eos_token_id if pad is None else pad
        config.update(**overrides)
        return config

    def _generate(self, inputs, sampling: Sampling, **kwargs: Any) -> torch.Tensor:
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        with torch.inference_mode():
            return self.model.generate(
                **inputs,
                generation_config=self._generation_config(sampling),
                tokenizer=self.tokenizer if sampling.stop else None,
                **kwargs,
            )

    def _finish(self, new_tokens: list[int], text: str, sampling: Sampling, prompt_tokens: int) -> Completion:
        cut = first_stop(text, sampling.stop)
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        if cut is not None or (new_tokens and new_tokens[-1] in eos) or len(new_tokens) < sampling.max_tokens:
            reason = "stop"
        else:
            reason = "length"
        return Completion(text if cut is None else text[:cut], reason, prompt_tokens, len(new_tokens))

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def complete(self, inputs: dict[str, torch.Tensor], sampling: Sampling) -> Completion:
        prompt_tokens = self._check_length(inputs, sampling)
        with self._lock:
            output = self._generate(inputs, sampling)
        new_tokens = output[0, prompt_tokens:].tolist()
        return self._finish(new_tokens, self._decode(new_tokens), sampling, prompt_tokens)

    def stream(self, inputs: dict[str, torch.Tensor], sampling: Sampling) -> Iterator[str | Completion]:
        """Text deltas as they become stable, then the :class:`Completion` (whose text they add up to).

        Closing the iterator early (a client that went away) stops the generation."""
        prompt_tokens = self._check_length(inputs, sampling)
        with self._lock:
            cancel, streamer = threading.Event(), _TokenQueue()
            failure: list[BaseException] = []

            def run() -> None:
                try:
                    self._generate(
                        inputs,
                        sampling,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)]),
                    )
                except BaseException as error:  # handed to the consumer, which raises it
                    failure.append(error)
                    streamer.end()

            worker = threading.Thread(target=run, name="polysparse-generate", daemon=True)
            worker.start()
            tokens: list[int] = []
            emitted = 0
            try:
                while (step := streamer.tokens.get()) is not None:
                    tokens += step
                    text = self._decode(tokens)
                    cut = first_stop(text, sampling.stop)
                    end = cut if cut is not None else stable_length(text, sampling.stop)
                    if end > emitted:
                        yield text[emitted:end]
                        emitted = end
                    if cut is not None:
                        cancel.set()
                if failure:
                    raise failure[0]
                completion = self._finish(tokens, self._decode(tokens), sampling, prompt_tokens)
                if len(completion.text) > emitted:
                    yield completion.text[emitted:]
                yield completion
            finally:
                cancel.set()
                worker.join()
