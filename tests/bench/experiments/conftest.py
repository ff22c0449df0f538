"""Fixtures of the experiment tests: a German ``fortunes`` collection (the out-of-domain source)."""

import pytest

SAYINGS = [
    "Wer zuletzt lacht, lacht am besten.",
    "Morgenstund hat Gold im Mund, aber Blei im Hintern.",
    "Der Klügere gibt nach, bis er der Dumme ist.",
    "Ein Vogel, der früh singt, wird am Abend von der Katze gefressen.",
]


@pytest.fixture
def fortune_root(tmp_path, monkeypatch):
    """German sayings only: ``fortunes:de`` exists, ``fortunes:ja`` does not."""
    folder = tmp_path / "fortunes" / "de"
    folder.mkdir(parents=True)
    entries = [f"{saying} ({i})" for i in range(60) for saying in SAYINGS]
    (folder / "sprueche").write_text("\n%\n".join(entries) + "\n", encoding="utf-8")
    monkeypatch.setenv("POLYSPARSE_FORTUNES_ROOT", str(tmp_path / "fortunes"))
    return folder
