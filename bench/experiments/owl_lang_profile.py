"""OWL against language-aware OWL on a calibration mix: the per-block outlier ratios and sparsities.

Only the profile passes run (one forward of every dense block over the windows per profile; nothing is
pruned): the plain OWL profile on the mixed tokens, then ``owl-lang``'s ratio per calibration language and
their maximum. The windows are the recovery bench's and the study's mix row (``--nsamples`` windows of
``--seqlen`` tokens, equal shares of ``--langs`` of the calibration source).

    OMP_NUM_THREADS=1 python -P -m polysparse.bench.experiments.owl_lang_profile \\
        --out bench/results/recovery/gemma-3-270m
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from polysparse.bench.assets import resolve_model
from polysparse.bench.report import environment, markdown_table, write_json
from polysparse.bench.studies.study import mix_spec
from polysparse.sparsify.calibration import calibration_windows
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.loading import load_causal_lm
from polysparse.sparsify.profiles import owl_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m polysparse.bench.experiments.owl_lang_profile", description=__doc__
    )
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--langs", default="en,de,ru,zh,ja,ar")
    parser.add_argument("--source", default="handbook")
    parser.add_argument("--nsamples", type=int, default=16)
    parser.add_argument("--seqlen", type=int, default=512)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    spec = mix_spec(args.source, args.langs.split(","))
    model, tokenizer = load_causal_lm(resolve_model(args.model), "auto")
    windows = calibration_windows(spec, tokenizer, args.nsamples, args.seqlen, 0)
    load_before = os.getloadavg()[0]
    profiles, seconds = {}, {}
    for name in ("owl", "owl-lang"):
        config = PruneConfig(
            method="wanda",
            sparsity=args.sparsity,
            nsamples=args.nsamples,
            seqlen=args.seqlen,
            sparsity_profile=name,
        )
        started = time.perf_counter()
        profiles[name] = owl_profile(model, config, windows, progress=False)
        seconds[name] = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    plain, lang = profiles["owl"], profiles["owl-lang"]
    by_language = lang["outlier_ratio_by_language"]
    names = list(by_language)
    rows = []
    for block, mixed in enumerate(plain["outlier_ratio"]):
        per = [by_language[name][block] for name in names]
        top = names[max(range(len(per)), key=per.__getitem__)]
        rows.append(
            [
                str(block),
                *[f"{100 * value:.2f}" for value in per],
                f"{100 * mixed:.2f}",
                f"{100 * lang['outlier_ratio'][block]:.2f} ({top})",
                f"{plain['block_sparsity'][block]:.3f}",
                f"{lang['block_sparsity'][block]:.3f}",
            ]
        )
    command = "OMP_NUM_THREADS=1 python -P -m polysparse.bench.experiments.owl_lang_profile " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    payload = {
        "command": command,
        "calibration": windows.summary() | {"spec": spec, "windows_by_language": lang["windows_by_language"]},
        "profiles": profiles,
        "seconds": seconds,
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "environment": environment(),
    }
    out = Path(args.out)  # write_json makes the folder
    write_json(out / "owl_lang_profile.json", payload)
    headers = ["block", *[f"{name} %" for name in names], "mixed %", "max % (language)", "owl", "owl-lang"]
    differences = [abs(a - b) for a, b in zip(plain["block_sparsity"], lang["block_sparsity"])]
    largest, mean = max(differences), sum(differences) / len(differences)
    note = (
        f"`{Path(args.model).name}`, {args.nsamples} windows x {args.seqlen} tokens of `{spec}`: outlier "
        f"ratio (% of a block's Wanda scores above M={plain['m']:g} x their mean) per calibration language, "
        "on the mixed tokens (plain OWL) and the maximum (owl-lang), and the block sparsities both give "
        f"at target {args.sparsity} (lambda {plain['lambda']:g}). Sparsity difference largest {largest:.3f}, "
        f"mean {mean:.3f}. Profile passes {seconds['owl']:.0f} s (owl) and {seconds['owl-lang']:.0f} s "
        f"(owl-lang) on {torch.get_num_threads()} torch thread(s), load average {load_before:.1f} before, "
        f"{load_after:.1f} after.\n\n`{command}`\n\n"
    )
    (out / "owl_lang_profile.md").write_text(note + markdown_table(headers, rows) + "\n", encoding="utf-8")
    print(note + markdown_table(headers, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
