"""lm-eval on a loaded (pruned) model: ``polysparse eval --lm-eval xnli_de,belebele_deu_Latn``.

lm-eval is an optional extra (``pip install 'polysparse[lm-eval]'``) and its data sets must already be on
the machine (polysparse never downloads them; lm-eval may try to, and fails offline with its own error).
The model object is handed to lm-eval's ``HFLM`` as it is, so a model pruned in this process is evaluated
without being saved first. BOS: ``add_bos_token`` is set when the tokenizer has a BOS token, as polysparse's
own scorer prepends it (lm-eval's default adds it only for Gemma models).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polysparse.bench.report import markdown_table
from polysparse.bench.user_errors import out_of_space
from polysparse.sparsify.config import ConfigError
from polysparse.sparsify.corpora import DatasetUnavailableError

INSTALL_HINT = "lm-eval is not installed; pip install 'polysparse[lm-eval]' (or pip install lm-eval)"


def check_lm_eval() -> None:
    """Raise :class:`ConfigError` (exit status 2) when lm-eval cannot be imported."""
    try:
        import lm_eval  # noqa: F401
        from lm_eval.models.huggingface import HFLM  # noqa: F401
    except ImportError as error:
        raise ConfigError(f"{INSTALL_HINT} ({error})") from None


def _task_names(tasks: str | Sequence[str]) -> list[str]:
    names = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t.strip()]
    if not names:
        raise ConfigError("--lm-eval needs at least one task name")
    return names


def run_lm_eval(
    model,
    tokenizer,
    tasks: str | Sequence[str],
    *,
    limit: int | None = None,
    batch_size: int = 8,
    include_path: str | Path | None = None,
    num_fewshot: int | None = None,
    log_samples: bool = False,
    include_defaults: bool = True,
) -> dict[str, Any]:
    """``simple_evaluate`` on ``model``; returns per-task metrics (``acc``, ``acc_stderr``, ``acc_norm``...)
    as lm-eval reports them, plus a Markdown table. ``include_path``: a folder of custom task YAMLs;
    ``include_defaults=False`` leaves lm-eval's own tasks unindexed (tens of seconds saved)."""
    check_lm_eval()
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    names = _task_names(tasks)
    manager = TaskManager(
        include_path=str(include_path) if include_path else None, include_defaults=include_defaults
    )
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise ConfigError(f"lm-eval does not know task(s) {', '.join(unknown)} (see lm-eval --tasks list)")
    wrapped = HFLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=batch_size,
        add_bos_token=getattr(tokenizer, "bos_token_id", None) is not None,
    )
    try:
        output = simple_evaluate(
            model=wrapped, tasks=names, task_manager=manager, limit=limit, num_fewshot=num_fewshot,
            log_samples=log_samples,
        )  # fmt: skip
    except OSError as error:  # requests', huggingface_hub's and datasets' "cannot reach / not cached" errors
        if out_of_space(error):
            raise
        raise DatasetUnavailableError(
            f"lm-eval could not load the data of {', '.join(names)} ({type(error).__name__}: {error}); "
            "polysparse never downloads: the data sets must be in this machine's Hugging Face cache"
        ) from None
    metrics: dict[str, dict[str, float]] = {}
    for task, values in output["results"].items():
        metrics[task] = {
            key.split(",")[0]: value
            for key, value in values.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
    rows = []
    for task, values in metrics.items():
        acc, se = values.get("acc"), values.get("acc_stderr")
        norm, norm_se = values.get("acc_norm"), values.get("acc_norm_stderr")
        rows.append(
            [
                task,
                "-" if acc is None else f"{acc:.3f} ± {se:.3f}" if isinstance(se, float) else f"{acc:.3f}",
                "-"
                if norm is None
                else f"{norm:.3f} ± {norm_se:.3f}"
                if isinstance(norm_se, float)
                else f"{norm:.3f}",
            ]
        )
    table = markdown_table(["lm-eval task", "acc ± se", "acc_norm ± se"], rows)
    result: dict[str, Any] = {"tasks": names, "metrics": metrics, "markdown": table}
    if log_samples:
        result["samples"] = output["samples"]
    return result
