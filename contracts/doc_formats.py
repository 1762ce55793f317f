"""StarCoder's structured document formats: notebooks, commits and issues written as text with
sentinel markers, shared by the sources that write them (`quality.notebooks`, `quality.commits`,
`quality.gh_issues`) and the shard pipeline that turns each marker into its special token
(`training.shards`).

A document row says which format its content is in (column `doc_format`). Plain source files have
none (null) and their text is encoded as text, whatever it spells. A document in a structured
format is cut at its format's markers, and only there: each marker becomes one special token id.
The sources reject any document whose own text (code, message, comment) already spells one of its
format's markers, so a cut can never fall inside user text.

Imports neither Spark nor Dagster (the shard builder runs in a slim GPU image).
"""

from __future__ import annotations

import re

JUPYTER_START = "<jupyter_start>"
JUPYTER_TEXT = "<jupyter_text>"
JUPYTER_CODE = "<jupyter_code>"
JUPYTER_OUTPUT = "<jupyter_output>"
EMPTY_OUTPUT = "<empty_output>"
COMMIT_BEFORE = "<commit_before>"
COMMIT_MSG = "<commit_msg>"
COMMIT_AFTER = "<commit_after>"
ISSUE_START = "<issue_start>"
ISSUE_COMMENT = "<issue_comment>"
ISSUE_CLOSED = "<issue_closed>"

JUPYTER_SCRIPT = "jupyter_script"
"""A notebook as a jupytext script of its language: ordinary code, no markers."""
JUPYTER_STRUCTURED = "jupyter_structured"
"""A notebook as <jupyter_start> then <jupyter_text> / <jupyter_code> / <jupyter_output> cells."""
COMMIT = "commit"
"""<commit_before>old code<commit_msg>message<commit_after>new code."""
ISSUE = "issue"
"""<issue_start>Title: ...<issue_comment>...<issue_closed>, speakers as username_N."""

# Format -> the markers its text is cut at (the special tokens it is tokenized with).
MARKERS: dict[str, tuple[str, ...]] = {
    JUPYTER_SCRIPT: (),
    JUPYTER_STRUCTURED: (JUPYTER_START, JUPYTER_TEXT, JUPYTER_CODE, JUPYTER_OUTPUT, EMPTY_OUTPUT),
    COMMIT: (COMMIT_BEFORE, COMMIT_MSG, COMMIT_AFTER),
    ISSUE: (ISSUE_START, ISSUE_COMMENT, ISSUE_CLOSED),
}
ALL_MARKERS: tuple[str, ...] = tuple(m for markers in MARKERS.values() for m in markers)

_SPLITTERS = {
    name: re.compile("(" + "|".join(re.escape(m) for m in markers) + ")")
    for name, markers in MARKERS.items()
    if markers
}


def markers_in(text: str, doc_format: str) -> list[str]:
    """The markers of `doc_format` that `text` (a piece of user text) already spells."""
    return [m for m in MARKERS[doc_format] if m in text]


def split_markers(content: str, doc_format: str | None) -> list[str]:
    """`content` cut at its format's markers: text pieces and markers, in order (markers are the
    elements that equal one of `MARKERS[doc_format]`). Plain documents come back whole."""
    splitter = _SPLITTERS.get(doc_format or "")
    if splitter is None:
        return [content]
    return [piece for piece in splitter.split(content) if piece]
