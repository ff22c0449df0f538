"""``install-guide:LANG``: paragraphs of the Debian installation guide (``installation-guide-amd64``).

The package installs DocBook HTML in 19 locales under ``/usr/share/doc/installation-guide-amd64/<lang>/``
with the same page files in each. Another architecture's guide (``installation-guide-arm64``, ...) is used
when the amd64 one is absent. The appendix holding the GNU GPL (``apf.html``) is licence text, not the
guide's prose, and is left out. Rules as for the handbook (:mod:`polysparse.sparsify.corpora.html_book`);
``POLYSPARSE_INSTALL_GUIDE_ROOT`` points the source at another copy of the guide's folder.
"""

from __future__ import annotations

import glob
from pathlib import Path

from polysparse.sparsify.corpora.documents import Document, ParallelPair
from polysparse.sparsify.corpora.html_book import HtmlBook, book_documents, book_parallel, resolve_root
from polysparse.sparsify.corpora.languages import Language

NAME = "install-guide"
PACKAGE = "installation-guide-amd64"
DEFAULT_ROOT = "/usr/share/doc/installation-guide-amd64"
ROOT_VARIABLE = "POLYSPARSE_INSTALL_GUIDE_ROOT"
EXCLUDED_PAGES = frozenset({"apf.html"})


def _default_root() -> str:
    if Path(DEFAULT_ROOT).is_dir():
        return DEFAULT_ROOT
    others = sorted(glob.glob("/usr/share/doc/installation-guide-*/"))
    return others[0].rstrip("/") if others else DEFAULT_ROOT


def install_guide(root: str | None = None) -> HtmlBook:
    """The installed guide (``root`` overrides where its locale folders are)."""
    return HtmlBook(
        name=NAME,
        package=PACKAGE,
        root=root or resolve_root(ROOT_VARIABLE, _default_root()),
        excluded_pages=EXCLUDED_PAGES,
    )


def load_install_guide_documents(language: str | Language, root: str | None = None) -> list[Document]:
    """One document per page of the guide in ``language`` (``de``, ``zh_CN``, ``Portuguese``)."""
    return book_documents(install_guide(root), language)


def load_install_guide_parallel(
    src_language: str | Language, tgt_language: str | Language, root: str | None = None
) -> list[ParallelPair]:
    """Paragraph pairs aligned by page and paragraph order, on pages whose paragraph counts match."""
    return book_parallel(install_guide(root), src_language, tgt_language)
