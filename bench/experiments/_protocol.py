"""The study protocol's windows, which the recovery experiments share so that their numbers compare with the
study's matrices (``bench/results/study``): 16 calibration windows x 512 tokens, 4 held-out x 256."""

import argparse

WINDOWS = {"--nsamples": 16, "--seqlen": 512, "--eval-windows": 4, "--eval-seqlen": 256}


def add_window_options(parser: argparse.ArgumentParser) -> None:
    """The four window options, with the study protocol's values as defaults."""
    for flag, default in WINDOWS.items():
        parser.add_argument(flag, type=int, default=default)
