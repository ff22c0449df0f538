"""``polysparse demo``: the main job on the embedded default model, no flags needed (prune for a language,
perplexity dense vs pruned, the sparse runtime checked and timed, both models saved)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from polysparse.bench.assets import DEFAULT_MODEL, resolve_model
from polysparse.bench.jobs import evaluate_specs
from polysparse.bench.plans import DemoRun
from polysparse.bench.report import environment, markdown_table, say, say_speedups, write_json
from polysparse.sparsify.calibration import TokenWindows, calibration_windows, evaluation_windows
from polysparse.sparsify.calibration_spec import CalibrationSpec, SourcePart
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.corpora import SourceSpec
from polysparse.sparsify.driver import prune_model
from polysparse.sparsify.evaluate import perplexity
from polysparse.sparsify.loading import load_causal_lm
from polysparse.sparsify.output import REPORT_FILE, OutputExistsError, save_pruned
from polysparse.sparsify.walk import resolve_device


def demo_job(run: DemoRun, config: PruneConfig) -> dict[str, Any]:
    """The main job on the embedded default: prune for a language, compare perplexity dense vs pruned,
    run the pruned model on 2:4 sparse layers (checked against the pruned dense model), time both, and save
    the pruned model (``out``) and its compressed form (``out/compressed``)."""
    started = time.perf_counter()
    lang, eval_windows, quiet = run.lang, run.eval_windows, run.quiet
    nsamples, seqlen = config.nsamples, config.seqlen
    out_dir = Path(run.out)
    if out_dir.exists() and not (out_dir / REPORT_FILE).exists():
        raise OutputExistsError(f"{out_dir} exists and is not a polysparse output; choose another --out")
    model = run.model or DEFAULT_MODEL
    handbook = SourceSpec.of("handbook", lang)
    calib = CalibrationSpec.of([SourcePart(handbook)])
    eval_specs = [handbook] + ([] if lang == "en" else [SourceSpec.of("handbook", "en")])
    say(f"[1/7] preparing {model} (offline)", quiet)
    model_path = resolve_model(model)
    lm, tokenizer = load_causal_lm(model_path, run.dtype)
    say(f"[2/7] calibration text: {nsamples} windows x {seqlen} tokens from {calib}", quiet)
    windows: TokenWindows = calibration_windows(calib, tokenizer, nsamples, seqlen)
    say(f"[3/7] dense perplexity on held-out text ({eval_windows} windows x {seqlen} tokens)", quiet)
    dense = evaluate_specs(lm, tokenizer, eval_specs, eval_windows, seqlen, 0, quiet)
    steps = (("ADMM update", config.update != "none"), ("reconstruction", config.reconstruct != "none"))
    recipe = f"{config.method} {config.sparsity_label}" + "".join(f" + {step}" for step, on in steps if on)
    say(f"[4/7] pruning with {recipe}, calibrated on {calib}", quiet)
    report = prune_model(lm, config, windows, progress=not quiet)
    pruned = evaluate_specs(lm, tokenizer, eval_specs, eval_windows, seqlen, 0, quiet)
    rows = [
        [d["spec"], d["perplexity"], p["perplexity"], p["perplexity"] / d["perplexity"]]
        for d, p in zip(dense, pruned)
    ]
    table = markdown_table(["held-out text", "dense ppl", f"{recipe} ppl", "ratio"], rows)
    payload = {
        "model": str(model_path),
        **report.to_dict(),
        "calibration": {**calib.to_dict(), **windows.summary()},
        "perplexity": {"dense": dense, "pruned": pruned},
        "environment": environment(),
    }
    runtime = _demo_runtime(
        lm,
        tokenizer,
        spec=eval_specs[0],
        seqlen=seqlen,
        bench={key: getattr(run, f"bench_{key}") for key in ("batch", "prompt", "new_tokens", "repeats")},
        quiet=quiet,
    )
    payload["runtime"] = runtime["summary"]
    say(
        f"[7/7] saving the pruned model to {out_dir} and its compressed form to {out_dir / 'compressed'}",
        quiet,
    )
    save_pruned(lm, tokenizer, out_dir, payload, overwrite=True)
    sections = [
        f"# polysparse demo\n\n{model} pruned for `{lang}` with {recipe} "
        f"({report.sparsity:.1%} of the block weights zero) in {report.seconds:.0f} s.\n\n{table}"
    ]
    if runtime["sparse"] is not None:
        from polysparse.bench.speed.throughput import markdown as throughput_markdown
        from polysparse.bench.speed.throughput import write_results
        from polysparse.runtime.checkpoint import SparsityMetadata, save_sparse

        compressed = save_sparse(
            runtime["sparse"],
            out_dir / "compressed",
            tokenizer=tokenizer,
            source=out_dir,
            metadata=SparsityMetadata.from_report(payload),
            overwrite=True,
        )
        on_disk = sum(f.stat().st_size for f in compressed.glob("*.safetensors"))
        dense_disk = sum(f.stat().st_size for f in out_dir.glob("*.safetensors"))
        runtime["summary"]["checkpoint"] = {
            "folder": str(compressed),
            "safetensors_bytes": on_disk,
            "dense_safetensors_bytes": dense_disk,
        }
        write_results(runtime["throughput"], out_dir, "throughput")
        sections.append(_demo_runtime_section(runtime["summary"]))
        body = throughput_markdown(runtime["throughput"]).split("\n", 2)[2]
        sections.append("## Throughput, pruned dense vs sparse\n" + body)
        say(
            f"compressed checkpoint: {on_disk / 2**20:.1f} MiB of safetensors against "
            f"{dense_disk / 2**20:.1f} MiB for the pruned dense folder",
            quiet,
        )
    payload["wall_seconds"] = time.perf_counter() - started
    sections.append(f"The whole demo took {payload['wall_seconds']:.0f} s, model preparation included.")
    write_json(out_dir / REPORT_FILE, payload)
    (out_dir / "report.md").write_text("\n\n".join(sections), encoding="utf-8")
    say("\n" + table, quiet)
    say(f"wrote {out_dir} (model, polysparse.json, report.md, throughput.*, compressed/)", quiet)
    return payload


def _demo_runtime(
    lm, tokenizer, *, spec: SourceSpec, seqlen: int, bench: dict, quiet: bool
) -> dict[str, Any]:
    """Steps 5 and 6 of the demo: swap in sparse layers and check parity, then time dense vs sparse."""
    import copy

    import torch

    from polysparse.bench.plans import ThroughputPlan, parse_sizes
    from polysparse.bench.speed.throughput import DEFAULT_DISPATCH_FILE, benchmark_models
    from polysparse.runtime.linear import DispatchTable
    from polysparse.runtime.swap import sparsify_model

    say("[5/7] swapping the 2:4 layers for sparse ones; parity with the pruned dense model", quiet)
    device = resolve_device(None)
    sparse = copy.deepcopy(lm)
    swap = sparsify_model(sparse, backend="auto", dispatch=DispatchTable.load_default(DEFAULT_DISPATCH_FILE))
    say(f"  {swap.summary()}", quiet)
    summary: dict[str, Any] = {
        "swap": {k: v for k, v in swap.to_dict().items() if k not in ("swapped", "skipped")}
    }
    if not swap.swapped:
        say("  no 2:4 layers (the pattern is not 2:4): skipping the sparse runtime steps", quiet)
        say("[6/7] benchmark skipped: nothing runs sparse", quiet)
        return {"sparse": None, "summary": summary}
    dense_ref = lm
    if device.type == "cuda" and lm.dtype == torch.float32:
        # The sparse kernels take fp16/bf16; time both copies in bf16 on the GPU.
        say("  (timing on CUDA in bfloat16: the 2:4 kernels take fp16/bf16)", quiet)
        dense_ref, sparse = copy.deepcopy(lm).to(torch.bfloat16), sparse.to(torch.bfloat16)
    # Parity on one held-out window (both models, the same window): a full second evaluation would
    # double the demo's evaluation time for a number that must come out equal.
    window = evaluation_windows(spec, tokenizer, 1, seqlen, 0)
    dense_one = perplexity(dense_ref, window).perplexity
    sparse_one = perplexity(sparse, window).perplexity
    summary["parity"] = {
        "spec": str(spec),
        "windows": 1,
        "pruned_dense_ppl": dense_one,
        "sparse_ppl": sparse_one,
        "relative_difference": abs(sparse_one / dense_one - 1),
    }
    say(
        f"  perplexity on one held-out {spec} window of {window.seqlen} tokens: sparse {sparse_one:.4f}, "
        f"pruned dense {dense_one:.4f}",
        quiet,
    )
    plan = ThroughputPlan(
        batch_sizes=parse_sizes(bench["batch"]),
        prompt_lengths=parse_sizes(bench["prompt"]),
        new_tokens=bench["new_tokens"],
        repeats=bench["repeats"],
    )
    say(
        f"[6/7] timing dense vs sparse on {device}: batch {bench['batch']}, prompt {bench['prompt']}, "
        f"{bench['new_tokens']} new tokens, {bench['repeats']} repeats after a warm-up",
        quiet,
    )
    dense_ref, sparse = dense_ref.to(device), sparse.to(device)
    throughput = benchmark_models(
        dense_ref,
        sparse,
        plan,
        model_name="demo",
        backend="auto",
        info={"dense_reference": "the pruned model with its zeros, dense layers"},
        progress=None if quiet else lambda message: say(f"  {message}"),
    )
    summary["parity"]["max_abs_logit_diff"] = throughput["parity"]["max_abs_logit_diff"]
    summary["backends_ran"] = throughput["backends_ran"]
    summary["speedups"] = throughput["speedups"]
    say_speedups(throughput, quiet, indent="  ")
    return {"sparse": sparse.to("cpu"), "summary": summary, "throughput": throughput}


def _demo_runtime_section(summary: dict[str, Any]) -> str:
    swap, parity = summary["swap"], summary["parity"]
    lines = [
        "## Sparse runtime",
        "",
        f"{swap['layers_swapped']} linear layers run as 2:4 sparse layers "
        f"({swap['layers_skipped']} kept dense); their weights take "
        f"{swap['layer_bytes_after'] / max(swap['layer_bytes_before'], 1):.1%} of the dense bytes. "
        f"Backend: {swap['backend']} ({swap['dispatch'].get('source', '')}).",
        "",
        f"Parity on one held-out `{parity['spec']}` window: perplexity {parity['sparse_ppl']:.4f} sparse vs "
        f"{parity['pruned_dense_ppl']:.4f} pruned dense; "
        f"max |logit difference| {parity['max_abs_logit_diff']:.3g}.",
    ]
    checkpoint = summary.get("checkpoint")
    if checkpoint:
        lines += [
            "",
            f"Compressed checkpoint `{checkpoint['folder']}`: "
            f"{checkpoint['safetensors_bytes'] / 2**20:.1f} MiB "
            f"(pruned dense folder: {checkpoint['dense_safetensors_bytes'] / 2**20:.1f} MiB).",
        ]
    return "\n".join(lines)
