"""Options generated from dataclass fields: names, types, choices, defaults and help come from the fields, and
the settings read back from the parsed options equal the dataclasses' own defaults."""

import argparse
from dataclasses import dataclass
from typing import Literal

import pytest

from polysparse.bench.cli import build_parser
from polysparse.bench.options import add_options, from_args
from polysparse.bench.plans import BenchRun, EvalPlan, PruneRun, StudyPlan, StudyRun, ThroughputPlan
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.settings import setting


@dataclass(frozen=True)
class Toy:
    name: str = setting(help="required: no default")
    kind: Literal["a", "b"] = setting("a", help="one of two")
    count: int = setting(3, help="how many (default %(default)s)")
    ratio: float | None = setting(None)
    tags: tuple[str, ...] = setting((), metavar="TAG", help="repeatable")
    langs: tuple[str, ...] = setting(("en", "de"), separator=",", help="joined by commas")
    sizes: tuple[int, ...] = setting((1, 8), flag="--size", separator=",")
    plot: bool = setting(True, help="no plot")
    verbose: bool = setting(False)
    hidden: int = setting(7, option=False)


def toy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toy", exit_on_error=False)
    add_options(parser, Toy)
    return parser


def test_fields_become_options_of_their_type_choices_and_defaults():
    args = toy_parser().parse_args(["--name", "x"])
    assert vars(args) == {
        "name": "x", "kind": "a", "count": 3, "ratio": None, "tags": [], "langs": "en,de", "sizes": "1,8",
        "plot": True, "verbose": False,
    }  # fmt: skip
    args = toy_parser().parse_args(
        ["--name", "x", "--kind", "b", "--count", "5", "--ratio", "0.5", "--tags", "p", "--tags", "q"]
        + ["--langs", "ja", "--size", "4", "--no-plot", "--verbose"]
    )
    toy = from_args(Toy, args)
    assert toy == Toy("x", "b", 5, 0.5, ("p", "q"), "ja", "4", False, True, 7)
    assert isinstance(toy.count, int) and isinstance(toy.ratio, float)


@pytest.mark.parametrize(
    "argv", [["--kind", "a"], ["--name", "x", "--kind", "c"], ["--name", "x", "--count", "two"]]
)
def test_a_missing_or_bad_value_is_refused_by_the_parser(argv):
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        toy_parser().parse_args(argv)


def test_help_comes_from_the_field_declaration():
    text = toy_parser().format_help()
    assert "how many (default 3)" in text and "--no-plot" in text and "no plot" in text
    assert "--size" in text and "--sizes" not in text and "--hidden" not in text and "{a,b}" in text


PRUNE, STUDY = ["--model", "m", "--out", "o", "--pattern", "2:4"], ["--model", "m", "--langs", "en,de"]


@pytest.mark.parametrize(
    "argv, settings",
    [
        (["prune", *PRUNE], [PruneRun("m", "o"), PruneConfig(pattern="2:4")]),
        (["eval", "--model", "m"], [EvalPlan("m")]),
        (["study", *STUDY, "--out", "o"], [StudyPlan("m", ("en", "de")), StudyRun("o")]),
        (["bench", "--model", "m"], [BenchRun("m"), ThroughputPlan()]),
    ],
)
def test_each_commands_defaults_are_the_settings_defaults(argv, settings):
    """What the command line hands a job without flags is what the dataclasses give a Python caller."""
    args = build_parser().parse_args(argv)
    assert [from_args(type(s), args) for s in settings] == settings


def test_every_prune_setting_is_a_prune_option():
    parser = build_parser()
    prune = parser._subparsers._group_actions[0].choices["prune"]
    dests = {action.dest for action in prune._actions}
    assert {f for f in PruneConfig.__dataclass_fields__} <= dests
    assert {f for f in PruneRun.__dataclass_fields__} <= dests
