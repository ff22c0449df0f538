"""`polysparse prune` with the recovery options: a working run, and bad values refused before any work."""

import json

import pytest

from polysparse.bench.cli import main


def run(*args):
    return main([str(a) for a in args])


def test_prune_with_admm_reconstruction_and_owl(tiny_model_dir, german_text, tmp_path):
    out = tmp_path / "pruned"
    code = run(
        "prune", "--model", tiny_model_dir, "--method", "wanda", "--sparsity", 0.5,
        "--calib", f"text:{german_text}:de", "--nsamples", 4, "--seqlen", 32,
        "--update", "admm", "--reconstruct", "blockwise", "--reconstruct-steps", 4,
        "--reconstruct-lr", 1e-3, "--sparsity-profile", "owl", "--out", out, "--quiet",
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "polysparse.json").read_text())
    assert report["config"]["update"] == "admm"
    assert report["config"]["reconstruct"] == "blockwise"
    assert all(block["reconstruction"]["steps"] == 4 for block in report["blocks"])
    blocks = report["sparsity_profile"]["block_sparsity"]
    assert sum(blocks) / len(blocks) == pytest.approx(0.5)


def test_prune_with_the_language_aware_owl_profile(tiny_model_dir, german_text, tmp_path):
    out = tmp_path / "pruned"
    code = run(
        "prune", "--model", tiny_model_dir, "--method", "wanda", "--sparsity", 0.5,
        "--calib", f"text:{german_text}:de=0.5,text:{german_text}:fr=0.5", "--nsamples", 4, "--seqlen", 32,
        "--sparsity-profile", "owl-lang", "--out", out, "--quiet",
    )  # fmt: skip
    assert code == 0
    profile = json.loads((out / "polysparse.json").read_text())["sparsity_profile"]
    assert profile["name"] == "owl-lang" and profile["windows_by_language"] == {"de": 2, "fr": 2}
    assert sorted(profile["outlier_ratio_by_language"]) == ["de", "fr"]
    blocks = profile["block_sparsity"]
    assert sum(blocks) / len(blocks) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--reconstruct", "blockwise", "--reconstruct-steps", "-1"], "reconstruct_steps must be a positive"),
        (["--reconstruct-lr", "0"], "reconstruct_lr must lie in (0, 1)"),
        (
            ["--sparsity-profile", "owl", "--owl-lambda", "1.5"],
            "owl_lambda must lie strictly between 0 and 1",
        ),
        (["--sparsity-profile", "owl", "--owl-lambda", "0"], "owl_lambda must lie strictly"),
        (["--admm-iterations", "0"], "admm_iterations must be a positive whole number"),
    ],
)
def test_bad_recovery_values_exit_2_with_a_message(
    tiny_model_dir, german_text, tmp_path, capsys, extra, message
):
    out = tmp_path / "never"
    code = run(
        "prune", "--model", tiny_model_dir, "--method", "wanda", "--sparsity", 0.5,
        "--calib", f"text:{german_text}:de", "--out", out, *extra,
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_owl_with_a_pattern_is_refused(tiny_model_dir, german_text, tmp_path, capsys):
    code = run(
        "prune", "--model", tiny_model_dir, "--method", "wanda", "--pattern", "2:4",
        "--calib", f"text:{german_text}:de", "--sparsity-profile", "owl", "--out", tmp_path / "x",
    )  # fmt: skip
    assert code == 2
    assert "needs unstructured sparsity" in capsys.readouterr().err
