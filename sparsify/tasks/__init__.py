"""Zero-shot multiple-choice tasks per language: items built from held-out text (or read from JSONL),
scored as lm-eval scores multiple choice, with accuracy, standard error and paired bootstrap intervals."""

from polysparse.sparsify.tasks.builders import (
    TaskSpec,
    build_items,
    parse_task,
    parse_tasks,
    split_sentences,
)
from polysparse.sparsify.tasks.evaluate import TaskResult, compare, evaluate_task
from polysparse.sparsify.tasks.items import Item, TaskError, chance_level, read_items, write_items
from polysparse.sparsify.tasks.metrics import Interval, paired_bootstrap, standard_error
from polysparse.sparsify.tasks.scoring import EncodedItem, ItemScore, encode_item, score_items

__all__ = [
    "EncodedItem",
    "Interval",
    "Item",
    "ItemScore",
    "TaskError",
    "TaskResult",
    "TaskSpec",
    "build_items",
    "chance_level",
    "compare",
    "encode_item",
    "evaluate_task",
    "paired_bootstrap",
    "parse_task",
    "parse_tasks",
    "read_items",
    "score_items",
    "split_sentences",
    "standard_error",
    "write_items",
]
