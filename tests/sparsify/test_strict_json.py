"""The one JSON writer: no NaN or Infinity in anything polysparse writes (strict readers reject them)."""

import json
import math

from polysparse.sparsify import strict_json


def strict(text):
    def refuse(constant):
        raise ValueError(constant)

    return json.loads(text, parse_constant=refuse)


def test_non_finite_values_become_null_at_any_depth(caplog):
    payload = {"a": math.nan, "b": [1.0, math.inf, (-math.inf, 2)], "c": {"d": {"e": math.nan}}, "f": "nan"}
    caplog.set_level("INFO")
    text = strict_json.dumps(payload)
    assert strict(text) == {"a": None, "b": [1.0, None, [None, 2]], "c": {"d": {"e": None}}, "f": "nan"}
    assert "$.a" in caplog.text and "$.b[1]" in caplog.text and "$.c.d.e" in caplog.text


def test_write_json_is_atomic_and_strict(tmp_path):
    path = strict_json.write_json(tmp_path / "sub" / "x.json", {"loss": math.inf, "path": tmp_path})
    assert strict(path.read_text()) == {"loss": None, "path": str(tmp_path)}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_every_json_file_the_packages_write_goes_through_the_strict_writer():
    """No module writes JSON with json.dump/json.dumps of its own (which would allow NaN again)."""
    from pathlib import Path

    roots = [Path(__import__(f"polysparse.{name}", fromlist=["_"]).__file__).parent for name in
             ("kernels", "sparsify", "runtime", "bench")]  # fmt: skip
    offenders = []
    for folder in roots:
        for path in folder.rglob("*.py"):
            if path.name == "strict_json.py" or "scripts" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            for line_number, line in enumerate(text.splitlines(), 1):
                if ("json.dump(" in line or "json.dumps(" in line) and "strict_json" not in line:
                    offenders.append(f"{path.name}:{line_number}: {line.strip()}")
    # Hashing a canonical form is not writing JSON: fingerprints and cell keys serialise only to hash.
    hashing = ("sha256", "hashlib", "json.loads(json.dumps")
    assert [o for o in offenders if not any(h in o for h in hashing)] == []
