"""Turning the bytes of a file into document text, or saying exactly why not.

The rules, in the order they are applied (the first that fires is the reject reason):
  too_large          over the recipe's byte limit (8 MB by default, as OpenCoder and StarCoder)
  unknown_extension  neither the name nor the extension maps to a language
  empty              zero bytes, or only whitespace
  binary             a NUL byte: no text format the corpus wants contains one
  undecodable        not UTF-8, and no PEP 263 coding cookie names a codec that decodes it
Text is normalised to UTF-8 without a byte-order mark; nothing else about it is changed.
"""

from __future__ import annotations

import codecs
import re

DEFAULT_MAX_BYTES = 8 * 1024 * 1024

# PEP 263: a coding declaration in the first two lines of a Python source file.
_CODING_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.MULTILINE)


class Rejected(Exception):
    """A file that must not become a document; `reason` is a stable rule name."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def declared_encoding(data: bytes) -> str | None:
    """The codec a PEP 263 cookie names in the first two lines, if it is one Python knows."""
    head = b"\n".join(data.split(b"\n", 2)[:2])
    match = _CODING_COOKIE.search(head)
    if not match:
        return None
    try:
        return codecs.lookup(match.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None


def decode_text(data: bytes) -> str:
    """UTF-8 text of `data`, or `Rejected` with the reason; see the module docstring for the order."""
    if not data.strip():
        raise Rejected("empty", "no content" if not data else "whitespace only")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise Rejected("binary", f"NUL byte at offset {nul}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        codec = declared_encoding(data)
        if codec is None or codec == "utf-8":
            raise Rejected(
                "undecodable",
                f"not UTF-8 ({utf8_error.reason} at byte {utf8_error.start}) and no coding cookie",
            ) from None
        try:
            text = data.decode(codec)
        except UnicodeDecodeError as error:
            raise Rejected(
                "undecodable", f"declared {codec} but {error.reason} at byte {error.start}"
            ) from None
    return text.removeprefix("\ufeff")
