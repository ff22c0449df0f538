"""The OpenAI request bodies ``polysparse serve`` answers, checked and parsed into frozen dataclasses (pure).

``/v1/completions`` takes one ``prompt`` string, ``/v1/chat/completions`` a list of text ``messages``.
Fields a client sends that change nothing here (``user``, ``metadata``...) are ignored; fields that would
change the answer in ways this server does not implement (several choices, log-probabilities, penalties,
tools) are refused with a :class:`RequestError`, never silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

COMPLETION_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
CHAT_MAX_TOKENS = 256  # OpenAI's chat default is "up to the context"; a bounded default keeps a call finite
MAX_STOP_SEQUENCES = 4
CHAT_ROLES = ("system", "developer", "user", "assistant")


class RequestError(ValueError):
    """A request the server answers with an HTTP error (``status``) and an OpenAI error body."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": str(self), "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Sampling:
    """How to pick the tokens: greedy when ``temperature`` is 0."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    prompt: str
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Mapping[str, str], ...]
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False


# Fields whose non-default values this server cannot honour, with the value that means "off".
_UNSUPPORTED = {
    "n": 1,
    "best_of": 1,
    "echo": False,
    "logprobs": None,
    "top_logprobs": None,
    "suffix": None,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logit_bias": None,
    "tools": None,
    "functions": None,
    "response_format": None,
}


def _number(body: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RequestError(f"{name} must be a number, got {value!r}", param=name)
    if not low <= value <= high:
        raise RequestError(f"{name} must be between {low} and {high}, got {value}", param=name)
    return float(value)


def _integer(body: Mapping[str, Any], name: str, default: int | None, low: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be an integer, got {value!r}", param=name)
    if value < low:
        raise RequestError(f"{name} must be at least {low}, got {value}", param=name)
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if (
        not isinstance(stops, list)
        or not all(isinstance(s, str) and s for s in stops)
        or len(stops) > MAX_STOP_SEQUENCES
    ):
        raise RequestError(
            f"stop must be a non-empty string or a list of at most {MAX_STOP_SEQUENCES} of them",
            param="stop",
        )
    return tuple(stops)


def _common(body: Any, served_model: str) -> tuple[str, bool, bool]:
    if not isinstance(body, Mapping):
        raise RequestError("the request body must be a JSON object")
    for name, off in _UNSUPPORTED.items():
        value = body.get(name)
        if value is not None and value != off:
            raise RequestError(f"{name}={value!r} is not supported by polysparse serve", param=name)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model is required: the name of the served model", param="model")
    if model != served_model:
        raise RequestError(
            f"the model {model!r} is not served here; this server serves {served_model!r}",
            status=404,
            param="model",
            code="model_not_found",
        )
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise RequestError("stream must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, Mapping):
        raise RequestError("stream_options must be an object", param="stream_options")
    return model, stream, bool(options.get("include_usage", False))


def _sampling(body: Mapping[str, Any], max_tokens: int) -> Sampling:
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
    if top_p == 0.0:
        raise RequestError(
            "top_p must be greater than 0 (use temperature 0 for greedy decoding)", param="top_p"
        )
    return Sampling(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=top_p,
        seed=_integer(body, "seed", None, 0),
        stop=_stop(body.get("stop")),
    )


def parse_completion(body: Any, served_model: str) -> CompletionRequest:
    """A ``/v1/completions`` body; raises :class:`RequestError`."""
    model, stream, include_usage = _common(body, served_model)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise RequestError(
            "prompt must be one string (token ids and batches are not supported)", param="prompt"
        )
    max_tokens = _integer(body, "max_tokens", COMPLETION_MAX_TOKENS, 1)
    return CompletionRequest(model, prompt, _sampling(body, max_tokens), stream, include_usage)


def _message(item: Any, index: int) -> dict[str, str]:
    where = f"messages[{index}]"
    if not isinstance(item, Mapping):
        raise RequestError(f"{where} must be an object with a role and a content", param=where)
    role, content = item.get("role"), item.get("content")
    if role not in CHAT_ROLES:
        raise RequestError(f"{where}.role must be one of {', '.join(CHAT_ROLES)}, got {role!r}", param=where)
    if isinstance(content, list):  # content parts: text only
        if not all(isinstance(part, Mapping) and part.get("type") == "text" for part in content):
            raise RequestError(f"{where}.content: only text parts are supported", param=where)
        content = "".join(str(part.get("text", "")) for part in content)
    if not isinstance(content, str):
        raise RequestError(f"{where}.content must be a string", param=where)
    return {"role": "system" if role == "developer" else role, "content": content}


def parse_chat(body: Any, served_model: str) -> ChatRequest:
    """A ``/v1/chat/completions`` body; raises :class:`RequestError`."""
    model, stream, include_usage = _common(body, served_model)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list", param="messages")
    parsed = tuple(_message(item, index) for index, item in enumerate(messages))
    max_tokens = _integer(body, "max_completion_tokens", None, 1)
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens", CHAT_MAX_TOKENS, 1)
    return ChatRequest(model, parsed, _sampling(body, max_tokens), stream, include_usage)
