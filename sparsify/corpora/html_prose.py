"""Prose paragraphs of DocBook-generated HTML (the Debian handbook and installation guide).

A paragraph is the text of a ``<p>`` element or a ``<div class="para">`` (Publican's paragraph), inline
markup (commands, file names, emphasis, links) included as plain text. Left out: code and terminal listings
(``<pre>``, ``screen``, ``programlisting``, synopses), tables, headings and titles, navigation (headers,
footers, tables of contents), legal notices, author and copyright blocks, footnote markers (the notes
themselves are kept) and the page banner. A ``<div class="para">`` that holds a nested block (a list inside
a paragraph) is cut into the text before and after the block; the block's own paragraphs come out on their
own.

Pages are parsed by libxml2's HTML parser (``lxml``), which builds the element tree the rules above walk.
It reads markup as HTML does: a ``<p>`` ends where a block element starts, so ``<p>A<ul><li>B</li></ul>C</p>``
gives ``A`` alone (the hand-written parser this replaced kept ``A``, ``B``, ``C``). No page of the installed
books holds a block inside a ``<p>``: every page of both gives the same paragraphs as before
(``bench/results/corpora/window-hashes.md``).
"""

from __future__ import annotations

from functools import lru_cache

from polysparse.sparsify.corpora.prose import normalize_space


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_VOID = _words("area base br col embed hr img input link meta param source track wbr")
_BLOCK = _words(
    "address article aside blockquote dd div dl dt figure footer form h1 h2 h3 h4 h5 h6 header hr li main "
    "nav ol p pre section table tbody td tfoot th thead tr ul"
)
_SKIP_TAGS = _words("head title script style pre table h1 h2 h3 h4 h5 h6 object svg math")
_SKIP_CLASSES = _words(
    "titlepage title subtitle navheader navfooter docnav toc list-of-figures list-of-tables list-of-examples "
    "legalnotice screen programlisting synopsis cmdsynopsis funcsynopsis literallayout mediaobject author "
    "authorgroup editor othercredit copyright revhistory index indexterm"
)
_SKIP_IDS = frozenset({"banner", "title"})


@lru_cache(maxsize=1)
def _lxml_html():
    """lxml's HTML module and parser, imported on first use: the GPU image has no lxml, and only the HTML
    sources need it."""
    import lxml.html

    return lxml.html, lxml.html.HTMLParser(encoding="utf-8")


class _ProseWalker:
    """Collects paragraphs walking the tree in document order (text, children, then the element's tail)."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self._prose = 0
        self._skip = 0
        self._buffer: list[str] = []

    def _flush(self) -> None:
        if self._buffer:
            text = normalize_space("".join(self._buffer))
            self._buffer = []
            if text:
                self.paragraphs.append(text)

    def _text(self, text: str | None) -> None:
        if text and self._prose and not self._skip:
            self._buffer.append(text)

    def paragraphs_of(self, root) -> list[str]:
        self.walk(root)
        self._flush()
        return self.paragraphs

    def walk(self, element) -> None:
        tag = element.tag
        if not isinstance(tag, str):  # a comment or processing instruction: only its tail is text
            pass
        elif tag in _VOID:
            if tag == "br":
                self._text(" ")
        else:
            classes = set((element.get("class") or "").split())
            # Footnote markers (<a class="footnote"><sup class="footnote">[1]</sup></a> in the text and
            # <a class="para"><sup class="para">[1]</sup></a> before the note) are not text; the notes are.
            skip = (
                tag in _SKIP_TAGS
                or not classes.isdisjoint(_SKIP_CLASSES)
                or element.get("id", "") in _SKIP_IDS
                or (tag in ("a", "sup") and bool(classes & {"footnote", "para"}))
            )
            prose = tag == "p" or (tag == "div" and "para" in classes)
            block = tag in _BLOCK
            if block:
                self._flush()
            self._prose += prose
            self._skip += skip
            self._text(element.text)
            for child in element:
                self.walk(child)
            if block:
                self._flush()
            self._prose -= prose
            self._skip -= skip
        self._text(element.tail)


def extract_paragraphs(html: str) -> list[str]:
    """The prose paragraphs of one HTML page, whitespace-normalised, in document order (duplicates kept)."""
    if not html.strip():
        return []
    html_module, parser = _lxml_html()
    return _ProseWalker().paragraphs_of(html_module.document_fromstring(html.encode("utf-8"), parser=parser))
