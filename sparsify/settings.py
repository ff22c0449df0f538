"""A setting declared once: a dataclass field that carries its help text beside its name, type and default.

The configuration dataclasses (:class:`~polysparse.sparsify.config.PruneConfig`, the plans of the
``polysparse`` commands) declare their fields with :func:`setting`; the library reads the defaults and types
as for any dataclass, and the command line turns the same fields into its options
(:mod:`polysparse.bench.options`), so a flag's name, type, choices, default and help are written once.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, field
from typing import Any


def setting(
    default: Any = MISSING,
    *,
    help: str | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    separator: str | None = None,
    choices: tuple[Any, ...] | None = None,
    positional: bool = False,
    option: bool = True,
    recipe: str | None = None,
) -> Field:
    """A dataclass field whose metadata describes the command-line option it becomes.

    ``help`` may use argparse's ``%(default)s``. ``flag`` replaces the option name derived from the field name
    (``batch_sizes`` -> ``--batch-sizes``); a boolean field that defaults to ``True`` becomes ``--no-<name>``.
    ``separator``: the option takes one string of values joined by it (``"en,de"``), which the dataclass
    splits. ``choices`` where the type is not a ``Literal``. ``option=False``: a setting with no option.
    ``recipe``: the word that sets it in a recipe (``steps`` for ``sparsegpt 2:4 +recon steps=64``).
    """
    metadata = {
        "help": help,
        "flag": flag,
        "metavar": metavar,
        "separator": separator,
        "choices": choices,
        "positional": positional,
        "option": option,
        "recipe": recipe,
    }
    return field(default=default, metadata=metadata)


def split_values(value: Any, separator: str = ",") -> tuple[str, ...]:
    """``"en, de,"`` -> ``("en", "de")``; a sequence of strings -> its stripped, non-empty items."""
    parts = value.split(separator) if isinstance(value, str) else (value or ())
    return tuple(part.strip() for part in parts if part.strip())
