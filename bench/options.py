"""Command-line options generated from the settings' dataclass fields, and the settings read back from them.

Each field declared with :func:`polysparse.sparsify.settings.setting` becomes one option: its flag from the
field's name (or the ``flag`` it declares), its type and choices from the annotation (``int``, ``float``,
``str``, ``Literal[...]``, optional or not; a ``tuple[str, ...]`` repeats unless it declares a ``separator``),
its default and help from the declaration. Torch-free: the command line parses without importing torch.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, Field, fields
from typing import Any, Literal


def option_fields(settings: type) -> list[Field]:
    """The fields of the dataclass ``settings`` that are command-line options."""
    return [f for f in fields(settings) if f.metadata.get("option", True)]


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    settings: type,
    *,
    skip: tuple[str, ...] = (),
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add one option per field of the dataclass ``settings`` (not those named in ``skip``); ``defaults``
    replaces a field's default for this parser only (a command with other defaults than the library's)."""
    hints = typing.get_type_hints(settings)
    for field in option_fields(settings):
        if field.name in skip:
            continue
        default = (defaults or {}).get(field.name, field.default)
        names, kwargs = _argument(field, hints[field.name], default)
        parser.add_argument(*names, **kwargs)


def from_args(settings: type, args: argparse.Namespace, **extra: Any) -> Any:
    """An instance of the dataclass ``settings`` from the parsed options that are its fields (repeated options
    as tuples), plus ``extra``; its own checks run as for any other caller."""
    values = {f.name: getattr(args, f.name) for f in option_fields(settings) if hasattr(args, f.name)}
    values = {name: tuple(v) if isinstance(v, list) else v for name, v in values.items()}
    return settings(**values, **extra)


def _argument(field: Field, hint: Any, default: Any) -> tuple[list[str], dict[str, Any]]:
    meta = field.metadata
    kind = _unwrap_optional(hint)
    kwargs: dict[str, Any] = {"help": meta.get("help")}
    if meta.get("metavar"):
        kwargs["metavar"] = meta["metavar"]
    required = default is MISSING
    flag = meta.get("flag") or "--" + field.name.replace("_", "-")
    if kind is bool:
        if default is True:  # a setting that is on unless the user turns it off
            flag = meta.get("flag") or "--no-" + field.name.replace("_", "-")
            return [flag], {**kwargs, "action": "store_false", "dest": field.name}
        return [flag], {**kwargs, "action": "store_true", "dest": field.name}
    separator = meta.get("separator")
    if typing.get_origin(kind) is tuple and separator is None:
        kwargs.update(action="append", default=[] if required else list(default), type=str)
        return [flag], {**kwargs, "dest": field.name}
    if typing.get_origin(kind) is Literal:
        kwargs["choices"] = typing.get_args(kind)
    elif meta.get("choices") is not None:
        kwargs["choices"] = meta["choices"]
    kwargs["type"] = kind if kind in (int, float) else str
    if separator is not None and isinstance(default, tuple):
        default = separator.join(str(value) for value in default)  # shown by %(default)s as typed
    if meta.get("positional"):
        return [field.name], kwargs
    if required:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
    return [flag], {**kwargs, "dest": field.name}


def _unwrap_optional(hint: Any) -> Any:
    """``int | None`` -> ``int``; any other annotation as it is."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(hint) if member is not type(None)]
        if len(members) == 1:
            return members[0]
    return hint
