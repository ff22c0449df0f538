"""``handbook:LANG``: prose of the Debian Administrator's Handbook (Debian package ``debian-handbook``).

The package installs the same chapters and sections as Publican HTML in 26 locales under
``/usr/share/doc/debian-handbook/html/<lang-REGION>/``; many locales are only partly translated, and their
untranslated paragraphs (identical to the ``en-US`` edition) are English and are not counted as theirs. See
:mod:`polysparse.sparsify.corpora.html_book` for the rules and :mod:`~polysparse.sparsify.corpora.html_prose`
for what counts as prose. ``POLYSPARSE_HANDBOOK_ROOT`` points the source at another copy of the html folder.
"""

from __future__ import annotations

from polysparse.sparsify.corpora.documents import Document, ParallelPair
from polysparse.sparsify.corpora.html_book import HtmlBook, book_documents, book_parallel, resolve_root
from polysparse.sparsify.corpora.languages import Language

NAME = "handbook"
PACKAGE = "debian-handbook"
DEFAULT_ROOT = "/usr/share/doc/debian-handbook/html"
ROOT_VARIABLE = "POLYSPARSE_HANDBOOK_ROOT"


def handbook(root: str | None = None) -> HtmlBook:
    """The installed handbook (``root`` overrides where its locale folders are)."""
    return HtmlBook(name=NAME, package=PACKAGE, root=root or resolve_root(ROOT_VARIABLE, DEFAULT_ROOT))


def load_handbook_documents(language: str | Language, root: str | None = None) -> list[Document]:
    """One document per chapter or section page in ``language`` (``de``, ``de-DE``, ``zh-TW``, ``German``)."""
    return book_documents(handbook(root), language)


def load_handbook_parallel(
    src_language: str | Language, tgt_language: str | Language, root: str | None = None
) -> list[ParallelPair]:
    """Paragraph pairs aligned by page and paragraph order, on pages whose paragraph counts match."""
    return book_parallel(handbook(root), src_language, tgt_language)
