"""``import polysparse`` (polysparse/__init__.py): cheap, and it registers the transformers quantizer whenever
transformers' quantizer registry is imported, before or after. Each case in a fresh interpreter."""

import subprocess
import sys

import pytest

REGISTERED = (
    "from transformers.quantizers.auto import AUTO_QUANTIZER_MAPPING as Q, "
    "AUTO_QUANTIZATION_CONFIG_MAPPING as C\n"
    "print(Q['polysparse'].__name__, C['polysparse'].__name__)\n"
)


def run(script: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


def test_import_is_cheap_and_registers_when_transformers_loads_its_quantizers():
    out = run(
        "import sys, polysparse\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
        "import polysparse.kernels\n"  # the subpackages still import beside the real package
        "print(polysparse.kernels.__name__)\n" + REGISTERED
    )
    assert out == ["False", "False", "polysparse.kernels", "PolysparseHfQuantizer", "PolysparseConfig"]


@pytest.mark.parametrize(
    "first",
    [
        "import transformers.quantizers.auto, polysparse",  # the registry is there: registered at once
        "from polysparse.runtime.hf_quantizer import PolysparseConfig",  # it imports the registry itself
    ],
)
def test_registered_whatever_is_imported_first(first):
    assert run(first + "\n" + REGISTERED) == ["PolysparseHfQuantizer", "PolysparseConfig"]


def test_without_import_polysparse_nothing_is_registered():
    script = "import transformers.quantizers.auto as auto\nprint('polysparse' in auto.AUTO_QUANTIZER_MAPPING)"
    assert run(script) == ["False"]
