"""``polysparse serve``: an OpenAI-compatible HTTP server for a compressed 2:4 (or any causal LM) folder.

:func:`load_served_model` loads the folder (:mod:`.model`), :class:`OpenAIServer` answers
``/v1/completions`` and ``/v1/chat/completions`` over the standard library's HTTP server (:mod:`.http`),
:mod:`.requests` checks the request bodies and :mod:`.generation` runs ``generate``.
"""

from polysparse.runtime.serving.generation import Completion, Generator
from polysparse.runtime.serving.http import MAX_BODY_BYTES, OpenAIServer
from polysparse.runtime.serving.model import ServedModel, backend_report, load_served_model
from polysparse.runtime.serving.requests import RequestError

__all__ = [
    "MAX_BODY_BYTES",
    "Completion",
    "Generator",
    "OpenAIServer",
    "RequestError",
    "ServedModel",
    "backend_report",
    "load_served_model",
]
