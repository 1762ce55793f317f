"""Per-document quality signals, computed once and stored (OpenCoder's "signals then decisions").

A *signal* is a number (or a flag) measured on one document: its longest line, its share of
alphabetic characters, whether its Python parses... Signals say nothing about keeping the
document; `quality.filters` applies threshold profiles to them later, so a threshold change
re-runs only that cheap decision step and never this one.

Two tiers, both inside Spark's `mapInArrow` on whole Arrow batches:

* **Vectorised** (`vector_signals`): character-class shares, line lengths, hex words, encoded
  blobs, XML and "generated" headers, computed with Arrow compute kernels over the whole batch.
  Their regular expressions run on RE2, which is linear-time by construction, so no input can make
  them backtrack.
* **Per document** (`document_signals`): what needs structure or counting in Python: string
  literals, comments, duplicate lines, repeated word n-grams, the Python `ast`, per-language
  counts, HTML visible text. They run under a per-document time budget (`time_budget_s`): groups
  are tried cheapest first and skipped once the budget is spent, and a SIGPROF timer (when the
  worker runs them on its main thread, as Spark's Python worker does) interrupts a group that
  overruns. Pattern matching there uses only linear-time expressions, and the inputs handed to C
  routines (`re`, `ast.parse`) are capped, since a timer cannot interrupt C code. A document that
  runs out of time gets `timed_out = true` with the signals computed so far; the profiles decide
  what that means (the shipped ones reject it as `signals_timeout`).

Signals are stored in a side table keyed by `doc_id` (the `quality_signals` stage), not as columns
of the document rows: the table is a few percent of the corpus in size, threshold changes re-read
it instead of the content, and the documents flowing on to redaction and the tokenizer are not
widened by ~50 columns nobody downstream reads. `filtered_code` joins it back by `doc_id`.
"""

from __future__ import annotations

import ast
import html.parser
import re
import signal
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from quality.generated import generated_by
from quality.syntax import SyntaxTimeout, syntax_facts

STAGE = "quality_signals"
# Bumped whenever a signal's definition changes, so stored signals can be told apart.
SIGNALS_VERSION = 2


@dataclass(frozen=True, kw_only=True)
class SignalConfig:
    """How `quality_signals` measures documents (recipe section `quality_signals`)."""

    time_budget_s: float = 2.0
    """CPU seconds of per-document (Python tier) work before the remaining signal groups are skipped
    and the document is marked `timed_out`; the vectorised tier is not counted (it is linear)."""
    max_analysed_chars: int = 1_000_000
    """Per-document signals look at most at this many leading characters (the vectorised ones see
    everything); keeps C routines that a timer cannot interrupt bounded."""
    max_words: int = 200_000
    """Word n-gram signals use at most this many leading words."""
    hard_timeout: bool = True
    """Arm a SIGPROF (CPU-time) timer so a group that overruns is interrupted (main thread only)."""


# --------------------------------------------------------------------------------------------
# The signal table: name -> (Arrow type, description). Order is the column order.
# --------------------------------------------------------------------------------------------
_F64, _I64, _BOOL, _STR = pa.float64(), pa.int64(), pa.bool_(), pa.string()

SIGNALS: dict[str, tuple[pa.DataType, str]] = {
    # --- vectorised, every document -----------------------------------------------------
    "num_chars": (_I64, "characters in the document"),
    "num_lines": (_I64, "lines (a final newline does not start a new one)"),
    "max_line_length": (_I64, "characters in the longest line"),
    "mean_line_length": (_F64, "mean characters per line"),
    "frac_alpha": (_F64, "share of characters that are letters (StarCoder's alpha filter)"),
    "frac_alpha_visible": (_F64, "share of non-whitespace characters that are letters (OpenCoder's)"),
    "frac_digit_visible": (_F64, "share of non-whitespace characters that are decimal digits (OpenCoder's)"),
    "frac_digit": (_F64, "share of characters that are decimal digits"),
    "frac_whitespace": (_F64, "share of characters that are whitespace"),
    "frac_hex_chars": (_F64, "share of characters inside 0x-prefixed hexadecimal words"),
    "frac_encoded_chars": (
        _F64,
        "share of characters in base64-like runs (64+), hex byte lists or \\u escape runs",
    ),
    "has_long_encoded_run": (_BOOL, "a base64-like run of 1000+ characters (an embedded blob)"),
    "frac_replacement_chars": (_F64, "share of U+FFFD replacement characters (bad decoding)"),
    "xml_header": (_BOOL, "'<?xml version=' within the first 100 characters (StarCoder's XML filter)"),
    "autogen_header": (_BOOL, "an 'auto-generated' / 'do not edit' marker in the first 500 characters"),
    # --- per document: generated files ----------------------------------------------------------
    "generated_by": (
        _STR,
        "the generator that wrote the file (protobuf, grpc, openapi, lock-file...; see quality.generated)",
    ),
    # --- per document: lines, strings, comments -----------------------------------------------
    "frac_dup_lines": (_F64, "share of non-trivial lines that occur more than once (whitespace ignored)"),
    "frac_assert_lines": (_F64, "share of non-empty lines mentioning 'assert'"),
    "frac_literal_lines": (
        _F64,
        "share of non-empty lines holding only literals (strings, numbers) and punctuation: data tables",
    ),
    "frac_string_chars": (
        _F64,
        "share of characters inside string literals (C-like and Python syntax; docstrings excluded)",
    ),
    "frac_long_string_lines": (_F64, "lines of string literal text holding more than 20 words, per line"),
    "frac_long_word_chars": (
        _F64,
        "share of characters in words of 21+ characters inside strings (URLs excluded)",
    ),
    "frac_comment_chars": (_F64, "share of characters in comments (and Python docstrings)"),
    "frac_prompt_comment_lines": (_F64, "share of lines whose comment says TODO, FIXME or 'your code here'"),
    # --- per document: words ---------------------------------------------------------------
    "num_words": (_I64, "words (runs of letters and digits, lower-cased)"),
    "mean_word_length": (_F64, "mean characters per word"),
    "frac_chars_top_2gram": (_F64, "share of word characters in the most frequent word 2-gram"),
    "frac_chars_top_3gram": (_F64, "share of word characters in the most frequent word 3-gram"),
    "frac_chars_top_4gram": (_F64, "share of word characters in the most frequent word 4-gram"),
    "frac_chars_dup_5gram": (_F64, "share of word characters covered by repeated word 5-grams"),
    "frac_chars_dup_6gram": (_F64, "share of word characters covered by repeated word 6-grams"),
    "frac_chars_dup_7gram": (_F64, "share of word characters covered by repeated word 7-grams"),
    "frac_chars_dup_8gram": (_F64, "share of word characters covered by repeated word 8-grams"),
    "frac_chars_dup_9gram": (_F64, "share of word characters covered by repeated word 9-grams"),
    "frac_chars_dup_10gram": (_F64, "share of word characters covered by repeated word 10-grams"),
    # --- per document: Python (ast) ------------------------------------------------------
    "py_parses": (_BOOL, "the Python source parses with `ast` (null: not Python)"),
    "py_func_ratio": (
        _F64,
        "`def` functions per code line (code lines: not blank, comment or docstring)",
    ),
    "py_simple_func_ratio": (_F64, "functions whose whole body is one `return`, per code line"),
    "py_frac_pass_lines": (_F64, "`pass` statements per code line"),
    "py_frac_import_lines": (_F64, "code lines mentioning 'import', per code line (OpenCoder's definition)"),
    "py_frac_print_lines": (_F64, "`print(...)` calls per code line"),
    "py_no_logic_score": (
        _F64,
        "(functions + classes + imports + returns + class attributes) per code line",
    ),
    "py_no_variables": (
        _BOOL,
        "no variable anywhere: no `name = ...`, no `for name in`, no `def` parameter (OpenCoder's definition)",
    ),
    # --- per document: other languages -----------------------------------------------------
    "c_num_main": (_I64, "`main` function definitions (C, C++)"),
    "c_frac_preprocessor_lines": (_F64, "share of code lines that are preprocessor directives (C, C++)"),
    "frac_print_lines": (
        _F64,
        "share of code lines printing to the console (printf, System.out, console.log, fmt.Print...)",
    ),
    "go_is_test_file": (_BOOL, "a Go `_test.go` file"),
    # --- per document: Java, JavaScript/TypeScript, C/C++, Go (tree-sitter, quality.syntax) ------
    "syntax_parses": (_BOOL, "the tree-sitter parse has no error node (null: no grammar for the language)"),
    "syntax_func_ratio": (_F64, "function definitions (incl. methods, lambdas) per code line"),
    "syntax_no_variables": (_BOOL, "no variable is declared anywhere (locals, fields, package variables)"),
    "syntax_no_logic_score": (
        _F64,
        "(functions + classes + imports + valueless declarations + simple returns) per code line",
    ),
    "html_visible_chars": (_I64, "characters of visible text in an HTML page (scripts and styles excluded)"),
    "html_frac_visible": (_F64, "visible text characters per character of HTML"),
    # --- bookkeeping ------------------------------------------------------------------------
    "timed_out": (_BOOL, "the time budget ran out; later signal groups are null"),
    "signal_errors": (_STR, "groups that raised, with the error (null when none)"),
    "signal_seconds": (_F64, "CPU seconds spent on the per-document tier"),
}
SIGNAL_NAMES = tuple(SIGNALS)

# Languages whose string literals follow C-like / Python quoting, so the string signals apply.
STRING_LANGUAGES = frozenset(
    {
        "python",
        "c",
        "cpp",
        "c-sharp",
        "java",
        "javascript",
        "typescript",
        "go",
        "kotlin",
        "scala",
        "swift",
        "php",
        "ruby",
        "dart",
        "groovy",
        "perl",
        "shell",
        "lua",
        "julia",
        "r",
        "objective-c",
        "objective-c++",
    }
)
HASH_COMMENT_LANGUAGES = frozenset(
    {
        "python",
        "shell",
        "ruby",
        "perl",
        "r",
        "yaml",
        "toml",
        "makefile",
        "cmake",
        "dockerfile",
        "julia",
        "powershell",
        "tcl",
        "awk",
        "ini",
        "elixir",
        "nim",
        "coffeescript",
        "cython",
    }
)
SLASH_COMMENT_LANGUAGES = frozenset(
    {
        "c",
        "cpp",
        "c-sharp",
        "java",
        "javascript",
        "typescript",
        "go",
        "kotlin",
        "scala",
        "swift",
        "rust",
        "php",
        "dart",
        "groovy",
        "css",
        "scss",
        "less",
        "objective-c",
        "objective-c++",
        "cuda",
        "zig",
        "solidity",
        "protocol-buffer",
        "json5",
        "verilog",
        "systemverilog",
    }
)
DASH_COMMENT_LANGUAGES = frozenset({"sql", "lua", "haskell", "ada", "vhdl", "elm", "agda", "idris"})
MARKUP_COMMENT_LANGUAGES = frozenset({"html", "xml", "markdown", "vue", "xslt"})
PRINT_PATTERNS = {
    "c": r"\b(?:printf|fprintf|puts)\s*\(",
    "cpp": r"\b(?:printf|fprintf|puts)\s*\(|\bcout\s*<<|\bcerr\s*<<",
    "java": r"\bSystem\.(?:out|err)\.print",
    "javascript": r"\bconsole\.(?:log|error|warn|info)\s*\(",
    "typescript": r"\bconsole\.(?:log|error|warn|info)\s*\(",
    "go": r"\bfmt\.(?:Print|Fprint)",
    "c-sharp": r"\bConsole\.Write",
}
_PRINT_RES = {lang: re.compile(p) for lang, p in PRINT_PATTERNS.items()}


# --------------------------------------------------------------------------------------------
# Vectorised tier
# --------------------------------------------------------------------------------------------
# RE2 patterns (Arrow's regex engine; linear time whatever the input).
_RE2_HEX_WORD = r"\b0[xX][0-9a-fA-F]+\b"
_RE2_ENCODED = (
    r"[A-Za-z0-9+/=\n]{64,}"  # base64-like run
    r"|(?:\b(?:0x|\\x)?[0-9a-fA-F]{2}(?:,|\b\s*)){8,}"  # lists of hex bytes
    r"|(?:\\u[0-9a-fA-F]{4}){8,}"  # runs of \uXXXX escapes
)
_RE2_LONG_BLOB = r"[A-Za-z0-9+/=\n]{1000}"
# Markers of generated files in their header. Plain "generated by" is left out on purpose: prose
# says it ("a tree can be generated by passing ..."); tools write these stronger phrases.
_RE2_AUTOGEN = (
    r"(?i)auto-?generated|automatically generated|generated automatically|do not edit"
    r"|this file (?:is|was|has been) (?:auto-?|automatically )?generated|code generated by|@generated"
    r"|generated by the protocol buffer compiler"
)
AUTOGEN_HEAD_CHARS = 500


def _count_matched_chars(text: pa.Array, pattern: str) -> pa.Array:
    """Characters covered by non-overlapping matches of `pattern` (length before minus after removal)."""
    return pc.subtract(pc.utf8_length(text), pc.utf8_length(pc.replace_substring_regex(text, pattern, "")))


def _share(count: pa.Array, total: pa.Array) -> pa.Array:
    ratio = pc.divide(pc.cast(count, _F64), pc.cast(total, _F64))
    return pc.if_else(pc.greater(total, 0), ratio, pa.scalar(0.0))


_ASCII_ALPHA = np.zeros(256, dtype=bool)
_ASCII_ALPHA[[*range(65, 91), *range(97, 123)]] = True
_ASCII_DIGIT = np.zeros(256, dtype=bool)
_ASCII_DIGIT[48:58] = True
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def character_classes(content: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Letters, decimal digits and whitespace per document, as Python's `str.isalpha/isdigit/isspace`
    count them. One byte histogram (`np.bincount`) per document over the Arrow UTF-8 buffer covers
    ASCII; only documents with non-ASCII bytes have those few characters classified in Python."""
    content = content.cast(pa.string()) if pa.types.is_large_string(content.type) else content
    n = len(content)
    alpha, digit, space = (np.zeros(n, dtype=np.int64) for _ in range(3))
    _, offsets_buf, data_buf = content.buffers()
    if data_buf is None:
        return alpha, digit, space
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[content.offset : content.offset + n + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8)
    for i in range(n):
        chunk = data[offsets[i] : offsets[i + 1]]
        if not chunk.size:
            continue
        hist = np.bincount(chunk, minlength=256)
        alpha[i] = hist[_ASCII_ALPHA].sum()
        digit[i] = hist[_ASCII_DIGIT].sum()
        space[i] = hist[_ASCII_SPACE].sum()
        if hist[128:].any():
            for ch in _NON_ASCII.findall(content[i].as_py()):
                alpha[i] += ch.isalpha()
                digit[i] += ch.isdecimal()
                space[i] += ch.isspace()
    return alpha, digit, space


def vector_signals(content: pa.Array) -> dict[str, pa.Array]:
    """The vectorised signals of a batch of documents (one Arrow string array in, arrays out)."""
    content = pc.fill_null(content, "")
    if pa.types.is_large_string(content.type):
        content = content.cast(pa.string())
    n_chars = pc.utf8_length(content)
    # Lines: split on "\n", dropping the empty piece a final newline leaves behind.
    body = pc.replace_substring_regex(content, r"\n\z", "")
    lines = pc.split_pattern(body, "\n")
    line_lengths = pc.utf8_length(pc.list_flatten(lines)).to_numpy(zero_copy_only=False)
    counts = pc.list_value_length(lines).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    max_len = np.zeros(len(counts), dtype=np.int64)
    sum_len = np.zeros(len(counts), dtype=np.int64)
    nonempty = counts > 0
    if line_lengths.size:
        starts = offsets[:-1][nonempty]
        max_len[nonempty] = np.maximum.reduceat(line_lengths, starts)
        sum_len[nonempty] = np.add.reduceat(line_lengths, starts)
    num_lines = np.where(pc.equal(n_chars, 0).to_numpy(zero_copy_only=False), 0, counts)
    mean_len = np.divide(sum_len, num_lines, out=np.zeros(len(counts)), where=num_lines > 0)
    alpha, digit, space = character_classes(content)
    visible = pc.subtract(n_chars, pa.array(space))
    head100 = pc.utf8_slice_codeunits(content, 0, 100)
    head = pc.utf8_slice_codeunits(content, 0, AUTOGEN_HEAD_CHARS)
    return {
        "num_chars": pc.cast(n_chars, _I64),
        "num_lines": pa.array(num_lines, _I64),
        "max_line_length": pa.array(max_len, _I64),
        "mean_line_length": pa.array(mean_len, _F64),
        "frac_alpha": _share(pa.array(alpha), n_chars),
        "frac_digit": _share(pa.array(digit), n_chars),
        "frac_whitespace": _share(pa.array(space), n_chars),
        "frac_alpha_visible": _share(pa.array(alpha), visible),
        "frac_digit_visible": _share(pa.array(digit), visible),
        "frac_hex_chars": _share(_count_matched_chars(content, _RE2_HEX_WORD), n_chars),
        "frac_encoded_chars": _share(_count_matched_chars(content, _RE2_ENCODED), n_chars),
        "has_long_encoded_run": pc.match_substring_regex(content, _RE2_LONG_BLOB),
        "frac_replacement_chars": _share(pc.count_substring(content, "\ufffd"), n_chars),
        "xml_header": pc.match_substring(head100, "<?xml version="),
        "autogen_header": pc.match_substring_regex(head, _RE2_AUTOGEN),
    }


# --------------------------------------------------------------------------------------------
# Per-document tier
# --------------------------------------------------------------------------------------------
class BudgetExceeded(Exception):
    """The per-document time budget ran out (raised by the timer or a cooperative check)."""


@dataclass
class _Doc:
    """One document as the per-document groups see it (lines and words computed once)."""

    text: str
    lang: str
    path: str
    lines: list[str]

    @property
    def code_lines(self) -> list[str]:
        return [line for line in self.lines if line.strip()]


# Words as OpenCoder's code documents count them: its normaliser lower-cases and turns punctuation
# (underscores included) into spaces, then a word-punctuation tokenizer splits: runs of letters
# and digits. "__add__(self, other)" gives "add", "self", "other".
_WORD = re.compile(r"[^\W_]+")


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


_URL = re.compile(r"https?://\S+")
# One single-line string literal, unrolled so it cannot backtrack: "...", '...'.
_SINGLE_LINE_STRING = {
    '"': re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'),
    "'": re.compile(r"'[^'\\\n]*(?:\\.[^'\\\n]*)*'"),
}
_QUOTE_START = re.compile(r"['\"`]")


def string_literals(text: str, *, backticks: bool = False) -> list[str]:
    """Bodies of the string literals in `text`: triple-quoted (Python), single-line quoted, and
    (JavaScript/Go) backtick strings. Linear time: every step is a `find` or a line-bounded match."""
    bodies: list[str] = []
    pos, n = 0, len(text)
    while pos < n:
        match = _QUOTE_START.search(text, pos)
        if match is None:
            break
        start = match.start()
        quote = text[start]
        if quote == "`":
            if not backticks:
                pos = start + 1
                continue
            end = text.find("`", start + 1)
            end = n if end < 0 else end
            bodies.append(text[start + 1 : end])
            pos = end + 1
            continue
        triple = quote * 3
        if text.startswith(triple, start):
            end = text.find(triple, start + 3)
            end = n if end < 0 else end
            bodies.append(text[start + 3 : end])
            pos = end + 3
            continue
        single = _SINGLE_LINE_STRING[quote].match(text, start)
        if single is None:  # an apostrophe in a comment, a char that is not a literal: move on
            pos = start + 1
            continue
        bodies.append(single.group()[1:-1])
        pos = single.end()
    return bodies


def _string_signals(doc: _Doc, out: dict[str, Any], docstring_chars: int) -> None:
    """String-literal shares. Python docstrings are documentation, not data: they count as
    comments (as OpenCoder counts them) and are left out of the string share."""
    if doc.lang not in STRING_LANGUAGES:
        return
    bodies = string_literals(doc.text, backticks=doc.lang in ("javascript", "typescript", "go"))
    total = max(1, len(doc.text))
    string_chars = max(0, sum(len(b) + 2 for b in bodies) - docstring_chars)
    long_lines = 0
    long_word_chars = 0
    for body in bodies:
        for piece in body.split("\n"):
            words = piece.split()
            if len(words) > 20:
                long_lines += 1
            for word in words:
                if len(word) > 20 and not _URL.match(word):
                    long_word_chars += len(word)
    out["frac_string_chars"] = min(1.0, string_chars / total)
    out["frac_long_string_lines"] = long_lines / max(1, len(doc.lines))
    out["frac_long_word_chars"] = long_word_chars / total


_HASH_COMMENT = re.compile(r"(?:^|[ \t])#(?![!{])[^\n]*", re.MULTILINE)
_SLASH_LINE_COMMENT = re.compile(r"(?:^|[^:\\])(//[^\n]*)", re.MULTILINE)
_DASH_LINE_COMMENT = re.compile(r"--[^\n]*")
_PROMPT_WORDS = re.compile(r"(?i)\btodo\b|\bfixme\b|your code here")


def _block_comments(text: str, opener: str, closer: str) -> list[str]:
    found, pos = [], 0
    while True:
        start = text.find(opener, pos)
        if start < 0:
            return found
        end = text.find(closer, start + len(opener))
        end = len(text) if end < 0 else end + len(closer)
        found.append(text[start:end])
        pos = end


def comments_of(text: str, lang: str) -> list[str]:
    """Comment texts of a document by its language's comment syntax (an approximation that ignores
    comment markers inside strings; good enough for shares of characters)."""
    found: list[str] = []
    if lang in HASH_COMMENT_LANGUAGES:
        found += [m.group().lstrip(" \t") for m in _HASH_COMMENT.finditer(text)]
    if lang in SLASH_COMMENT_LANGUAGES:
        found += [m.group(1) for m in _SLASH_LINE_COMMENT.finditer(text)]
        found += _block_comments(text, "/*", "*/")
    if lang in DASH_COMMENT_LANGUAGES:
        found += [m.group() for m in _DASH_LINE_COMMENT.finditer(text)]
    if lang in MARKUP_COMMENT_LANGUAGES:
        found += _block_comments(text, "<!--", "-->")
    return found


def _comment_signals(doc: _Doc, out: dict[str, Any], docstring_chars: int) -> None:
    comments = comments_of(doc.text, doc.lang)
    chars = sum(len(c) for c in comments) + docstring_chars
    prompt_lines = sum(1 for c in comments for line in c.split("\n") if _PROMPT_WORDS.search(line))
    out["frac_comment_chars"] = min(1.0, chars / max(1, len(doc.text)))
    out["frac_prompt_comment_lines"] = prompt_lines / max(1, len(doc.lines))


_TRIVIAL_LINES = frozenset(
    {"}", "{", "};", "},", ")", ");", "]", "],", "end", "else:", "pass", "fi", "done", "*/", "*"}
)


# One literal or one piece of punctuation a data table is made of; each alternative starts with a
# different character class and has no nested repetition, so a line is scanned in linear time.
_LITERAL_PIECE = re.compile(
    r"""[rRbBuUfF]{0,2}"[^"\\\n]*(?:\\.[^"\\\n]*)*"|[rRbBuUfF]{0,2}'[^'\\\n]*(?:\\.[^'\\\n]*)*'"""
    r"|-?\b(?:0[xXoObB][0-9a-fA-F_]+|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?)[jJlLuUfF]*\b"
    r"|\b(?:true|false|null|nil|True|False|None)\b"
    r"|[\s\[\](){},:;]+"
)
_HAS_LITERAL = re.compile(r"""["'\d]""")


def _is_literal_line(line: str) -> bool:
    return bool(_HAS_LITERAL.search(line)) and not _LITERAL_PIECE.sub("", line)


def _line_signals(doc: _Doc, out: dict[str, Any]) -> None:
    squeezed = ["".join(line.split()) for line in doc.lines]
    squeezed = [s for s in squeezed if s]
    counts = Counter(squeezed)
    dup = sum(c for s, c in counts.items() if c > 1 and len(s) > 1 and s not in _TRIVIAL_LINES)
    out["frac_dup_lines"] = dup / len(squeezed) if squeezed else 0.0
    out["frac_assert_lines"] = (
        sum(1 for s in squeezed if "assert" in s.lower()) / len(squeezed) if squeezed else 0.0
    )
    nonblank = [line for line in doc.lines if line.strip()]
    out["frac_literal_lines"] = (
        sum(1 for line in nonblank if _is_literal_line(line)) / len(nonblank) if nonblank else 0.0
    )


def _ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """One 64-bit polynomial hash per word n-gram (window of `n` word ids); wraps modulo 2**64."""
    hashes = np.zeros(len(ids) - n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            hashes = hashes * np.uint64(1_000_003) + ids[k : len(ids) - n + 1 + k]
    return hashes


def _word_signals(doc: _Doc, out: dict[str, Any], max_words: int, check: Callable[[], None]) -> None:
    """Gopher-style repetition signals over words, vectorised with numpy: words become ids, each
    n-gram a 64-bit hash, repeats are found with `np.unique` and their coverage with a
    difference array, so a 100k-word file costs milliseconds rather than seconds."""
    words = words_of(doc.text)[:max_words]
    out["num_words"] = len(words)
    if not words:
        out["mean_word_length"] = 0.0
        for n in (2, 3, 4):
            out[f"frac_chars_top_{n}gram"] = 0.0
        for n in range(5, 11):
            out[f"frac_chars_dup_{n}gram"] = 0.0
        return
    # Word ids through a dict: linear, whereas a numpy string array would be as wide as the
    # longest word times the word count (a minified file has words of 100k characters).
    vocabulary: dict[str, int] = {}
    ids = np.fromiter(
        (vocabulary.setdefault(w, len(vocabulary) + 1) for w in words), dtype=np.uint64, count=len(words)
    )
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    total = int(lengths.sum())
    out["mean_word_length"] = total / len(words)
    # Characters of every window of n words, by prefix sums.
    prefix = np.concatenate([[0], np.cumsum(lengths)])
    for n in (2, 3, 4):
        if len(words) < n:
            out[f"frac_chars_top_{n}gram"] = 0.0
            continue
        _, first, counts = np.unique(_ngram_hashes(ids, n), return_index=True, return_counts=True)
        best = int(counts.max())
        if best <= 1:  # no n-gram repeats: nothing is "top" (as OpenCoder/RedPajama define it)
            out[f"frac_chars_top_{n}gram"] = 0.0
            continue
        # Among equally frequent n-grams the one seen first, as Counter.most_common picks it:
        # ties are common in short files and the n-grams' lengths differ.
        start = int(first[counts == best].min())
        chars = int(prefix[start + n] - prefix[start])
        out[f"frac_chars_top_{n}gram"] = min(1.0, chars * best / total)
    check()
    for n in range(5, 11):
        if len(words) < n:
            out[f"frac_chars_dup_{n}gram"] = 0.0
            continue
        _, inverse_n, counts = np.unique(_ngram_hashes(ids, n), return_inverse=True, return_counts=True)
        repeated = np.flatnonzero(counts[inverse_n] > 1)
        delta = np.zeros(len(words) + 1, dtype=np.int64)
        np.add.at(delta, repeated, 1)
        np.add.at(delta, repeated + n, -1)
        covered = np.cumsum(delta[:-1]) > 0
        out[f"frac_chars_dup_{n}gram"] = int(lengths[covered].sum()) / total
        check()


_BLOCK_FIELDS = ("body", "orelse", "finalbody")
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass
class PythonFacts:
    """Statement-level counts of a parsed module (a walk over statements only: expressions are
    ten times as many nodes and none of these counts needs them)."""

    functions: int = 0
    simple_functions: int = 0
    classes: int = 0
    imports: int = 0
    passes: int = 0
    prints: int = 0
    returns: int = 0
    class_attributes: int = 0
    variables: int = 0
    docstring_chars: int = 0
    # Lines of string-expression statements (docstrings and the like): documentation, not code.
    doc_lines: set[int] = field(default_factory=set)


def python_facts(tree: ast.Module) -> PythonFacts:
    """The counts OpenCoder's Python rules are built on, defined as in its released code unless a
    profile lists a deviation: a *simple* function's body is a single `return` (a docstring makes
    two statements), *variables* are plain names assigned with `=`, plain `for` targets and the
    parameters of `def` functions (tuple unpacking, annotated assignments and `async def`
    parameters do not count, as in the released visitor), a *class attribute* is a name assigned
    directly in a class body."""
    facts = PythonFacts()
    stack: list[tuple[list[ast.stmt], str]] = [(tree.body, "scope")]
    while stack:
        body, kind_of_body = stack.pop()
        if kind_of_body != "block" and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                facts.docstring_chars += len(value.value) + 6
        for node in body:
            kind = type(node)
            if kind is ast.Expr:
                value = node.value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    facts.doc_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
                elif (
                    isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Name)
                    and value.func.id == "print"
                ):
                    facts.prints += 1
                continue
            if kind in _FUNCTIONS:
                # As released, only `def` functions count (its visitors have no visit of
                # AsyncFunctionDef); an `async def` body is still walked.
                if kind is ast.FunctionDef:
                    facts.functions += 1
                    facts.simple_functions += len(node.body) == 1 and type(node.body[0]) is ast.Return
                    facts.variables += len(node.args.args)
                stack.append((node.body, "scope"))
                continue
            if kind is ast.ClassDef:
                facts.classes += 1
                for item in node.body:
                    if type(item) is ast.Assign:
                        facts.class_attributes += sum(isinstance(t, ast.Name) for t in item.targets)
                    elif type(item) is ast.AnnAssign and isinstance(item.target, ast.Name):
                        facts.class_attributes += 1
                stack.append((node.body, "class"))
                continue
            if kind is ast.Import or kind is ast.ImportFrom:
                facts.imports += 1
            elif kind is ast.Pass:
                facts.passes += 1
            elif kind is ast.Return:
                facts.returns += 1
            elif kind is ast.Assign:
                facts.variables += sum(isinstance(t, ast.Name) for t in node.targets)
            elif kind is ast.For:
                facts.variables += isinstance(node.target, ast.Name)
            for block_field in _BLOCK_FIELDS:
                block = getattr(node, block_field, None)
                if block:
                    stack.append((block, "block"))
            for handler in getattr(node, "handlers", ()) or ():
                stack.append((handler.body, "block"))
            for case in getattr(node, "cases", ()) or ():
                stack.append((case.body, "block"))
    return facts


def parse_python(text: str) -> ast.Module | None:
    """The module's tree, or None when it does not parse (syntax errors, too deep, too big)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences and the like are not our business
        try:
            return ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
            return None


def python_code_lines(lines: list[str], doc_lines: set[int]) -> list[str]:
    """Lines holding code: not blank, not only a comment, not part of a docstring (OpenCoder's
    denominator: its lexer strips comments and docstrings, then counts the non-empty lines)."""
    return [
        line
        for number, line in enumerate(lines, 1)
        if number not in doc_lines and (stripped := line.lstrip()) and not stripped.startswith("#")
    ]


def _code_line_signals(code_lines: list[str], out: dict[str, Any]) -> None:
    """Duplicate and assert lines over code lines, as OpenCoder defines them: a line repeated
    (whitespace ignored) counts unless it is one character or `},`."""
    if not code_lines:
        return
    squeezed = ["".join(line.split()) for line in code_lines]
    counts = Counter(squeezed)
    duplicated = sum(c for s, c in counts.items() if c > 1 and len(s) > 1 and s != "},")
    out["frac_dup_lines"] = duplicated / len(squeezed)
    out["frac_assert_lines"] = sum(1 for line in code_lines if "assert" in line.lower()) / len(code_lines)


def _python_signals(doc: _Doc, out: dict[str, Any], tree: ast.Module | None) -> int:
    """Sets the py_* signals; returns the docstring characters (counted as comments)."""
    out["py_parses"] = tree is not None
    if tree is None:
        return 0
    facts = python_facts(tree)
    code_lines = python_code_lines(doc.lines, facts.doc_lines)
    code = len(code_lines)
    # OpenCoder's import count, as released: code lines mentioning "import" (statements, and also
    # `importlib` calls); a multi-line `from x import (...)` is one such line.
    import_lines = sum(1 for line in code_lines if "import" in line.lower())
    # For Python the line rules see the code lines as OpenCoder does (comments and docstrings
    # left out), replacing the all-lines values of the "lines" group.
    _code_line_signals(code_lines, out)
    out["py_no_variables"] = facts.variables == 0
    if code == 0:  # only comments and docstrings: no ratio is defined (OpenCoder: null as well)
        return facts.docstring_chars
    out["py_func_ratio"] = facts.functions / code
    out["py_simple_func_ratio"] = facts.simple_functions / code
    out["py_frac_pass_lines"] = facts.passes / code
    out["py_frac_import_lines"] = min(1.0, import_lines / code)
    out["py_frac_print_lines"] = facts.prints / code
    no_logic = facts.functions + facts.classes + import_lines + facts.returns + facts.class_attributes
    out["py_no_logic_score"] = no_logic / code
    return facts.docstring_chars


_C_MAIN = re.compile(r"\b(?:int|void)\s+main\s*\(")
_PREPROCESSOR = re.compile(r"^\s*#\s*[a-z]")


def _syntax_signals(doc: _Doc, out: dict[str, Any]) -> None:
    try:
        facts = syntax_facts(doc.text, doc.lang)
    except SyntaxTimeout as error:
        raise BudgetExceeded(str(error)) from error
    if facts is None:
        return
    out["syntax_parses"] = not facts.has_error
    out["syntax_no_variables"] = facts.variables == 0
    if facts.code_lines == 0:
        return
    out["syntax_func_ratio"] = facts.functions / facts.code_lines
    no_logic = facts.functions + facts.classes + facts.imports + facts.bare_variables + facts.simple_returns
    out["syntax_no_logic_score"] = no_logic / facts.code_lines


def _language_signals(doc: _Doc, out: dict[str, Any]) -> None:
    code = doc.code_lines
    if doc.lang in ("c", "cpp"):
        out["c_num_main"] = len(_C_MAIN.findall(doc.text))
        out["c_frac_preprocessor_lines"] = sum(1 for line in code if _PREPROCESSOR.match(line)) / max(
            1, len(code)
        )
    pattern = _PRINT_RES.get(doc.lang)
    if pattern is not None:
        out["frac_print_lines"] = sum(1 for line in code if pattern.search(line)) / max(1, len(code))
    if doc.lang == "go":
        out["go_is_test_file"] = doc.path.endswith("_test.go")


class _VisibleText(html.parser.HTMLParser):
    """Collects text a browser would show: everything outside tags, scripts, styles and comments."""

    _HIDDEN = frozenset({"script", "style", "noscript", "template", "head", "title"})

    def __init__(self, check: Callable[[], None]) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden_depth = 0
        self.chars = 0
        self._check = check

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._HIDDEN:
            self.hidden_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self.hidden_depth:
            self.hidden_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden_depth:
            self.chars += len(data.strip())
        self._check()


def _html_signals(doc: _Doc, out: dict[str, Any], check: Callable[[], None]) -> None:
    if doc.lang != "html":
        return
    parser = _VisibleText(check)
    try:
        parser.feed(doc.text)
        parser.close()
    except AssertionError:  # html.parser gives up on some malformed markup; count what it saw
        pass
    out["html_visible_chars"] = parser.chars
    out["html_frac_visible"] = parser.chars / max(1, len(doc.text))


class _Budget:
    """A per-document deadline in CPU time of this process (so a loaded machine does not turn
    ordinary files into time-outs, and reruns decide alike): cooperative `check()` calls plus,
    where possible, a SIGPROF timer that interrupts pure-Python loops which overrun between
    checks."""

    def __init__(self, seconds: float, hard: bool) -> None:
        self.seconds = seconds
        self.hard = (
            hard and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        )
        self.active = False
        self.started = 0.0
        self._previous: Any = None

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if self.active:
            self.active = False  # one interruption per document, never a second one mid-cleanup
            raise BudgetExceeded(f"over {self.seconds:g}s")

    def __enter__(self) -> _Budget:
        self.started = time.process_time()
        self.active = True
        if self.hard:
            self._previous = signal.signal(signal.SIGPROF, self._on_alarm)
            signal.setitimer(signal.ITIMER_PROF, max(self.seconds, 1e-3))
        return self

    def __exit__(self, *exc: Any) -> None:
        self.active = False
        if self.hard:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, self._previous or signal.SIG_DFL)

    def elapsed(self) -> float:
        return time.process_time() - self.started

    def check(self) -> None:
        if self.elapsed() > self.seconds:
            raise BudgetExceeded(f"over {self.seconds:g}s")


def document_signals(
    content: str, lang: str | None, path: str | None, config: SignalConfig
) -> dict[str, Any]:
    """The per-document signals of one document (None where a signal does not apply)."""
    out: dict[str, Any] = {}
    errors: list[str] = []
    text = content[: config.max_analysed_chars]
    lang = (lang or "unknown").lower()
    doc = _Doc(text=text, lang=lang, path=path or "", lines=text.splitlines())
    docstring_chars = 0
    timed_out = False
    with _Budget(config.time_budget_s, config.hard_timeout) as budget:
        groups: list[tuple[str, Callable[[], None]]] = [
            ("generated", lambda: out.__setitem__("generated_by", generated_by(text, doc.path))),
            ("lines", lambda: _line_signals(doc, out)),
        ]
        if lang in ("python", "cython"):
            # A truncated file would fail to parse for the wrong reason: such files get no verdict.
            def parse() -> None:
                nonlocal docstring_chars
                if len(content) <= config.max_analysed_chars:
                    docstring_chars = _python_signals(doc, out, parse_python(text))

            groups.append(("python", parse))
        groups += [
            ("comments", lambda: _comment_signals(doc, out, docstring_chars)),
            ("strings", lambda: _string_signals(doc, out, docstring_chars)),
            ("language", lambda: _language_signals(doc, out)),
            ("syntax", lambda: _syntax_signals(doc, out)),
            ("html", lambda: _html_signals(doc, out, budget.check)),
            ("words", lambda: _word_signals(doc, out, config.max_words, budget.check)),
        ]
        name = groups[0][0]
        try:
            for name, group in groups:
                try:
                    budget.check()
                    group()
                except BudgetExceeded:
                    raise
                except Exception as error:  # noqa: BLE001  (one broken group must not lose the document)
                    errors.append(f"{name}: {type(error).__name__}: {error}"[:300])
        except BudgetExceeded:
            # Caught outside the loop as well: the timer's signal can land between two bytecodes
            # that no inner handler covers (seen on a 2 MB file right at the call of a group).
            timed_out = True
            errors.append(f"{name}: time budget of {config.time_budget_s:g}s exceeded")
        seconds = budget.elapsed()
    out["timed_out"] = timed_out
    out["signal_errors"] = "; ".join(errors) or None
    out["signal_seconds"] = round(seconds, 6)
    return out


# --------------------------------------------------------------------------------------------
# Spark
# --------------------------------------------------------------------------------------------
_KEY_FIELDS = [("doc_id", _STR), ("lang", _STR), ("size_bytes", _I64)]


@lru_cache(maxsize=1)
def arrow_schema() -> pa.Schema:
    """Arrow schema of the signals table: the key columns, then every signal in `SIGNALS` order."""
    return pa.schema(
        [pa.field(n, t) for n, t in _KEY_FIELDS] + [pa.field(n, t) for n, (t, _) in SIGNALS.items()]
    )


def spark_schema() -> T.StructType:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema())


def signal_batch(batch: pa.RecordBatch, config: SignalConfig) -> pa.RecordBatch:
    """Signals of one Arrow batch with columns doc_id, content, lang, path, size_bytes."""
    columns = vector_signals(batch.column("content"))
    contents = batch.column("content").to_pylist()
    langs = batch.column("lang").to_pylist()
    paths = batch.column("path").to_pylist()
    rows = [
        document_signals(c or "", lang, p, config) for c, lang, p in zip(contents, langs, paths, strict=True)
    ]
    schema = arrow_schema()
    arrays = [batch.column("doc_id"), batch.column("lang"), pc.cast(batch.column("size_bytes"), _I64)]
    for name in SIGNAL_NAMES:
        if name in columns:
            arrays.append(pc.cast(columns[name], schema.field(name).type))
        else:
            arrays.append(pa.array([row.get(name) for row in rows], schema.field(name).type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def compute_signals(documents: DataFrame, config: SignalConfig, partitions: int | None = None) -> DataFrame:
    """The signals table (doc_id, lang, size_bytes, signals...) of a document DataFrame."""
    frame = documents.select("doc_id", "content", "lang", "path", "size_bytes")
    if partitions:
        frame = frame.repartition(partitions, "doc_id")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield signal_batch(batch, config)

    return frame.mapInArrow(run, spark_schema())


def signal_partitions(rows: int, spark_parallelism: int, rows_per_partition: int = 1000) -> int:
    """Partitions for the signal job: enough to spread the cores, small enough that one slow file
    does not hold up a large share of the corpus."""
    return max(spark_parallelism, -(-rows // rows_per_partition))


def empty_rejects(spark) -> DataFrame:
    from quality.schema import REJECT_SCHEMA

    return spark.createDataFrame([], REJECT_SCHEMA)


def summarize_signals(signals: DataFrame) -> dict[str, Any]:
    """Counts worth reporting about a signals table: time-outs, errors, time spent."""
    row = signals.agg(
        F.count("*").alias("documents"),
        F.sum(F.col("timed_out").cast("int")).alias("timed_out"),
        F.sum(F.col("signal_errors").isNotNull().cast("int")).alias("with_errors"),
        F.sum("signal_seconds").alias("python_seconds"),
        F.max("signal_seconds").alias("slowest_document_seconds"),
    ).collect()[0]
    return {k: (float(v) if isinstance(v, float) else int(v or 0)) for k, v in row.asDict().items()}


def signal_docs() -> str:
    """A Markdown table describing every signal (for asset descriptions and reports)."""
    lines = ["| signal | type | meaning |", "|---|---|---|"]
    lines += [f"| `{n}` | {t} | {d} |" for n, (t, d) in SIGNALS.items()]
    return "\n".join(lines)
