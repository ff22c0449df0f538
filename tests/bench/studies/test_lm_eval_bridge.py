"""The cross-check of polysparse's scorer against lm-eval (the field's standard tool) on the same items.

lm-eval is in the ``test`` extra, so CI runs this; it is not skipped when missing (a skipped cross-check
would read as a pass). Nothing is downloaded: the task is a YAML and a JSONL written here, loaded through
``dataset_path: json``, and the model is a tiny random one.
"""

import json
import math

import pytest

from helpers.tiny_models import tiny_model, tiny_tokenizer
from polysparse.bench.cli import main
from polysparse.bench.studies.lm_eval_bridge import run_lm_eval
from polysparse.sparsify.tasks import Item, evaluate_task, score_items

ASCII_ITEMS = [
    Item("en", "Polysparse prunes language", (" models for the language", " dogs", " rain falls"), 0, "0"),
    Item("en", "The model learns to predict", (" the next word", " a cat", " on the sofa tonight"), 1, "1"),
    Item("en", "The dog runs", (" fast over the meadow", " and barks loudly", " it"), 2, "2"),
    Item("en", "Le chat dort sur", (" le canape", " la pluie", " El modelo", " der Hund"), 3, "3"),
    Item(
        "en", "El modelo aprende ", ("a predecir", "la siguiente palabra del texto"), 0, "4"
    ),  # trailing space
]
UNICODE_ITEMS = [
    Item("de", "Der Hund läuft", (" schnell über die Wiese", " über", " und bellt laut."), 1, "5"),
    Item("de", "Die Katze schläft", (" lieber auf dem Fensterbrett", " über die Wiese"), 0, "6"),
]

TASK_YAML = """task: polysparse_crosscheck
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: label
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture
def offline(tmp_path, monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))


def bos_tokenizer():
    """The tiny tokenizer, adding BOS as Gemma's does when asked for special tokens (lm-eval asks; polysparse
    prepends BOS itself)."""
    from tokenizers.processors import TemplateProcessing

    tok = tiny_tokenizer()
    tok._tokenizer.post_processor = TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)]
    )
    assert tok("Der Hund")["input_ids"][0] == tok.bos_token_id
    assert tok("Der Hund", add_special_tokens=False)["input_ids"][0] != tok.bos_token_id
    return tok


def write_task(folder, items):
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "items.jsonl"
    data.write_text(
        "".join(json.dumps(i.to_dict(), ensure_ascii=False) + "\n" for i in items), encoding="utf-8"
    )
    (folder / "polysparse_crosscheck.yaml").write_text(TASK_YAML.format(data=data), encoding="utf-8")
    return folder


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_lm_eval_scores_equal_polysparse_scores(tmp_path, offline, arch):
    items = ASCII_ITEMS + UNICODE_ITEMS
    model, tok = tiny_model(arch, seed=5), bos_tokenizer()
    folder = write_task(tmp_path / "task", items)
    theirs = run_lm_eval(
        model,
        tok,
        "polysparse_crosscheck",
        include_path=folder,
        batch_size=4,
        log_samples=True,
        include_defaults=False,
    )
    ours = evaluate_task(model, tok, "crosscheck", items)
    metrics = theirs["metrics"]["polysparse_crosscheck"]
    assert metrics["acc"] == pytest.approx(ours.acc, abs=1e-12)
    # Per item and choice: the same log-likelihoods (lm-eval's requests, one full forward each).
    scores = score_items(model, tok, items)
    samples = sorted(theirs["samples"]["polysparse_crosscheck"], key=lambda s: s["doc_id"])
    assert len(samples) == len(items)
    for sample, score in zip(samples, scores):
        lls = [float(r[0]) for r in sample["filtered_resps"]]
        assert len(lls) == len(score.loglikelihoods)
        for theirs_ll, ours_ll in zip(lls, score.loglikelihoods):
            assert math.isclose(theirs_ll, ours_ll, rel_tol=1e-4, abs_tol=2e-4)
    # acc_norm: lm-eval divides by characters, polysparse by UTF-8 bytes; on ASCII they are the same.
    ascii_folder = write_task(tmp_path / "ascii", ASCII_ITEMS)
    ascii_theirs = run_lm_eval(
        model, tok, "polysparse_crosscheck", include_path=ascii_folder, include_defaults=False
    )
    ascii_ours = evaluate_task(model, tok, "crosscheck", ASCII_ITEMS)
    assert ascii_theirs["metrics"]["polysparse_crosscheck"]["acc_norm"] == pytest.approx(ascii_ours.acc_norm)


def test_cli_lm_eval_unknown_task_is_a_clear_error(tiny_model_dir, tmp_path, offline, capsys):
    out = tmp_path / "out.json"
    code = main(
        [
            "eval",
            "--model",
            str(tiny_model_dir),
            "--lm-eval",
            "no_such_task_xyz",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 2
    assert "lm-eval does not know task(s) no_such_task_xyz" in capsys.readouterr().err
    assert not out.exists()
