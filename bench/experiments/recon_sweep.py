"""Cheap tuning of block-wise reconstruction on one decoder block of a real model (issue 11).

A full reconstruction run of Gemma 3 270M costs 20-35 min on the shared 2-core CPU, too much to sweep the
learning rate and the number of steps over full runs. This sweep works on one block instead: the model is
cut after block ``--block``, the blocks before it are pruned with ``--recipe`` (no reconstruction, so the
block sees a pruned prefix, as it does in a real run), block ``--block`` is pruned the same way, and then
reconstructed with every ``--lr`` x ``--steps`` setting in turn, from the same pruned weights, towards the
dense model's output of that block. Each setting is scored on **held-out** windows (the study's evaluation
text, never seen in training): the block output error relative to the error before reconstruction, for
the target it was trained on (``dense``: the dense model's own output; ``prefix``: the dense block on the
pruned prefix's inputs). The calibration windows are the study's (same source, count, length, seed).

    python -P -m polysparse.bench.experiments.recon_sweep --block 3 --recipe "wanda 2:4" \\
        --lr 1e-4,3e-4,1e-3 --steps 32 \\
        --out bench/results/recovery/gemma-3-270m --name recon_sweep_b3
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import time
from pathlib import Path
from typing import Any

import torch

from polysparse.bench.experiments._protocol import add_window_options
from polysparse.bench.plans import StudyPlan
from polysparse.bench.recipes import Recipe
from polysparse.bench.report import environment, markdown_table, write_json
from polysparse.bench.studies.study import eval_spec, language_spec
from polysparse.sparsify.calibration import TokenWindows, calibration_windows, evaluation_windows
from polysparse.sparsify.driver import prune_model
from polysparse.sparsify.loading import load_causal_lm
from polysparse.sparsify.model_graph import find_decoder_stack
from polysparse.sparsify.reconstruction import ReconstructionSettings, masked_mse, reconstruct_block
from polysparse.sparsify.walk import BlockArguments


class _Stop(Exception):
    pass


def block_inputs(model: torch.nn.Module, index: int, windows: TokenWindows) -> list[tuple[Any, ...]]:
    """Per window: (hidden states, arguments, token mask) with which ``model`` calls block ``index``."""
    block = find_decoder_stack(model).blocks[index]
    seen: list[tuple[Any, ...]] = []

    def hook(module, args, kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k not in ("past_key_values", "past_key_value")}
        if "use_cache" in kwargs:
            kwargs["use_cache"] = False
        hidden = args[0] if args else kwargs.pop("hidden_states")
        seen.append((hidden.detach(), BlockArguments(tuple(args[1:]), kwargs)))
        raise _Stop

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            for input_ids, mask in windows.batches(1):
                with contextlib.suppress(_Stop):
                    model(input_ids=input_ids, attention_mask=mask, use_cache=False)
                seen[-1] = (*seen[-1], mask.bool())
    finally:
        handle.remove()
    return seen


def block_outputs(block: torch.nn.Module, inputs: list[tuple[Any, ...]]) -> list[torch.Tensor]:
    outputs = []
    with torch.no_grad():
        for hidden, arguments, _ in inputs:
            out = block(hidden, *arguments.args, **arguments.kwargs)
            outputs.append(out[0] if isinstance(out, tuple) else out)
    return outputs


def held_out_error(
    block: torch.nn.Module, inputs: list[tuple[Any, ...]], targets: list[torch.Tensor]
) -> float:
    outputs = block_outputs(block, inputs)
    errors = [masked_mse(o, t, m).item() for o, t, (_, _, m) in zip(outputs, targets, inputs)]
    return sum(errors) / len(errors)


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    from polysparse.bench.assets import resolve_model

    plan = StudyPlan(model=args.model, langs=(args.lang,), nsamples=args.nsamples, seqlen=args.seqlen)
    dense, tokenizer = load_causal_lm(resolve_model(args.model), "auto")
    calib_spec = language_spec(plan.calib_source, args.lang)
    calib = calibration_windows(calib_spec, tokenizer, args.nsamples, args.seqlen, 0)
    held_spec = eval_spec(plan, args.lang)[0]
    held = evaluation_windows(held_spec, tokenizer, args.eval_windows, args.eval_seqlen, 0)
    blocks = find_decoder_stack(dense).blocks
    del blocks[args.block + 1 :]  # nothing after the studied block is needed
    pruned = copy.deepcopy(dense)
    recipe = Recipe.parse(args.recipe)
    config = recipe.config(args.nsamples, args.seqlen, 0)
    load_before, started = os.getloadavg()[0], time.perf_counter()
    prune_model(pruned, config, calib, progress=False)
    prune_seconds = time.perf_counter() - started
    block = find_decoder_stack(pruned).blocks[args.block]
    dense_block = find_decoder_stack(dense).blocks[args.block]
    layers = {m: m.weight.detach() != 0 for m in block.modules() if isinstance(m, torch.nn.Linear)}
    start_state = copy.deepcopy(block.state_dict())

    data: dict[str, dict[str, Any]] = {}
    for name, windows in (("calib", calib), ("held", held)):
        student = block_inputs(pruned, args.block, windows)
        teacher = block_inputs(dense, args.block, windows)
        data[name] = {
            "inputs": student,
            "dense": block_outputs(dense_block, teacher),
            "prefix": block_outputs(dense_block, student),
        }
    before = {t: held_out_error(block, data["held"]["inputs"], data["held"][t]) for t in ("dense", "prefix")}
    rows = []
    for target in args.targets.split(","):
        for steps in (int(s) for s in args.steps.split(",")):
            for lr in (float(x) for x in args.lr.split(",")):
                block.load_state_dict(start_state)
                calib_inputs = data["calib"]["inputs"]
                result = reconstruct_block(
                    block,
                    [h for h, _, _ in calib_inputs],
                    [a for _, a, _ in calib_inputs],
                    [m for _, _, m in calib_inputs],
                    data["calib"][target],
                    dict(layers),
                    ReconstructionSettings(steps, lr, seed=0),
                )
                after = {t: held_out_error(block, data["held"]["inputs"], data["held"][t]) for t in before}
                row = {
                    "target": target,
                    "steps": steps,
                    "lr": lr,
                    "seconds": result["seconds"],
                    "calib_error_before": result["error_before"],
                    "calib_error_after": result["error_after"],
                    "held_error_after": after,
                    "held_relative": {t: after[t] / before[t] for t in before},
                    "load_average": os.getloadavg()[0],
                }
                rows.append(row)
                relative = {t: round(v, 4) for t, v in row["held_relative"].items()}
                print(target, steps, lr, relative, flush=True)
    payload = {
        "plan": {
            "model": args.model,
            "block": args.block,
            "recipe": recipe.text,
            "calib": str(calib_spec),
            "nsamples": args.nsamples,
            "seqlen": args.seqlen,
            "held_out": str(held_spec),
            "eval_windows": args.eval_windows,
            "eval_seqlen": args.eval_seqlen,
        },
        "prune_seconds": prune_seconds,
        "load_average_before": load_before,
        "held_error_before": before,
        "rows": rows,
        "environment": environment(),
    }
    out = Path(args.out)  # write_json makes the folder
    write_json(out / f"{args.name}.json", payload)
    (out / f"{args.name}.md").write_text(markdown(payload), encoding="utf-8")
    return payload


def markdown(payload: dict[str, Any]) -> str:
    plan = payload["plan"]
    note = (
        f"Block {plan['block']} of `{plan['model']}` after `{plan['recipe']}` (blocks before it pruned the "
        f"same way, no reconstruction), reconstructed on {plan['nsamples']} x {plan['seqlen']} tokens of "
        f"`{plan['calib']}`; error on {plan['eval_windows']} held-out windows x {plan['eval_seqlen']} tokens "
        f"of `{plan['held_out']}`, relative to the error before reconstruction (lower is better; "
        f"before: dense {payload['held_error_before']['dense']:.4g}, prefix "
        f"{payload['held_error_before']['prefix']:.4g}). Trained towards `target`; scored against both."
    )
    headers = ["target", "steps", "lr", "held-out vs dense", "held-out vs prefix", "s", "load"]
    body = [
        [
            r["target"],
            r["steps"],
            f"{r['lr']:g}",
            f"{r['held_relative']['dense']:.3f}",
            f"{r['held_relative']['prefix']:.3f}",
            f"{r['seconds']:.0f}",
            f"{r['load_average']:.1f}",
        ]
        for r in payload["rows"]
    ]
    return note + "\n\n" + markdown_table(headers, body) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m polysparse.bench.experiments.recon_sweep", description=__doc__
    )
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--block", type=int, required=True)
    parser.add_argument("--recipe", default="wanda 2:4", help="how the prefix and the block are pruned")
    parser.add_argument("--lang", default="de")
    parser.add_argument("--lr", default="1e-4,3e-4,1e-3")
    parser.add_argument("--steps", default="32")
    parser.add_argument("--targets", default="dense", help="comma-separated: dense, prefix")
    add_window_options(parser)
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", default="recon_sweep")
    sweep(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
