from polysparse.sparsify.corpora.roff import render, roff_paragraphs

KITE_PAGE = r""".\" An invented page for the tests.
.de Xx
.B text inside a macro definition
..
.TH KITE 1 2024-01-01 "kite 1.0" "User Commands"
.SH NAME
kite \- fly a paper kite
.SH SYNOPSIS
.B kite
[\fB\-\-high\fR] [\fIWIND\fR]
.SH DESCRIPTION
.B kite
lifts a paper kite into the wind.
It needs a string of at least \fIten\fP metres \(em longer in storms. \" a comment
.PP
Kites dislike the trees\(aq branches.
.TP
.B \-\-high
Fly above the roof line.
.IP "\(bu" 4
Children like red kites.
.nf
kite \-\-high 3
kite \-\-low
.fi
.if n \{\
.ds Xy hidden text
Neither is this shown.
.\}
.EX
kite \-\-example
.EE
.SH AUTHOR
Written by an invented person\&.
.UR https://example.invalid
the kite page
.UE .
"""


def test_man_macros_keep_prose_only():
    assert roff_paragraphs(KITE_PAGE) == [
        "kite - fly a paper kite",
        "kite lifts a paper kite into the wind. It needs a string of at least ten metres — longer in storms.",
        "Kites dislike the trees' branches.",
        "Fly above the roof line.",
        "Children like red kites.",
        "Written by an invented person. the kite page.",
    ]


def test_escapes_become_characters_or_nothing():
    line = r"Caf\[u00E9] and caf\('e, \*(lqquoted\*(rq, \s-1small\s0, \fBbold\fR, \h'2m'gap, a\e b\&."
    assert "".join(t for t, _ in render(line)) == "Café and café, “quoted”, small, bold, gap, a\\ b."
    chunks = render(r"plain \fBbold\fP plain \f(CWcode\fR")
    assert [(t, m) for t, m in chunks if t.strip()] == [
        ("plain ", False),
        ("bold", True),
        (" plain ", False),
        ("code", True),
    ]


def test_mostly_bold_paragraphs_are_dropped():
    page = ".PP\n.B kite\n\\fB\\-\\-high\\fR \\fIWIND\\fR\n"
    page += ".PP\nThe \\fBkite\\fR command flies kites in any weather.\n"
    assert roff_paragraphs(page) == ["The kite command flies kites in any weather."]


def test_mdoc_pages():
    page = (
        ".Dd January 1, 2024\n.Dt KITE 1\n.Os\n.Sh NAME\n.Nm kite\n.Nd fly a paper kite\n.Sh DESCRIPTION\n"
        "The\n.Nm\nutility lifts a kite in steady wind.\n.Bd -literal\nkite -x\n.Ed\n.Pp\nIt folds away.\n"
    )
    paragraphs = roff_paragraphs(page)
    assert paragraphs[0] == "kite fly a paper kite"
    assert paragraphs[1] == "The utility lifts a kite in steady wind."
    assert paragraphs[2] == "It folds away."
    assert not any("kite -x" in p for p in paragraphs)


def test_cjk_lines_join_without_spaces():
    assert roff_paragraphs(".PP\n風が強い日は\n凧が高く上がる。\n") == ["風が強い日は凧が高く上がる。"]
