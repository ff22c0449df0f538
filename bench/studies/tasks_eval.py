"""Task evaluation for ``polysparse eval --tasks`` and the study: build every task's items first (so a bad
spec or file fails before a model is loaded or a file written), then score them on a model."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polysparse.bench.plans import TASK_LIMIT
from polysparse.bench.report import markdown_table
from polysparse.sparsify import strict_json
from polysparse.sparsify.tasks import Item, TaskError, TaskSpec, build_items, evaluate_task, parse_tasks


def prepare_tasks(
    specs: str | Sequence[str], *, limit: int | None = TASK_LIMIT, seed: int = 0
) -> list[tuple[TaskSpec, list[Item]]]:
    """Every task's items, validated; raises :class:`TaskError` (a user error) before anything runs."""
    if limit is not None and limit < 1:
        raise TaskError(f"--limit must be at least 1, got {limit}")
    return [(task, build_items(task, seed=seed, limit=limit)) for task in parse_tasks(specs)]


def dump_items(path: str | Path, prepared: Sequence[tuple[TaskSpec, list[Item]]]) -> Path:
    """All items as JSONL in the task-file format (plus a ``task`` field, which ``file:`` ignores)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", encoding="utf-8") as handle:
        for task, items in prepared:
            for item in items:
                record = {**item.to_dict(), "task": task.name}
                handle.write(strict_json.dumps(record, indent=None, ensure_ascii=False) + "\n")
    partial.replace(path)
    return path


def score_tasks(
    model,
    tokenizer,
    prepared: Sequence[tuple[TaskSpec, list[Item]]],
    *,
    batch_size: int = 8,
    quiet: bool = False,
) -> list[dict[str, Any]]:
    """One result dictionary per task (accuracy, standard errors, per-item correctness, seconds)."""
    results = []
    for task, items in prepared:
        started, cpu_started = time.perf_counter(), time.process_time()
        result = evaluate_task(model, tokenizer, task.name, items, batch_size=batch_size, progress=not quiet)
        seconds = time.perf_counter() - started
        results.append(
            {
                **result.to_dict(),
                "family": task.family,
                "choices": _choice_count(items),
                "seconds": seconds,
                # CPU seconds of this process (all threads): comparable across machine loads, unlike wall.
                "cpu_seconds": time.process_time() - cpu_started,
            }
        )
        if not quiet:
            print(
                f"  {task.name}: acc {with_se(result.acc, result.acc_stderr)}, acc_norm "
                f"{with_se(result.acc_norm, result.acc_norm_stderr)} (n={result.n}, chance "
                f"{result.chance:.3f}, {seconds:.0f} s)",
                flush=True,
            )
    return results


def with_se(value: float, stderr: float | None) -> str:
    """``0.750 ± 0.250``; ``± n/a`` where the standard error is undefined (one item: NaN in memory, null in
    the JSON files)."""
    if stderr is None or not math.isfinite(stderr):
        return f"{value:.3f} ± n/a"
    return f"{value:.3f} ± {stderr:.3f}"


def _choice_count(items: Sequence[Item]) -> int | str:
    counts = {len(i.choices) for i in items}
    return counts.pop() if len(counts) == 1 else f"{min(counts)}-{max(counts)}"


def tasks_markdown(results: Sequence[dict[str, Any]]) -> str:
    """One row per task; a task of several languages gets its pooled row, then one row per language."""
    headers = ["task", "lang", "acc ± se", "acc_norm ± se", "n", "choices", "chance"]
    rows = []
    for r in results:
        for part in [r, *r.get("per_language", ())]:
            rows.append(
                [
                    r["task"],
                    "mixed (pooled)" if part is r and part.get("per_language") else part["lang"],
                    with_se(part["acc"], part["acc_stderr"]),
                    with_se(part["acc_norm"], part["acc_norm_stderr"]),
                    part["n"],
                    r["choices"] if part is r else "",
                    f"{part['chance']:.3f}",
                ]
            )
    return markdown_table(headers, rows)


def compare_files(first: str | Path, second: str | Path, out: str | Path | None = None) -> str:
    """Task accuracy of two ``polysparse eval --tasks`` JSON files on the same items, side by side, with
    the paired bootstrap interval of the difference (first minus second) per task."""
    from polysparse.sparsify.tasks import TaskResult, compare

    a = {r["task"]: r for r in json.loads(Path(first).read_text(encoding="utf-8")).get("tasks", [])}
    b = {r["task"]: r for r in json.loads(Path(second).read_text(encoding="utf-8")).get("tasks", [])}
    shared = [name for name in a if name in b]
    if not shared:
        raise TaskError(f"{first} and {second} share no task")
    rows = []
    pairs = []
    for name in shared:
        left, right = TaskResult.from_dict(a[name]), TaskResult.from_dict(b[name])
        pairs.append((name, left, right))
        by_lang = {result.lang: result for result in right.per_language}
        pairs += [
            (f"{name} ({part.lang})", part, by_lang[part.lang])
            for part in left.per_language
            if part.lang in by_lang
        ]
    for name, left, right in pairs:
        interval = compare(left, right)
        rows.append(
            [
                name,
                left.n,
                f"{left.chance:.3f}",
                with_se(left.acc, left.acc_stderr),
                with_se(right.acc, right.acc_stderr),
                f"{interval.difference:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]"
                + (" *" if interval.excludes_zero else ""),
                f"{left.acc_norm:.3f} / {right.acc_norm:.3f}",
            ]
        )
    table = markdown_table(
        ["task", "n", "chance", f"acc {Path(first).stem}", f"acc {Path(second).stem}", "difference (95% CI)",
         "acc_norm first / second"],
        rows,
    )  # fmt: skip
    text = (
        f"`{first}` against `{second}`: accuracy ± standard error; difference with its 95% paired bootstrap "
        "interval over the items (* excludes zero).\n\n" + table
    )
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description="Compare the task accuracy of two polysparse eval JSON files"
    )
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--out", help="write the Markdown table here")
    args = parser.parse_args(argv)
    print(compare_files(args.first, args.second, args.out))


if __name__ == "__main__":
    main()
