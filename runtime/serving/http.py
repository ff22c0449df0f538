"""An OpenAI-compatible HTTP server on the standard library (``http.server``), for one served model.

Endpoints: ``POST /v1/completions`` and ``POST /v1/chat/completions`` (whole answers, or server-sent events
with ``stream``), ``GET /v1/models`` (the one model, named by its folder), ``GET /health`` and
``GET /v1/polysparse/backends`` (the backend report, and which backends the sparse layers ran so far).
Errors are OpenAI error bodies: 400 for a bad request, 404 for another model or path, 413 for a body over
:data:`MAX_BODY_BYTES`, 500 (logged with its traceback) for a failure of the server itself. Requests are
answered one generation at a time.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from polysparse.runtime.linear import backend_runs
from polysparse.runtime.serving.generation import Completion
from polysparse.runtime.serving.model import ServedModel
from polysparse.runtime.serving.requests import RequestError, parse_chat, parse_completion
from polysparse.sparsify.strict_json import dumps as strict_dumps

log = logging.getLogger("polysparse.runtime.serving")

MAX_BODY_BYTES = 1 << 20
SOCKET_TIMEOUT_S = 60  # a client that sends nothing for this long is disconnected


def _usage(completion: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


class _Answer:
    """The response objects of one request (ids, timestamps, the two endpoints' shapes)."""

    def __init__(self, model: str, chat: bool) -> None:
        self.model, self.chat = model, chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _envelope(self, choices: list[dict[str, Any]], chunk: bool) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if chunk else "chat.completion") if self.chat else "text_completion"
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def whole(self, completion: Completion) -> dict[str, Any]:
        if self.chat:
            choice = {"message": {"role": "assistant", "content": completion.text}}
        else:
            choice = {"text": completion.text, "logprobs": None}
        body = self._envelope(
            [{"index": 0, **choice, "finish_reason": completion.finish_reason}], chunk=False
        )
        return {**body, "usage": _usage(completion)}

    def chunk(self, text: str | None = None, finish_reason: str | None = None, first: bool = False):
        if self.chat:
            delta = (
                {"role": "assistant", "content": ""} if first else {} if text is None else {"content": text}
            )
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
        return self._envelope([choice], chunk=True)

    def usage_chunk(self, completion: Completion) -> dict[str, Any]:
        return {**self._envelope([], chunk=True), "usage": _usage(completion)}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "polysparse-serve"
    timeout = SOCKET_TIMEOUT_S
    served: ServedModel  # set on the subclass made for each server

    # --- plumbing ---------------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = strict_dumps(body, indent=None).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, error: RequestError) -> None:
        self._send_json(error.status, error.body())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()

    def _event(self, payload: dict[str, Any] | str) -> None:
        text = payload if isinstance(payload, str) else strict_dumps(payload, indent=None)
        self._chunk(f"data: {text}\n\n".encode())

    def _read_body(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise RequestError("the request needs a Content-Length header and a JSON body")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            raise RequestError(f"the body is larger than {MAX_BODY_BYTES} bytes", status=413)
        raw = self.rfile.read(int(length))
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RequestError(f"the body is not valid JSON: {error}") from None

    def _guarded(self, work: Callable[[], None]) -> None:
        try:
            work()
        except RequestError as error:
            self._send_error(error)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:
            log.exception("serving %s %s failed", self.command, self.path)
            self._send_error(RequestError(f"{type(error).__name__}: {error}", status=500))

    # --- endpoints --------------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._guarded(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._guarded(self._post)

    def _model_card(self) -> dict[str, Any]:
        return {"id": self.served.name, "object": "model", "created": 0, "owned_by": "polysparse"}

    def _get(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [self._model_card()]})
        elif path == f"/v1/models/{self.served.name}":
            self._send_json(200, self._model_card())
        elif path == "/health":
            self._send_json(200, {"status": "ok", "model": self.served.name})
        elif path == "/v1/polysparse/backends":
            self._send_json(200, {"layers": list(self.served.backends), "runs": backend_runs()})
        else:
            raise RequestError(f"no such endpoint: GET {path}", status=404)

    def _post(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in ("/v1/completions", "/v1/chat/completions"):
            raise RequestError(f"no such endpoint: POST {path}", status=404)
        body = self._read_body()
        generator = self.served.generator
        if path == "/v1/completions":
            request = parse_completion(body, self.served.name)
            inputs, chat = generator.encode_prompt(request.prompt), False
        else:
            request = parse_chat(body, self.served.name)
            inputs, chat = generator.encode_chat(request.messages), True
        answer = _Answer(self.served.name, chat)
        if not request.stream:
            self._send_json(200, answer.whole(generator.complete(inputs, request.sampling)))
            return
        self._stream(answer, generator.stream(inputs, request.sampling), request.include_usage)

    def _stream(self, answer: _Answer, pieces: Iterator[str | Completion], include_usage: bool) -> None:
        first = next(pieces)  # errors found before generating are still an HTTP error status
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if answer.chat:
                self._event(answer.chunk(first=True))
            for piece in _chain(first, pieces):
                if isinstance(piece, Completion):
                    self._event(answer.chunk(finish_reason=piece.finish_reason))
                    if include_usage:
                        self._event(answer.usage_chunk(piece))
                else:
                    self._event(answer.chunk(piece))
            self._event("[DONE]")
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as error:  # the status is sent: the error goes in the stream, as OpenAI's do
            log.exception("streaming %s failed", self.path)
            self._event(RequestError(f"{type(error).__name__}: {error}", status=500).body())
        finally:
            pieces.close()  # stops the generation if the client went away
        self._chunk(b"")


def _chain(first: str | Completion, rest: Iterator[str | Completion]) -> Iterator[str | Completion]:
    yield first
    yield from rest


class OpenAIServer:
    """``served`` over HTTP on ``host:port`` (port 0: any free port; :attr:`url` says which).

    ``serve_forever()`` runs in the calling thread until :meth:`stop` (from another thread) or an
    interrupt; ``start()`` runs it in a background thread. Also a context manager (start / stop)."""

    def __init__(self, served: ServedModel, host: str = "127.0.0.1", port: int = 8000) -> None:
        handler = type("Handler", (_Handler,), {"served": served})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self.httpd.server_close()

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(target=self.serve_forever, name="polysparse-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting requests and close the listening socket (waits for the serving loop to end)."""
        self.httpd.shutdown()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
