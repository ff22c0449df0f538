import json
import math

import pytest

from polysparse.bench.experiments.llmc_side_by_side import seeds_summary


def _table(folder, seed, theirs, ours):
    folder.mkdir()
    tool, recipe = "polysparse", "sparsegpt 2:4"
    rows = [
        {"tool": "-", "recipe": "dense", "perplexity": {"de": 10.0, "en": 10.0}},
        {"tool": "llmcompressor", "recipe": "sparsegpt 2:4", "perplexity": theirs, "wall_seconds": 5.0},
        {"tool": tool, "recipe": recipe, "seed": seed, "perplexity": ours, "wall_seconds": 4.0},
    ]
    (folder / "side-by-side.json").write_text(json.dumps({"rows": rows}))
    return folder


def test_seeds_summary_ratios_and_geometric_means(tmp_path):
    a = _table(tmp_path / "a", 0, {"de": 20.0, "en": 30.0}, {"de": 22.0, "en": 27.0})
    b = _table(tmp_path / "b", 1, {"de": 20.0, "en": 30.0}, {"de": 20.0, "en": 33.0})
    result = seeds_summary([a, b], "sparsegpt 2:4", tmp_path / "out")
    assert [r["seed"] for r in result["rows"]] == [0, 1]
    assert result["rows"][0]["ratio"] == pytest.approx({"de": 1.1, "en": 0.9})
    assert result["geomean_ratio"]["de"] == pytest.approx(math.sqrt(1.1))
    assert result["geomean_ratio"]["all"] == pytest.approx((1.1 * 0.9 * 1.0 * 1.1) ** 0.25)
    assert result["polysparse_lower"] == 1
    assert "polysparse lower in 1 of 4 cells" in (tmp_path / "out" / "seeds.md").read_text()


def test_seeds_summary_needs_both_tools(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    rows = [{"tool": "polysparse", "recipe": "sparsegpt 2:4", "perplexity": {"de": 1.0}}]
    (folder / "side-by-side.json").write_text(json.dumps({"rows": rows}))
    with pytest.raises(SystemExit, match="both tools"):
        seeds_summary([folder], "sparsegpt 2:4", tmp_path / "out")
