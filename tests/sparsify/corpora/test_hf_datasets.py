import sys
import types

import pytest

from polysparse.sparsify.corpora import SourceSpec, load_documents
from polysparse.sparsify.corpora.hf_datasets import (
    DatasetUnavailableError,
    MissingDependencyError,
    parse_hf_argument,
)


def test_argument_forms():
    assert parse_hf_argument("allenai/c4:de:train[:100]:de") == ("allenai/c4", "de", "train[:100]", "de")
    assert parse_hf_argument("my/set:German") == ("my/set", None, "train", "de")
    assert parse_hf_argument("flores:deu_Latn:dev:deu") == ("flores", "deu_Latn", "dev", "de")
    with pytest.raises(ValueError):
        parse_hf_argument("no-language")


def test_missing_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(MissingDependencyError, match="pip install datasets"):
        load_documents(SourceSpec.parse("hf:allenai/c4:de:train:de"))


def fake_datasets(load_dataset):
    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset
    return module


def test_dataset_not_available_offline(monkeypatch):
    def unavailable(name, config, split):
        raise ConnectionError("no network")

    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(unavailable))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DatasetUnavailableError, match="offline mode is on") as error:
        load_documents(SourceSpec.parse("hf:some/corpus:de"))
    assert "some/corpus" in str(error.value) and "ConnectionError" in str(error.value)


def test_records_become_documents(monkeypatch):
    class Split:
        column_names = ["id", "sentence"]

        def __getitem__(self, column):
            return {"id": ["1", "2", "3"], "sentence": ["Ein Drachen.", "  ", "Zwei Drachen."]}[column]

    calls = []

    def load(name, config, split):
        calls.append((name, config, split))
        return Split()

    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(load))
    docs = load_documents(SourceSpec.parse("hf:toy/kites:deu:dev:de"))
    assert calls == [("toy/kites", "deu", "dev")]
    assert [(d.text, d.doc_id, d.lang, d.source) for d in docs] == [
        ("Ein Drachen.", "hf/toy/kites/deu/dev/0", "de", "hf"),
        ("Zwei Drachen.", "hf/toy/kites/deu/dev/2", "de", "hf"),
    ]
