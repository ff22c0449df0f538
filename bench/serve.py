"""``polysparse serve``: a compressed 2:4 folder (or any causal LM folder) behind an OpenAI-compatible API.

The server is :mod:`polysparse.runtime.serving`; this job loads the folder, says which backend the sparse
layers run, listens until Ctrl+C or SIGTERM, and stops cleanly (exit status 0).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from polysparse.bench.plans import ServeRun, plan_default
from polysparse.bench.report import say
from polysparse.sparsify.config import ConfigError


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM (a service manager's stop) ends the server the way Ctrl+C does."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve_job(
    *,
    model: str,
    host: str = plan_default(ServeRun, "host"),
    port: int = plan_default(ServeRun, "port"),
    device: str | None = None,
    dtype: str = "auto",
    quiet: bool = False,
) -> None:
    """Serve ``model`` (a folder) at ``http://host:port/v1`` until interrupted."""
    from polysparse.runtime.serving import OpenAIServer, load_served_model

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    served = load_served_model(model, device=device, dtype=dtype)
    try:
        server = OpenAIServer(served, host=host, port=port)
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error}") from None
    for line in served.describe():
        say(line, quiet)
    say(f"serving {served.name!r} at {server.url} (Ctrl+C stops)", quiet)
    with _sigterm_stops(), suppress(KeyboardInterrupt):
        server.serve_forever()
    say(f"stopped serving {served.name!r}", quiet)
