"""Fixtures for the corpora tests (`require_installed`, for the real Debian packages: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


def write_pages(root: Path, locale: str, pages: dict[str, str]) -> None:
    """Write ``{page name: body html}`` as minimal DocBook-like pages under ``root/locale``."""
    folder = root / locale
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in pages.items():
        (folder / name).write_text(
            "<html><head><title>T</title></head><body>"
            '<div class="navheader"><p>Prev Next</p></div>'
            f"{body}"
            '<div class="navfooter"><p>Home</p></div></body></html>',
            encoding="utf-8",
        )


@pytest.fixture
def page_writer():
    return write_pages
