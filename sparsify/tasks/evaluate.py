"""One task on one model: items in, accuracy with its standard error out (and per-item correctness, so
two models on the same items can be compared with a paired bootstrap). A task whose items carry more than
one language (a user's ``file:`` task) is summarised pooled (``lang="mixed"``) and per language."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from polysparse.sparsify.tasks.items import Item, chance_level
from polysparse.sparsify.tasks.metrics import Interval, mean, paired_bootstrap, standard_error
from polysparse.sparsify.tasks.scoring import ItemScore, score_items


@dataclass(frozen=True)
class TaskResult:
    """Accuracy of one model on one task's items; ``correct`` / ``correct_norm`` per item, in order.

    ``per_language``: for items of several languages, the same summary of each language's items (in the
    order the languages first appear); empty otherwise."""

    task: str
    lang: str
    n: int
    acc: float
    acc_stderr: float
    acc_norm: float
    acc_norm_stderr: float
    chance: float
    correct: tuple[int, ...] = field(repr=False)
    correct_norm: tuple[int, ...] = field(repr=False)
    item_ids: tuple[str, ...] = field(repr=False)
    per_language: tuple[TaskResult, ...] = field(default=(), repr=False)

    def to_dict(self, per_item: bool = True) -> dict:
        data = {
            "task": self.task,
            "lang": self.lang,
            "n": self.n,
            "acc": self.acc,
            "acc_stderr": self.acc_stderr,
            "acc_norm": self.acc_norm,
            "acc_norm_stderr": self.acc_norm_stderr,
            "chance": self.chance,
        }
        if per_item:
            data.update(
                correct=list(self.correct), correct_norm=list(self.correct_norm), item_ids=list(self.item_ids)
            )
        if self.per_language:
            data["per_language"] = [result.to_dict(per_item) for result in self.per_language]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TaskResult:
        return cls(
            task=data["task"],
            lang=data["lang"],
            n=data["n"],
            acc=data["acc"],
            acc_stderr=data["acc_stderr"],
            acc_norm=data["acc_norm"],
            acc_norm_stderr=data["acc_norm_stderr"],
            chance=data["chance"],
            correct=tuple(data["correct"]),
            correct_norm=tuple(data["correct_norm"]),
            item_ids=tuple(data["item_ids"]),
            per_language=tuple(cls.from_dict(entry) for entry in data.get("per_language", ())),
        )


def summarise(task: str, items: Sequence[Item], scores: Sequence[ItemScore]) -> TaskResult:
    """Accuracy and byte-normalised accuracy of scored items (pure); per language too where they mix."""
    if not items or len(items) != len(scores):
        raise ValueError(f"{len(items)} items and {len(scores)} scores")
    languages = list(dict.fromkeys(item.lang for item in items))
    per_language = ()
    if len(languages) > 1:
        per_language = tuple(
            summarise(
                task,
                [item for item in items if item.lang == lang],
                [score for item, score in zip(items, scores) if item.lang == lang],
            )
            for lang in languages
        )
    correct = tuple(int(s.correct) for s in scores)
    correct_norm = tuple(int(s.correct_norm) for s in scores)
    return TaskResult(
        task=task,
        lang=languages[0] if len(languages) == 1 else "mixed",
        n=len(items),
        acc=mean(correct),
        acc_stderr=standard_error(correct),
        acc_norm=mean(correct_norm),
        acc_norm_stderr=standard_error(correct_norm),
        chance=chance_level(items),
        correct=correct,
        correct_norm=correct_norm,
        item_ids=tuple(i.id for i in items),
        per_language=per_language,
    )


def evaluate_task(
    model: nn.Module,
    tokenizer,
    task: str,
    items: Sequence[Item],
    *,
    batch_size: int = 8,
    progress: bool = False,
) -> TaskResult:
    scores = score_items(model, tokenizer, items, batch_size=batch_size, progress=progress, description=task)
    return summarise(task, items, scores)


def compare(
    a: TaskResult, b: TaskResult, *, metric: str = "acc", resamples: int = 2000, seed: int = 0
) -> Interval:
    """Paired bootstrap interval of ``a - b`` in accuracy (``acc`` or ``acc_norm``) on the same items."""
    if a.item_ids != b.item_ids:
        raise ValueError(f"{a.task} and {b.task} were not scored on the same items; cannot pair them")
    if metric not in ("acc", "acc_norm"):
        raise ValueError(f"metric must be acc or acc_norm, got {metric!r}")
    left = a.correct if metric == "acc" else a.correct_norm
    right = b.correct if metric == "acc" else b.correct_norm
    return paired_bootstrap(left, right, resamples=resamples, seed=seed)
