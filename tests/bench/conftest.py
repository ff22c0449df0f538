import pytest

from helpers.tiny_models import tiny_model, tiny_tokenizer


@pytest.fixture(autouse=True)
def reference_kernels(request, monkeypatch):
    """Command-line tests run the kernels' PyTorch references (see tests/sparsify/conftest.py)."""
    if request.node.get_closest_marker("triton_kernels") is None:
        monkeypatch.setenv("POLYSPARSE_KERNELS", "reference")


INVENTED_TEXT = (
    "Der kleine Hund läuft jeden Morgen über die Wiese hinter dem Haus. "
    "Die Katze schläft lieber auf dem warmen Fensterbrett und beobachtet die Vögel. "
    "Am Abend kommen alle zusammen, und der Hund bellt, bis es dunkel wird.\n\n"
)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Llama-architecture model folder with a working tokenizer."""
    folder = tmp_path_factory.mktemp("models") / "tiny-llama"
    model = tiny_model("llama")
    model.save_pretrained(folder, safe_serialization=True)
    tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def german_text(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "de.txt"
    path.write_text(INVENTED_TEXT * 40, encoding="utf-8")
    return path
