"""What the four subpackages share at import: the refusal of a bare top-level import, and package-level
names imported on first use (importing a package stays cheap: no torch until a name that needs it is used)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]) -> tuple[list[str], Callable[[str], Any]]:
    """``__all__`` and a module ``__getattr__`` for ``package``: ``exports`` maps each submodule to the public
    names it defines (``{"driver": ("prune_model",)}``: ``package.prune_model`` is ``package.driver``'s)."""
    home = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in home:
            return getattr(import_module(f"{package}.{home[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return sorted(home), __getattr__


def refuse_bare_import(name: str) -> None:
    """Refuse a folder imported as the bare top-level package ``name`` (the repository root on ``sys.path``):
    it would shadow the PyPI package of the same name that transformers imports."""
    raise ImportError(
        f"{name}/ of the polysparse repository was imported as the top-level package {name!r}: the "
        "repository root is on sys.path (python -m/-c started there); use -P, another folder or `polysparse`"
    )
