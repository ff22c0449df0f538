"""Prose paragraphs of DocBook-generated HTML (the Debian handbook and installation guide).

A paragraph is the text of a ``<p>`` element or a ``<div class="para">`` (Publican's paragraph), inline
markup (commands, file names, emphasis, links) included as plain text. Left out: code and terminal listings
(``<pre>``, ``screen``, ``programlisting``, synopses), tables, headings and titles, navigation (headers,
footers, tables of contents), legal notices, author and copyright blocks, footnote markers (the notes
themselves are kept) and the page banner. A paragraph that holds a nested block (a list inside a paragraph)
is cut into the text before and after the block; the block's own paragraphs come out on their own.
"""

from __future__ import annotations

from html.parser import HTMLParser

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


class _ProseParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._stack: list[tuple[str, bool, bool]] = []  # (tag, starts prose, starts a skipped subtree)
        self._prose = 0
        self._skip = 0
        self._buffer: list[str] = []

    def _flush(self) -> None:
        if self._buffer:
            text = normalize_space("".join(self._buffer))
            self._buffer = []
            if text:
                self.paragraphs.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag == "br" and self._prose and not self._skip:
                self._buffer.append(" ")
            return
        classes: set[str] = set()
        element_id = ""
        for name, value in attrs:
            if name == "class" and value:
                classes.update(value.split())
            elif name == "id" and value:
                element_id = value
        # Footnote markers (<a class="footnote"><sup class="footnote">[1]</sup></a> in the text and
        # <a class="para"><sup class="para">[1]</sup></a> before the note) are not text; the notes are.
        skip = (
            tag in _SKIP_TAGS
            or not classes.isdisjoint(_SKIP_CLASSES)
            or element_id in _SKIP_IDS
            or (tag in ("a", "sup") and bool(classes & {"footnote", "para"}))
        )
        prose = tag == "p" or (tag == "div" and "para" in classes)
        if tag in _BLOCK:
            self._flush()
        self._stack.append((tag, prose, skip))
        self._prose += prose
        self._skip += skip

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or all(entry[0] != tag for entry in self._stack):
            return
        while self._stack:
            open_tag, prose, skip = self._stack.pop()
            if open_tag in _BLOCK:
                self._flush()
            self._prose -= prose
            self._skip -= skip
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._prose and not self._skip:
            self._buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def extract_paragraphs(html: str) -> list[str]:
    """The prose paragraphs of one HTML page, whitespace-normalised, in document order (duplicates kept)."""
    parser = _ProseParser()
    parser.feed(html)
    parser.close()
    return parser.paragraphs
