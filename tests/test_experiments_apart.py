"""The one-off experiments stay out of the product: the wheel's package list leaves ``bench/experiments/``
out, and no installed module imports from it (the wheel would break where one did)."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_FOLDERS = ("polysparse", "kernels", "sparsify", "runtime", "bench")


def test_the_wheel_lists_no_experiment_package():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert "polysparse.bench" in packages
    assert not [name for name in packages if "experiments" in name]
    assert (ROOT / "bench" / "experiments" / "__init__.py").is_file()


def test_no_installed_module_imports_an_experiment():
    importing = re.compile(
        r"^\s*(from|import)\s+polysparse\.bench\.experiments|^\s*from polysparse\.bench import experiments",
        re.M,
    )
    offenders = [
        str(path.relative_to(ROOT))
        for folder in PACKAGE_FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        if not {"experiments", "scripts"} & set(path.relative_to(ROOT).parts)  # neither is installed
        and importing.search(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders
