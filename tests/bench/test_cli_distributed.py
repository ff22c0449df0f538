"""`torchrun --nproc-per-node 2 --no-python polysparse prune` (gloo on CPU) equals a single-process run."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polysparse.bench.cli import main


def polysparse_executable() -> str:
    found = Path(sys.executable).with_name("polysparse")
    return str(found) if found.exists() else (shutil.which("polysparse") or "polysparse")


# The language-aware OWL profile on a mix whose one English window lands on rank 1 only (window i on rank
# i % 2): both ranks must still agree on the languages to reduce statistics for.
OWL_LANG = [
    "--sparsity",
    "0.5",
    "--sparsity-profile",
    "owl-lang",
    "--calib",
    "text:{text}:de=0.8,text:{text}:en=0.2",
]


@pytest.mark.parametrize(
    "method,setting",
    [("wanda", ["--sparsity", "0.5"]), ("sparsegpt", ["--pattern", "2:4"]), ("wanda", OWL_LANG)],
)
def test_two_gloo_ranks_match_one_process(tiny_model_dir, german_text, tmp_path, method, setting):
    args = [
        "prune",
        "--model",
        str(tiny_model_dir),
        "--method",
        method,
        "--calib",
        f"text:{german_text}:de",
        *[word.format(text=german_text) for word in setting],
        "--nsamples",
        "6",
        "--seqlen",
        "32",
        "--quiet",
    ]
    assert main([*args, "--out", str(tmp_path / "single")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-P",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "--no-python",
        polysparse_executable(),
        *args,
        "--out",
        str(tmp_path / "ranks"),
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    single = load_file(str(tmp_path / "single" / "model.safetensors"))
    ranks = load_file(str(tmp_path / "ranks" / "model.safetensors"))
    assert single.keys() == ranks.keys()
    for key in single:
        assert torch.equal(single[key] == 0, ranks[key] == 0), key  # identical masks
        torch.testing.assert_close(single[key], ranks[key], rtol=1e-4, atol=1e-5, msg=key)
    report = (tmp_path / "ranks" / "polysparse.json").read_text()
    assert '"ranks": 2' in report
    if "owl-lang" in setting:
        profiles = [
            json.loads((tmp_path / run / "polysparse.json").read_text()) for run in ("single", "ranks")
        ]
        by_language = [p["sparsity_profile"]["outlier_ratio_by_language"] for p in profiles]
        assert sorted(by_language[0]) == sorted(by_language[1]) == ["de", "en"]
        assert by_language[1]["en"] == pytest.approx(by_language[0]["en"], abs=1e-9)
    assert not (tmp_path / ".ranks.work").exists()
