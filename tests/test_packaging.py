"""The repository's folders install as ``polysparse.<pkg>`` and must never be imported as bare top-level
packages: their names are taken on PyPI, and transformers imports Hugging Face's ``kernels`` (a transformers
dependency since 5.25) whenever it is installed. Started in the repository root, ``python -m``/``-c`` puts the
root first on ``sys.path``; every command the project runs or documents starts Python with ``-P``.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("kernels", "sparsify", "runtime", "bench")

# An interpreter started with -m, -c or a script on stdin, without -P among the flags before it.
SHELL_PYTHON = re.compile(
    r"""(?:\bpython3?|\$\{?PY(?:THON)?\}?"?|"\$0")"""  # python, $PY, "$PYTHON", "$0" (bash -c)
    r"""(?:[ \t]+-[A-OQ-Za-z]+)*[ \t]+-[mc]?(?=[ \t\n"'`])"""  # flags other than -P, then -m, -c or -
)
TEST_PYTHON = re.compile(r'sys\.executable,\s*"-[mc]"')


def _project_commands() -> list[Path]:
    files = [ROOT / "Makefile", ROOT / ".ci" / "run", ROOT / "README.md"]
    files += sorted((ROOT / "bench" / "scripts").glob("*.sh"))
    files += sorted((ROOT / "docs").rglob("*.md")) if (ROOT / "docs").is_dir() else []
    return [path for path in files if path.is_file()]


def test_bare_import_of_a_root_folder_names_the_cause_and_the_fix():
    for folder in FOLDERS:
        proc = subprocess.run(
            [sys.executable, "-c", f"import {folder}"], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode != 0, folder
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("ImportError:") and "repository root is on sys.path" in last, last
        assert "-P" in last and "`polysparse`" in last, last


def test_hugging_face_kernels_is_imported_from_site_packages_beside_polysparse():
    """The failure mode of issue 21: transformers' hub-kernels integration importing the root's kernels/."""
    pytest.importorskip("kernels", reason="Hugging Face's kernels package is not installed")
    script = (
        "import polysparse.kernels, transformers.modeling_utils, kernels, sys;"
        "print(kernels.__file__); print(polysparse.kernels.__name__)"
    )
    proc = subprocess.run(
        [sys.executable, "-P", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    hub_file, name = proc.stdout.split()
    assert ROOT / "kernels" not in Path(hub_file).resolve().parents, hub_file
    assert name == "polysparse.kernels"


def test_this_session_imported_no_root_folder_as_a_top_level_package():
    for folder in FOLDERS:
        module = sys.modules.get(folder)
        if module is not None and getattr(module, "__file__", None):
            assert ROOT / folder not in Path(module.__file__).resolve().parents, (folder, module.__file__)


def test_every_command_the_project_runs_or_documents_keeps_the_root_off_sys_path():
    offenders = []
    for path in _project_commands():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            offenders += [
                f"{path.relative_to(ROOT)}:{number}: {line.strip()}" for _ in SHELL_PYTHON.finditer(line)
            ]
    for path in sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py")):
        if path == Path(__file__).resolve():  # the bare-import test above leaves -P out on purpose
            continue
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(ROOT)}: {match.group(0)!r}" for match in TEST_PYTHON.finditer(text)]
    assert not offenders, "start Python with -P:\n" + "\n".join(offenders)


def test_the_lint_patterns_catch_what_they_must():
    caught = [
        "python -m polysparse.bench.studies.study",
        "$(BIN)/python -m pytest -q",
        '"$PYTHON" -m x',
        '"$0" -c "import a"',
        "python3 - <<EOF",
        "$PY -u -m polysparse",
    ]
    passed = [
        "python -P -m polysparse.bench.studies.study",
        '"$PYTHON" -P - <<EOF',
        "python bench/scripts/x.py",
        ".venv/bin/polysparse prune",
        "python -P -u -m pytest",
    ]
    assert all(SHELL_PYTHON.search(line) for line in caught), [
        c for c in caught if not SHELL_PYTHON.search(c)
    ]
    assert not any(SHELL_PYTHON.search(line) for line in passed), [
        p for p in passed if SHELL_PYTHON.search(p)
    ]
    assert TEST_PYTHON.search('[sys.executable,\n  "-m", "x"]') and not TEST_PYTHON.search(
        '[sys.executable, "-P"'
    )


def test_the_gpu_paths_import_with_only_the_gpu_images_packages():
    """The GPU machine installs polysparse with --no-deps beside torch, triton, transformers and safetensors:
    the text-only dependencies (polib, lxml) and the test extra (openai) must not be needed to import the
    command line, the jobs, the throughput benchmark, the kernel benchmarks or the runtime."""
    script = (
        "import sys\n"
        "class Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('polib', 'lxml', 'openai'):\n"
        "            raise ImportError(f'{name} is not installed on the GPU image')\n"
        "sys.meta_path.insert(0, Absent())\n"
        "import polysparse.bench.cli, polysparse.bench.jobs, polysparse.bench.speed.throughput\n"
        "import polysparse.bench.speed.shape_models, polysparse.bench.kernels.sparse24_matmul\n"
        "import polysparse.runtime, polysparse.runtime.linear, polysparse.runtime.checkpoint\n"
        "print('imported')\n"
    )
    proc = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "imported" in proc.stdout, proc.stderr[-3000:]
