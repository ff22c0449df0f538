"""Package-level names imported on first use, so that importing a package stays cheap (no torch until a
name that needs it is used)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[list[str], Callable[[str], Any]]:
    """``__all__`` and a module ``__getattr__`` for ``package``: ``exports`` maps each public name to the
    submodule that defines it (``{"prune_model": "driver"}`` -> ``package.driver.prune_model``)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return sorted(exports), __getattr__
