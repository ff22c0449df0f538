"""Prose paragraphs of a man page's roff source (man and mdoc macros, groff escapes).

Kept: the text lines of filled paragraphs, and the words of inline font macros (``.B``, ``.BR``, mdoc's
``.Nm``, ``.Xr``...) that sit inside sentences. Dropped: comments; headings (``.SH``, ``.SS``, ``.Sh``) and
the page header; the tags of tagged paragraphs (the line after ``.TP``, ``.IP`` and ``.It`` arguments); every
no-fill or literal block (``.nf``/``.fi``, ``.EX``/``.EE``, pod2man's ``.Vb``/``.Ve``, tables ``.TS``/``.TE``,
equations, synopses ``.SY``/``.YS``, ``.Bd -literal``/``.Ed``); macro definitions and ignored blocks
(``.de``/``.ig`` up to ``..``); conditionals (``.if``, ``.ie``, ``.el`` with their ``\\{ ... \\}`` bodies);
every other request (``.ad``, ``.in``, ``.ds``, ``.so``...). Escapes become the characters they name (``\\-``,
``\\(em``, ``\\[u00E9]``, ``\\*(lq``, accents) or nothing (font, size, motion, width escapes).

A paragraph whose letters are mostly in bold, italic or constant-width type is a synopsis, an option list
or a command and is dropped (:data:`MAX_MARKED_FRACTION`).
"""

from __future__ import annotations

import re
import unicodedata

from polysparse.sparsify.corpora.prose import join_lines, normalize_space

MAX_MARKED_FRACTION = 0.5
"""Paragraphs with more than this fraction of their letters set in bold/italic/monospace are dropped."""

_SPECIAL = {
    "em": "—",
    "en": "–",
    "hy": "-",
    "lq": "“",
    "rq": "”",
    "oq": "‘",
    "cq": "’",
    "aq": "'",
    "dq": '"',
    "bu": "•",
    "co": "©",
    "rg": "®",
    "tm": "™",
    "de": "°",
    "mu": "×",
    "di": "÷",
    "+-": "±",
    ">=": "≥",
    "<=": "≤",
    "!=": "≠",
    "->": "→",
    "<-": "←",
    "Fo": "«",
    "Fc": "»",
    "fo": "‹",
    "fc": "›",
    "ga": "`",
    "ti": "~",
    "ha": "^",
    "rs": "\\",
    "sl": "/",
    "ba": "|",
    "bv": "|",
    "pl": "+",
    "mi": "−",
    "eq": "=",
    "sh": "#",
    "Do": "$",
    "at": "@",
    "ss": "ß",
    "ae": "æ",
    "oe": "œ",
    "OE": "Œ",
    "AE": "Æ",
    "o/": "ø",
    "O/": "Ø",
    "lB": "[",
    "rB": "]",
    "lC": "{",
    "rC": "}",
    "la": "⟨",
    "ra": "⟩",
    "Bq": "„",
    "bq": "‚",
    "r!": "¡",
    "r?": "¿",
    "ct": "¢",
    "Po": "£",
    "Eu": "€",
    "eu": "€",
    "Ye": "¥",
    "sc": "§",
    "ps": "¶",
    "pc": "·",
    "es": "∅",
    "if": "∞",
    "dg": "†",
}
_STRINGS = {"lq": "“", "rq": "”", 'L"': "“", 'R"': "”", "C`": "‘", "C'": "’", "Aq": "'", "R": "®", "Tm": "™"}
_ACCENTS = {
    "'": "\u0301",
    "`": "\u0300",
    ":": "\u0308",
    "^": "\u0302",
    "~": "\u0303",
    ",": "\u0327",
    "o": "\u030a",
}
_MARKED_FONTS = {"B", "I", "BI", "CB", "CI", "CW", "CR", "CBI", "2", "3", "4", "TB", "TI", "HB", "HI"}

_ESCAPE = re.compile(
    r"""\\(?:
        f(?:\[(?P<font_long>[^\]]*)\]|\((?P<font_2>..)|(?P<font_1>.))
      | \((?P<char_2>..)
      | \[(?P<char_long>[^\]]*)\]
      | \*(?:\[(?P<str_long>[^\]]*)\]|\((?P<str_2>..)|(?P<str_1>.))
      | [sS][+-]?(?:\d\d?|\(\d\d|\[\d+\])
      | [nN](?:\[[^\]]*\]|\(..|[+-]?.)
      | [hvwlLoDbxXZHSRCAB](?P<delim>.).*?(?P=delim)
      | [kgmMVYO](?:\[[^\]]*\]|\(..|.)
      | z
      | (?P<plain>.)
    )""",
    re.X,
)
_REQUEST = re.compile(r"(\S+)\s*(.*)")
_COMMENT = re.compile(r'\\["#]')
_PLAIN_ESCAPES = {
    "e": "\\",
    "\\": "\\",
    "-": "-",
    " ": " ",
    "~": " ",
    "0": " ",
    ".": ".",
    "'": "´",
    "`": "`",
    "t": " ",
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SILENT_ESCAPES = frozenset("&|^%:c)!{}/,adru?p")

_BLOCKS = {  # request starting a block of no prose -> request ending it
    "nf": "fi",
    "EX": "EE",
    "Vb": "Ve",
    "TS": "TE",
    "EQ": "EN",
    "PS": "PE",
    "SY": "YS",
}
_BREAKS = {
    "PP",
    "LP",
    "P",
    "Sp",
    "sp",
    "Pp",
    "RS",
    "RE",
    "br",
    "HP",
    "SH",
    "SS",
    "Sh",
    "Ss",
    "TH",
    "in",
    "bp",
}
_TAG_NEXT = {"TP", "TQ"}
_TEXT_MACROS = {"B", "I", "SM", "SB"}
_ALTERNATING = {"BR": "BR", "RB": "RB", "BI": "BI", "IB": "IB", "IR": "IR", "RI": "RI"}
_MDOC_PLAIN = {"Nd", "No", "Dq", "Sq", "Pq", "Qq", "Em", "Ns", "Do", "Dc", "Po", "Pc", "Qo", "Qc", "Eo", "Ec"}
_MDOC_MARKED = _words(
    "Nm Xr Fl Ar Pa Ql Sx Cm Ic Dv Tn Va Ev Er Li Op Oo Oc Ux Bx Fx Nx Ox Lk Mt Fn Fa Ft Cd Ad Sy"
)
_MDOC_NAMES = _MDOC_PLAIN | _MDOC_MARKED | {"Bl", "El", "It", "Bd", "Ed", "Pp", "Sh", "Ss", "Ta"}


def _special(name: str) -> str:
    if name in _SPECIAL:
        return _SPECIAL[name]
    if name.startswith("u") and len(name) >= 5:
        try:
            return "".join(chr(int(part, 16)) for part in name[1:].split("_"))
        except ValueError:
            return ""
    if len(name) == 2 and name[0] in _ACCENTS and name[1].isalpha():
        return unicodedata.normalize("NFC", name[1] + _ACCENTS[name[0]])
    return ""


class _Fonts:
    def __init__(self) -> None:
        self.current = "R"
        self.previous = "R"

    def set(self, font: str) -> None:
        font = font or "P"
        if font == "P":
            self.current, self.previous = self.previous, self.current
        else:
            self.previous, self.current = self.current, "R" if font == "1" else font

    @property
    def marked(self) -> bool:
        return self.current in _MARKED_FONTS


def render(text: str, fonts: _Fonts | None = None, marked: bool | None = None) -> list[tuple[str, bool]]:
    """Text of one roff line with escapes resolved, as (text, in a marked font) chunks.

    ``marked`` forces every chunk's flag (text of a ``.B`` line); otherwise ``\\f`` escapes decide.
    """
    fonts = fonts or _Fonts()
    if "\\" not in text:
        return [(text, fonts.marked if marked is None else marked)] if text else []
    comment = _COMMENT.search(text)
    if comment:
        text = text[: comment.start()]
    chunks: list[tuple[str, bool]] = []
    position = 0

    def emit(piece: str) -> None:
        if piece:
            chunks.append((piece, fonts.marked if marked is None else marked))

    for match in _ESCAPE.finditer(text):
        emit(text[position : match.start()])
        position = match.end()
        groups = match.groupdict()
        font = groups["font_long"] or groups["font_2"] or groups["font_1"]
        if font is not None:
            fonts.set(font.strip())
        elif groups["char_2"] or groups["char_long"]:
            emit(_special(groups["char_2"] or groups["char_long"]))
        elif groups["str_2"] or groups["str_long"] or groups["str_1"]:
            emit(_STRINGS.get(groups["str_2"] or groups["str_long"] or groups["str_1"], ""))
        elif groups["plain"] is not None:
            char = groups["plain"]
            emit(_PLAIN_ESCAPES.get(char, "" if char in _SILENT_ESCAPES else char))
    emit(text[position:])
    return chunks


def _arguments(rest: str) -> list[str]:
    """Split a macro's arguments: blanks separate them, double quotes group them (``""`` is a quote)."""
    args: list[str] = []
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t":
            i += 1
        if i >= n:
            break
        if rest[i] == '"':
            i += 1
            buf = []
            while i < n:
                if rest[i] == '"':
                    if i + 1 < n and rest[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(rest[i])
                i += 1
            args.append("".join(buf))
        else:
            start = i
            while i < n and rest[i] not in " \t":
                i += 1
            args.append(rest[start:i])
    return args


def _letter_count(text: str) -> int:
    return sum(map(str.isalpha, text))


class _Paragraphs:
    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self.lines: list[list[tuple[str, bool]]] = []

    def add(self, chunks: list[tuple[str, bool]]) -> None:
        if any(t.strip() for t, _ in chunks):
            self.lines.append(chunks)

    def append_to_last(self, chunks: list[tuple[str, bool]]) -> None:
        if self.lines:
            self.lines[-1] = self.lines[-1] + chunks
        else:
            self.add(chunks)

    def flush(self) -> None:
        if not self.lines:
            return
        marked = "".join(t for line in self.lines for t, is_marked in line if is_marked)
        plain = "".join(t for line in self.lines for t, is_marked in line if not is_marked)
        text = normalize_space(join_lines("".join(t for t, _ in line) for line in self.lines))
        self.lines = []
        if not text:
            return
        if marked:  # count letters only when some text is marked
            marked_letters, plain_letters = _letter_count(marked), _letter_count(plain)
            if marked_letters > MAX_MARKED_FRACTION * (marked_letters + plain_letters):
                return
        self.paragraphs.append(text)


def roff_paragraphs(source: str) -> list[str]:
    """The prose paragraphs of a man page (roff source text), whitespace-normalised, in order."""
    out = _Paragraphs()
    fonts = _Fonts()
    end_block: str | None = None  # inside a no-prose block ending with this request
    skip_until_dots = False  # inside .de/.ig
    brace_depth = 0  # inside a conditional's \{ ... \} body
    skip_next_line = False  # the tag line after .TP
    next_line_marked: bool | None = None  # .B with no argument marks the next line
    for raw in source.splitlines():
        line = raw.rstrip("\n")
        if skip_until_dots:
            if line.startswith(".."):
                skip_until_dots = False
            continue
        if brace_depth:
            brace_depth += line.count("\\{") - line.count("\\}")
            brace_depth = max(brace_depth, 0)
            continue
        is_request = line[:1] in (".", "'")
        name, rest = "", ""
        if is_request:
            body = line[1:].lstrip(" \t")
            if body.startswith(('\\"', "\\#")) or not body.strip():
                continue
            match = _REQUEST.match(body)
            if match:
                name, rest = match.group(1), match.group(2)
        if end_block is not None:
            if is_request and name == end_block:
                end_block = None
            continue
        if line.startswith(('.\\"', "'\\\"", "\\#")):
            continue
        if skip_next_line and (not is_request or name in _TEXT_MACROS or name in _ALTERNATING):
            skip_next_line = False  # the tag of a tagged paragraph (requests before it keep waiting)
            continue
        if not is_request:
            if not line.strip():
                out.flush()
                continue
            chunks = render(line, fonts, next_line_marked)
            next_line_marked = None
            out.add(chunks)
            continue
        # A request or macro line.
        if name in _BLOCKS:
            out.flush()
            end_block = _BLOCKS[name]
            continue
        if name == "Bd":
            out.flush()
            if re.search(r"-(literal|unfilled|code)", rest):
                end_block = "Ed"
            continue
        if name in ("de", "de1", "am", "ig", "ds1", "am1"):
            skip_until_dots = True
            continue
        if name == "ft":
            fonts.set(rest.strip())
            continue
        if name in ("if", "ie", "el", "while"):
            if "\\{" in rest:
                brace_depth = rest.count("\\{") - rest.count("\\}")
            continue
        if name in _BREAKS or name in ("Ed", "Bl", "El"):
            out.flush()
            if name in ("SH", "SS") and not rest.strip():
                skip_next_line = True  # the heading is on the next line
            continue
        if name in _TAG_NEXT:
            out.flush()
            skip_next_line = True
            continue
        if name in ("IP", "It"):
            out.flush()
            continue
        if name in _TEXT_MACROS:
            if rest.strip():
                out.add(render(" ".join(_arguments(rest)), _Fonts(), name != "SM"))
            else:
                next_line_marked = name != "SM"
            continue
        if name in _ALTERNATING:
            pattern = _ALTERNATING[name]
            pieces: list[tuple[str, bool]] = []
            for i, arg in enumerate(_arguments(rest)):
                pieces += render(arg, _Fonts(), pattern[i % 2] != "R")
            out.add(pieces)
            continue
        if name in ("UE", "ME"):
            out.append_to_last(render(" ".join(_arguments(rest)), _Fonts(), False))
            continue
        if name in _MDOC_PLAIN or name in _MDOC_MARKED:
            words = [w for w in _arguments(rest) if w not in _MDOC_NAMES]
            out.add(render(" ".join(words), _Fonts(), name in _MDOC_MARKED))
            continue
        # Any other request (.ad, .ft, .ds, .so, .UR, .IX, .PD, .Dd, ...) carries no prose.
    out.flush()
    return out.paragraphs
