"""Fixtures for the corpora tests.

Tests that read the real Debian packages (``debian-handbook``, ``installation-guide-amd64``, ``manpages-*``,
gettext catalogues) skip when a package is absent, naming the package to install; with
``POLYSPARSE_REQUIRE_DEBIAN_TEXT=1`` (CI, after ``make debian-packages``) they fail instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def require_installed():
    def check(path: str, package: str) -> Path:
        found = Path(path)
        if found.exists() and any(found.iterdir()):
            return found
        message = f"{path} is missing: install the Debian package {package} (make debian-packages)"
        if os.environ.get("POLYSPARSE_REQUIRE_DEBIAN_TEXT", "") not in ("", "0"):
            pytest.fail(message)
        pytest.skip(message)

    return check


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
