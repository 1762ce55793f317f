"""Web pages: HTML from folders, JSONL or WARC files to document rows, on Spark.

Every input unit becomes exactly one row, kept (a page with its main text) or rejected (a reason):
  * a folder input contributes one unit per `.html`/`.htm` file (after include/exclude globs);
  * a JSONL input one per non-blank line (`url` + `html`, optionally `date` and `licence`);
  * a WARC input one per `response` or `resource` record (request, metadata, warcinfo and revisit
    records hold no page and are not units). A WARC file that breaks off part-way gives one
    `corrupt_warc` row for the rest of the file.

The rules, in the order they are applied (the first that fires is the reject reason):
  malformed_json   a JSONL line that is not a JSON object
  corrupt_warc     a WARC file that cannot be read further (one row for the rest of the file)
  truncated_record a WARC record whose body is shorter than its declared Content-Length (a file
                   that breaks off mid-record reads without an error, short)
  missing_url      no URL (JSONL `url`, WARC-Target-URI)
  bad_url          a URL without an http(s) or file scheme, or without a host
  http_status      a WARC response whose HTTP status is not 200
  not_html         a content type that is not HTML, bytes without a single HTML tag in the
                   first 64 KB, or markup the parser cannot make a document of
  too_large        more HTML bytes than `max_page_bytes` (folder files over it are never read)
  missing_html     a JSONL line without `html`
  empty            zero bytes or whitespace only
  binary           a NUL byte
  undecodable      neither the declared charset nor UTF-8 decodes it
  unreadable       the file vanished or could not be read after listing
  extraction_error the extractor raised
  no_main_text     the extractor found no main content (navigation-only or index pages)
  too_short        main text shorter than `min_text_chars`
  duplicate_url    a second page with a URL already taken (the first input, then key, wins)

Main text comes from trafilatura (boilerplate, navigation, headers and footers dropped) as
Markdown. Before extraction every `<pre>` block is reduced to its plain text, so that the extractor
renders it as a fenced code block whatever highlighting markup it carried: documentation sites
mark code with `<pre>` and nothing else, and trafilatura's own test for "is this pre code" misses
DocBook's `programlisting`. Code blocks are counted on the extracted text, which is what the
measurement labels (`label`) are built from; see `label_for`.

Rows follow the document contract (`source = 'web'`, `url` set, `lang = 'text'` so the quality
filters judge them with their text profile) plus the web columns in `WEB_FIELDS`. `doc_id` is
`make_doc_id('web', url)`: the URL is a page's identity, whichever input carried it.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

import fsspec
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from quality.ingest import ListedFile, list_folder
from quality.recipe import SourceConfig
from quality.schema import DOCUMENT_COLUMNS, DOCUMENT_FIELDS, content_sha256, make_doc_id
from quality.textio import Rejected

STAGE = "web_pages"
# The source name inside every web doc_id: a URL names the same page whichever input carried it.
WEB_SOURCE = "web"
LABEL_CODE, LABEL_OTHER = "code", "other"

# Columns web rows carry beyond the document contract, in order.
WEB_FIELDS: list[T.StructField] = [
    T.StructField("domain", T.StringType(), True),  # host of the URL, lower case, no port, no "www."
    T.StructField("page_lang", T.StringType(), True),  # natural language: ISO 639-1 code or "und"
    T.StructField("title", T.StringType(), True),
    T.StructField("code_blocks", T.IntegerType(), True),  # fenced code blocks in the main text
    T.StructField("code_chars", T.LongType(), True),  # characters inside those blocks
    T.StructField("text_chars", T.LongType(), True),  # characters of the whole main text
    T.StructField("html_bytes", T.LongType(), True),  # size of the page before extraction
    T.StructField("label", T.StringType(), True),  # measurement label: code / other / null (see label_for)
    T.StructField("web_input", T.StringType(), True),  # name of the input that carried the page
]
WEB_COLUMNS = [f.name for f in WEB_FIELDS]
WEB_PAGE_COLUMNS = DOCUMENT_COLUMNS + WEB_COLUMNS

# A candidate: every page column (nullable) plus the verdict and what orders duplicate URLs.
CANDIDATE_SCHEMA = T.StructType(
    [T.StructField(f.name, f.dataType, True) for f in DOCUMENT_FIELDS + WEB_FIELDS]
    + [
        T.StructField("reason", T.StringType(), True),
        T.StructField("detail", T.StringType(), True),
        T.StructField("input_index", T.IntegerType(), True),
        T.StructField("input_key", T.StringType(), True),
    ]
)

_LISTING_SCHEMA = T.StructType(
    [
        T.StructField("input_index", T.IntegerType(), False),
        T.StructField("file_url", T.StringType(), False),
        T.StructField("relpath", T.StringType(), False),
        T.StructField("size", T.LongType(), False),
        T.StructField("mtime", T.DoubleType(), True),
    ]
)

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
WARC_SUFFIXES = (".warc", ".warc.gz", ".arc.gz")


class WebInputError(ValueError):
    """An input that cannot be read at all (missing, or holding no file of its kind)."""


@dataclass(frozen=True, kw_only=True)
class WebInputConfig:
    """One place HTML pages are read from."""

    name: str
    """Short, stable name recorded in `web_input` (doc ids come from the URL, not from this)."""
    kind: Literal["folder", "jsonl", "warc"]
    """`folder`: every HTML file below `path`; `jsonl`: lines with `url` and `html`; `warc`: WARC
    response/resource records (`path` may be one file or a folder of them)."""
    path: str
    """Local path or fsspec URL."""
    url_base: str | None = None
    """Folder inputs: a page's URL is `url_base` + its path below `path` (after `url_rewrite`).
    Without it the page's own `<link rel=canonical>` is used, else a `file://` URL."""
    url_rewrite: tuple[str, ...] = ()
    """Folder inputs: `[regex, replacement, regex, replacement, ...]` applied in order (each at
    most once) to the relative path before `url_base` is prefixed (e.g. the Debian handbook's
    `fr-FR/apt.html` -> `fr-FR/stable/apt.html`)."""
    include: tuple[str, ...] = ("**/*.html", "**/*.htm")
    """Folder inputs: globs over the relative path; a file must match one."""
    exclude: tuple[str, ...] = ()
    """Folder inputs: globs that remove files `include` admitted."""
    max_pages: int | None = None
    """Folder inputs: keep at most this many files, chosen by a hash of their relative path (the
    same files on every run and machine); None keeps all."""
    licence: str | None = None
    """Licence recorded for every page of this input (a JSONL `licence` field overrides it)."""

    def __post_init__(self) -> None:
        if self.kind not in ("folder", "jsonl", "warc"):
            raise ValueError(
                f"web input {self.name!r}: kind must be folder, jsonl or warc, not {self.kind!r}"
            )
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"web input name {self.name!r} must be letters, digits, '_', '.' or '-'")
        if len(self.url_rewrite) % 2:
            raise ValueError(f"web input {self.name!r}: url_rewrite is [regex, replacement, ...] (pairs)")

    def folder_source(self) -> SourceConfig:
        """A folder input as the code ingest's folder source, so both list files alike."""
        return SourceConfig(
            name=self.name, kind="folder", path=self.path, include=self.include, exclude=self.exclude
        )


@dataclass(frozen=True, kw_only=True)
class WebIngestConfig:
    """How `web_pages` turns HTML into documents."""

    max_page_bytes: int = 4 * 1024 * 1024
    """Pages with more HTML bytes than this are rejected as `too_large` without extraction."""
    min_text_chars: int = 200
    """Pages whose main text is shorter are rejected as `too_short` (menus, redirects, indexes)."""
    extraction_focus: Literal["precision", "balanced", "recall"] = "recall"
    """trafilatura's focus. `recall` keeps whole documentation pages together with their code
    blocks; `balanced` lets its readability fallback win on DocBook pages, which returns the text
    without the code fences (measured on the Debian handbook: 0 of 7 blocks kept)."""
    label_min_code_blocks: int = 2
    """Measurement label `code`: at least this many fenced code blocks in the main text..."""
    label_min_code_share: float = 0.10
    """...holding at least this share of its characters. A page without any code block is
    `other`; pages in between are left unlabelled (null), so the label set holds clear cases."""
    label_max_inline_code_per_1000_chars: float = 2.0
    """An `other` page must also have fewer inline code spans than this per 1,000 characters of
    main text: API reference pages often have no code block but name code in every sentence
    (the hand check found such pages among the rule's `other`); they are left unlabelled."""
    files_per_partition: int = 200
    """Folder inputs: files per Spark task (WARC and JSONL files are one task each)."""


# ----------------------------------------------------------------------------------------------
# URLs and languages
# ----------------------------------------------------------------------------------------------


def domain_of(url: str) -> str | None:
    """The host a page belongs to: lower case, without port, credentials or a leading `www.`."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host:
        return "localhost" if url.startswith("file:") else None
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def check_url(url: str | None) -> str:
    """The URL itself, or `Rejected` (`missing_url`, `bad_url`)."""
    if url is None or not str(url).strip():
        raise Rejected("missing_url", "no URL")
    url = str(url).strip()
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise Rejected("bad_url", f"{error}: {url[:200]}") from None
    if parts.scheme not in ("http", "https", "file"):
        raise Rejected("bad_url", f"scheme {parts.scheme!r} is not http(s) or file: {url[:200]}")
    if parts.scheme != "file" and not parts.hostname:
        raise Rejected("bad_url", f"no host: {url[:200]}")
    return url


_LANG_ATTR = re.compile(rb"""<(?:html|body)\b[^>]*?\b(?:xml:)?lang\s*=\s*["']?([A-Za-z]{2,3})""", re.I)
_ANY_LANG_ATTR = re.compile(rb"""\b(?:xml:)?lang\s*=\s*["']([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)?["']""", re.I)
_META_LANG = re.compile(
    rb"""<meta\b[^>]*http-equiv\s*=\s*["']?content-language["']?[^>]*content\s*=\s*["']?([A-Za-z]{2,3})""",
    re.I,
)
# Content negotiation file names such as debian.org's `ch01.en.html`, and locale folders such
# as the Debian handbook's `/fr-FR/` (language-REGION only: a bare `/de/` may be anything).
_URL_LANG = re.compile(r"\.([a-z]{2})\.x?html?$|/([a-z]{2})-[A-Z]{2}/")


def page_language(head: bytes, url: str) -> str:
    """Natural language of a page from its markup (`<html lang>`, `content-language`, the first
    `lang` attribute), else from its URL (`.xx.html`, `/xx-YY/`), else `und`."""
    for pattern in (_LANG_ATTR, _META_LANG, _ANY_LANG_ATTR):
        match = pattern.search(head)
        if match:
            return match.group(1).decode("ascii").lower()
    match = _URL_LANG.search(urlsplit(url).path if "://" in url else url)
    return (match.group(1) or match.group(2)) if match else "und"


# ----------------------------------------------------------------------------------------------
# Bytes to text
# ----------------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml\b[^>]*encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)
_HTML_TAG = re.compile(
    r"<\s*(?:!doctype\s+html|html|head|body|div|p|pre|article|main|section|title|table|h[1-6])\b", re.I
)


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None


def decode_html(data: bytes, declared: str | None = None) -> str:
    """Text of an HTML page: byte-order mark, then the transport's charset (`declared`), then a
    `<meta charset>`/XML declaration in the first 4 KB, then UTF-8. `Rejected` when none decodes."""
    if not data.strip():
        raise Rejected("empty", "no content" if not data else "whitespace only")
    nul = data.find(b"\x00")
    if nul >= 0 and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise Rejected("binary", f"NUL byte at offset {nul}")
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(name)
            except UnicodeDecodeError as error:
                raise Rejected("undecodable", f"{name} byte-order mark but {error.reason}") from None
    head = data[:4096]
    candidates = [_codec(declared)]
    for pattern in (_META_CHARSET, _XML_ENCODING):
        match = pattern.search(head)
        if match:
            candidates.append(_codec(match.group(1).decode("ascii", "replace")))
    candidates.append("utf-8")
    tried = []
    for name in dict.fromkeys(c for c in candidates if c):
        try:
            return data.decode(name)
        except UnicodeDecodeError as error:
            tried.append(f"{name}: {error.reason} at byte {error.start}")
    raise Rejected("undecodable", "; ".join(tried))


# ----------------------------------------------------------------------------------------------
# Main text and code blocks
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractedPage:
    """What the extractor made of one page."""

    text: str
    title: str | None
    code_blocks: int
    code_chars: int


_FENCE = re.compile(r"^\s*```")
# trafilatura sometimes opens a block mid-line ("Example: ```"); such a fence gets its own line.
_INLINE_FENCE = re.compile(r"(?m)^(?!\s*```)(.*?\S)[ \t]*```[ \t]*$")


def normalise_fences(markdown: str) -> str:
    """Every code fence on a line of its own."""
    return _INLINE_FENCE.sub(lambda m: f"{m.group(1)}\n```", markdown)


def code_block_stats(markdown: str) -> tuple[int, int]:
    """(fenced code blocks, characters inside them) of extracted Markdown; an unclosed last
    fence counts as a block running to the end."""
    blocks = chars = 0
    inside = False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            if not inside:
                blocks += 1
            inside = not inside
        elif inside:
            chars += len(line) + 1
    return blocks, chars


def _plain_pre_blocks(tree) -> None:
    """Reduce every `<pre>` to one `<span>` holding its text, which trafilatura renders as a
    fenced code block (its heuristic takes a lone span inside `pre` for highlighted code)."""
    from lxml import etree

    for pre in list(tree.iter("pre")):
        text = pre.text_content()
        for child in list(pre):
            pre.remove(child)
        pre.text = None
        if not text.strip():
            continue
        span = etree.SubElement(pre, "span")
        span.text = text


def extract_main_text(html_text: str, url: str | None, config: WebIngestConfig) -> ExtractedPage:
    """Main text of a page as Markdown (code blocks fenced, navigation dropped), or `Rejected`."""
    import trafilatura
    from trafilatura.utils import load_html

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = load_html(html_text)
            if tree is None:
                raise Rejected("not_html", "the parser found no HTML document")
            title = (tree.findtext(".//title") or "").strip() or None
            _plain_pre_blocks(tree)
            text = trafilatura.extract(
                tree,
                url=url,
                output_format="markdown",
                include_formatting=True,
                include_tables=True,
                include_comments=False,
                include_links=False,
                include_images=False,
                favor_recall=config.extraction_focus == "recall",
                favor_precision=config.extraction_focus == "precision",
                deduplicate=False,
            )
    except Rejected:
        raise
    except Exception as error:  # noqa: BLE001  (any extractor failure is this page's verdict)
        raise Rejected("extraction_error", f"{type(error).__name__}: {error}"[:500]) from None
    if not text or not text.strip():
        raise Rejected("no_main_text", "the extractor found no main content")
    text = normalise_fences(text.strip()) + "\n"
    if len(text) < config.min_text_chars:
        raise Rejected("too_short", f"{len(text)} characters of main text < {config.min_text_chars}")
    blocks, chars = code_block_stats(text)
    return ExtractedPage(
        text=text, title=title[:500] if title else None, code_blocks=blocks, code_chars=chars
    )


_INLINE_CODE = re.compile(r"(?<!`)`[^`\n]+`(?!`)")


def inline_code_spans(markdown: str) -> int:
    """Inline code spans (`x`) in extracted Markdown, outside fenced blocks."""
    outside, inside = [], False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            inside = not inside
        elif not inside:
            outside.append(line)
    return len(_INLINE_CODE.findall("\n".join(outside)))


def label_for(
    code_blocks: int,
    code_chars: int,
    text_chars: int,
    config: WebIngestConfig,
    inline_spans: int = 0,
) -> str | None:
    """The measurement label of a page, by a rule on its extracted main text:

    `code`  at least `label_min_code_blocks` fenced code blocks holding at least
            `label_min_code_share` of the main text's characters;
    `other` no code block at all, and fewer than `label_max_inline_code_per_1000_chars` inline
            code spans per 1,000 characters;
    null    anything in between (one small snippet, code that is a sliver of the page, or
            reference prose that names code in every sentence).

    The rounds never read this column to train; it only measures them. Checked by hand on 120
    pages: recipes/data/web_sample/label_check.tsv (the agreement is in its LABELS.md).
    """
    if code_blocks == 0:
        dense = inline_spans * 1000 >= config.label_max_inline_code_per_1000_chars * max(text_chars, 1)
        return None if dense else LABEL_OTHER
    if code_blocks >= config.label_min_code_blocks and code_chars >= config.label_min_code_share * max(
        text_chars, 1
    ):
        return LABEL_CODE
    return None


# ----------------------------------------------------------------------------------------------
# One page
# ----------------------------------------------------------------------------------------------


def _iso(stamp: float | None) -> str | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


def _blank_row(input_index: int, input_name: str, key: str, *, licence: str | None, date: str | None) -> dict:
    row = {name: None for name in CANDIDATE_SCHEMA.fieldNames()}
    row.update(
        input_index=input_index,
        input_key=key,
        web_input=input_name,
        path=key,
        source=WEB_SOURCE,
        lang="text",
        licence=licence,
        commit_date=date,
        size_bytes=0,
    )
    return row


def judge_page(
    *,
    input_index: int,
    input_name: str,
    key: str,
    url: str | None,
    read,
    size: int | None,
    config: WebIngestConfig,
    licence: str | None = None,
    date: str | None = None,
    declared_charset: str | None = None,
    content_type: str | None = None,
    http_status: int | None = None,
    canonical_from_page: bool = False,
) -> dict:
    """One candidate row for one input unit. `read()` returns the page's bytes and is called only
    after the cheap checks pass. With `canonical_from_page`, a page's `<link rel=canonical>` (if
    any) replaces `url`, which is then only the fallback."""
    row = _blank_row(input_index, input_name, key, licence=licence, date=date)
    row.update(size_bytes=int(size or 0), html_bytes=int(size) if size is not None else None)
    try:
        if not canonical_from_page:
            url = check_url(url)
        if http_status is not None and http_status != 200:
            raise Rejected("http_status", f"HTTP {http_status}")
        if content_type is not None and not _is_html_type(content_type):
            raise Rejected("not_html", f"content type {content_type[:100]!r}")
        if size is not None and size > config.max_page_bytes:
            raise Rejected("too_large", f"{size} bytes > limit {config.max_page_bytes}")
        data = read()
        if data is None:
            raise Rejected("missing_html", "no html")
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        row["html_bytes"] = row["size_bytes"] = len(data)
        if len(data) > config.max_page_bytes:
            raise Rejected("too_large", f"{len(data)} bytes > limit {config.max_page_bytes}")
        text = decode_html(data, declared_charset)
        if not _HTML_TAG.search(text[:65536]):
            raise Rejected("not_html", "no HTML tag in the first 64 KB")
        if canonical_from_page:
            url = check_url(_canonical_link(text) or url)
        row["url"], row["domain"] = url, domain_of(url)
        row["page_lang"] = page_language(data[:65536], url)
        page = extract_main_text(text, url, config)
        text_chars = len(page.text)
        row.update(
            content=page.text,
            title=page.title,
            code_blocks=page.code_blocks,
            code_chars=page.code_chars,
            text_chars=text_chars,
            size_bytes=len(page.text.encode("utf-8", "surrogatepass")),
            sha256=content_sha256(page.text),
            label=label_for(
                page.code_blocks, page.code_chars, text_chars, config, inline_code_spans(page.text)
            ),
        )
    except Rejected as rejected:
        row["reason"], row["detail"] = rejected.reason, rejected.detail[:1000]
    except OSError as error:  # vanished or unreadable between listing and reading
        row["reason"], row["detail"] = "unreadable", f"{type(error).__name__}: {error}"[:1000]
    if row["url"] is None and url is not None and row["reason"] not in ("missing_url", "bad_url"):
        row["url"] = str(url)
        row["domain"] = domain_of(str(url))
    # The URL is the page's identity; a unit without a usable one is named by where it was found.
    if row["reason"] in ("missing_url", "bad_url", "malformed_json") or row["url"] is None:
        row["doc_id"] = make_doc_id(f"{WEB_SOURCE}-unit", f"{input_name}\x00{key}")
    else:
        row["doc_id"] = make_doc_id(WEB_SOURCE, row["url"])
    return row


def _is_html_type(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime in ("text/html", "application/xhtml+xml", "") or mime.endswith("+html")


_CANONICAL = re.compile(
    r"""<link\b(?=[^>]*\brel\s*=\s*["']?canonical\b)[^>]*\bhref\s*=\s*["']([^"'>\s]+)""", re.I
)


def _canonical_link(text: str) -> str | None:
    match = _CANONICAL.search(text[:65536])
    return match.group(1) if match and match.group(1).startswith(("http://", "https://")) else None


def _rejected_unit(input_index: int, input_name: str, key: str, reason: str, detail: str) -> dict:
    """A reject row for a unit that never became a page (a malformed line, a broken archive)."""
    row = _blank_row(input_index, input_name, key, licence=None, date=None)
    row.update(
        doc_id=make_doc_id(f"{WEB_SOURCE}-unit", f"{input_name}\x00{key}"), reason=reason, detail=detail
    )
    return row


# ----------------------------------------------------------------------------------------------
# Inputs: listing on the driver, reading and extraction in Spark tasks
# ----------------------------------------------------------------------------------------------


def page_url(web_input: WebInputConfig, relpath: str) -> str | None:
    """The public URL of a folder page (None: take it from the page, else a file:// URL)."""
    if web_input.url_base is None:
        return None
    rel = relpath
    rewrites = web_input.url_rewrite
    for pattern, replacement in zip(rewrites[::2], rewrites[1::2], strict=True):
        rel = re.sub(pattern, replacement, rel, count=1)
    return web_input.url_base.rstrip("/") + "/" + rel.lstrip("/")


def _sampled(listed: list[ListedFile], limit: int | None) -> list[ListedFile]:
    """At most `limit` files, chosen by a hash of the relative path (stable across machines)."""
    if limit is None or len(listed) <= limit:
        return listed
    ranked = sorted(listed, key=lambda f: hashlib.sha256(f.relpath.encode("utf-8", "surrogatepass")).digest())
    return sorted(ranked[:limit], key=lambda f: f.relpath)


def list_input_files(web_input: WebInputConfig) -> list[ListedFile]:
    """The files an input reads: HTML pages of a folder, or its JSONL/WARC files."""
    if web_input.kind == "folder":
        try:
            return _sampled(list_folder(web_input.folder_source()), web_input.max_pages)
        except ValueError as error:
            raise WebInputError(str(error)) from None
    suffixes = JSONL_SUFFIXES if web_input.kind == "jsonl" else WARC_SUFFIXES
    fs, root = fsspec.core.url_to_fs(web_input.path)
    if fs.isdir(root):
        names = sorted(p for p in fs.find(root) if p.endswith(suffixes))
        base = root
    elif fs.exists(root):
        names, base = [root], os.path.dirname(root)
    else:
        raise WebInputError(f"web input {web_input.name!r}: {web_input.path} does not exist")
    if not names:
        raise WebInputError(f"web input {web_input.name!r}: no {web_input.kind} file under {web_input.path}")
    remote = "://" in web_input.path
    listed = []
    for name in names:
        info = fs.info(name)
        rel = name[len(base) :].lstrip("/") or os.path.basename(name)
        mtime = info.get("mtime")
        listed.append(
            ListedFile(
                fs.unstrip_protocol(name) if remote else name,
                rel,
                int(info.get("size") or 0),
                mtime.timestamp() if hasattr(mtime, "timestamp") else mtime,
            )
        )
    return listed


# A unit read from its file but not yet judged: the bytes of one page (JSONL, WARC) or, for a
# folder page, where to read them. Phase 1 (reading archives) and phase 2 (extraction) are
# separate Spark stages, so that one big WARC file is read by one task but extracted by all.
_UNIT_SCHEMA = T.StructType(
    [
        T.StructField("input_index", T.IntegerType(), False),
        T.StructField("key", T.StringType(), False),
        T.StructField("url", T.StringType(), True),
        T.StructField("file_url", T.StringType(), True),
        T.StructField("html", T.BinaryType(), True),
        T.StructField("size", T.LongType(), True),
        T.StructField("date", T.StringType(), True),
        T.StructField("licence", T.StringType(), True),
        T.StructField("charset", T.StringType(), True),
        T.StructField("content_type", T.StringType(), True),
        T.StructField("http_status", T.IntegerType(), True),
        T.StructField("reason", T.StringType(), True),
        T.StructField("detail", T.StringType(), True),
    ]
)


@lru_cache(maxsize=2)
def _arrow_schema(which: str) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(CANDIDATE_SCHEMA if which == "candidate" else _UNIT_SCHEMA)


def _batches(rows: Iterator[dict], which: str, size: int = 64) -> Iterator[pa.RecordBatch]:
    schema, buffer = _arrow_schema(which), []
    for row in rows:
        buffer.append(row)
        if len(buffer) >= size:
            yield pa.RecordBatch.from_pylist(buffer, schema=schema)
            buffer = []
    if buffer:
        yield pa.RecordBatch.from_pylist(buffer, schema=schema)


def _unit(index: int, key: str, **values) -> dict:
    row = {name: None for name in _UNIT_SCHEMA.fieldNames()}
    row.update(input_index=index, key=key, **values)
    return row


def _jsonl_units(item: dict, web_input: WebInputConfig) -> Iterator[dict]:
    index, rel = item["input_index"], item["relpath"]
    with fsspec.open(item["file_url"], "rb", compression="infer") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue  # a blank line is no record
            key = f"{rel}:{number}"
            try:
                record = json.loads(raw)
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON {type(record).__name__}, not an object")
            except ValueError as error:
                yield _unit(index, key, reason="malformed_json", detail=f"{error}"[:300])
                continue
            html = record.get("html")
            if html is None:
                html = record.get("raw_html")
            data = None if html is None else str(html).encode("utf-8", "surrogatepass")
            date = record.get("date") or record.get("fetch_date")
            url = record.get("url")
            yield _unit(
                index,
                key,
                url=None if url is None else str(url),
                html=data,
                size=None if data is None else len(data),
                date=None if date is None else str(date),
                licence=record.get("licence") or record.get("license") or web_input.licence,
                reason="missing_html" if data is None and url else None,
                detail="no html" if data is None and url else None,
            )


def _warc_units(item: dict, web_input: WebInputConfig, config: WebIngestConfig) -> Iterator[dict]:
    from warcio.archiveiterator import ArchiveIterator

    index, rel = item["input_index"], item["relpath"]
    offset = 0
    try:
        with fsspec.open(item["file_url"], "rb") as handle:
            records = ArchiveIterator(handle, arc2warc=True)
            for record in records:
                kind = record.rec_type
                if kind not in ("response", "resource"):
                    continue  # request, metadata, warcinfo, revisit: no page in them
                status = content_type = None
                if kind == "response" and record.http_headers is not None:
                    code = record.http_headers.get_statuscode()
                    status = int(code) if code and code.isdigit() else None
                    content_type = record.http_headers.get_header("Content-Type") or ""
                elif kind == "resource":
                    content_type = record.rec_headers.get_header("Content-Type") or ""
                # One byte over the limit is enough to call the page too large.
                body = record.content_stream().read(config.max_page_bytes + 1)
                # Asking for the offset reads the rest of the record, so it comes after the body.
                offset = records.get_record_offset()
                declared = _declared_length(record, kind)
                if declared is not None and len(body) < min(declared, config.max_page_bytes + 1):
                    yield _unit(
                        index,
                        f"{rel}@{offset}",
                        url=record.rec_headers.get_header("WARC-Target-URI"),
                        reason="truncated_record",
                        detail=f"the record holds {len(body)} of its {declared} declared bytes",
                    )
                    continue
                charset = None
                if content_type and "charset=" in content_type.lower():
                    charset = content_type.lower().split("charset=", 1)[1].split(";")[0].strip(" \"'")
                yield _unit(
                    index,
                    f"{rel}@{offset}",
                    url=record.rec_headers.get_header("WARC-Target-URI"),
                    html=body,
                    size=len(body),
                    date=record.rec_headers.get_header("WARC-Date"),
                    licence=web_input.licence,
                    charset=charset,
                    content_type=content_type,
                    http_status=status,
                )
    except Exception as error:  # noqa: BLE001  (a broken archive: the rest of the file is one reject)
        yield _unit(
            index,
            f"{rel}@{offset}:rest",
            reason="corrupt_warc",
            detail=f"reading stopped after offset {offset}: {type(error).__name__}: {error}"[:500],
        )


def _declared_length(record, kind: str) -> int | None:
    """The body length a WARC record declares: the HTTP Content-Length of a response, the WARC
    Content-Length of a resource; None when it declares none."""
    if kind == "response":
        value = record.http_headers.get_header("Content-Length") if record.http_headers else None
    else:
        value = record.rec_headers.get_header("Content-Length")
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def _unit_reader(inputs: tuple[WebInputConfig, ...], config: WebIngestConfig):
    """Phase 1 task body: listed files to units (folder pages pass through unread)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for item in batch.to_pylist():
                web_input = inputs[item["input_index"]]
                if web_input.kind == "folder":
                    unit = _unit(
                        item["input_index"],
                        item["relpath"],
                        url=page_url(web_input, item["relpath"]),
                        file_url=item["file_url"],
                        size=item["size"],
                        date=_iso(item["mtime"]),
                        licence=web_input.licence,
                    )
                    yield from _batches(iter([unit]), "unit")
                elif web_input.kind == "jsonl":
                    yield from _batches(_jsonl_units(item, web_input), "unit")
                else:
                    yield from _batches(_warc_units(item, web_input, config), "unit")

    return run


def _judge_unit(unit: dict, web_input: WebInputConfig, config: WebIngestConfig) -> dict:
    index, key = unit["input_index"], unit["key"]
    if unit["reason"] is not None and unit["reason"] != "missing_html":
        return _rejected_unit(index, web_input.name, key, unit["reason"], unit["detail"] or "")
    common = dict(
        input_index=index,
        input_name=web_input.name,
        key=key,
        size=unit["size"],
        config=config,
        licence=unit["licence"],
        date=unit["date"],
    )
    if unit["file_url"] is not None:

        def read(url=unit["file_url"]):
            with fsspec.open(url, "rb") as handle:
                return handle.read()

        if unit["url"] is None:
            # No public URL configured: the page's canonical link, else where the file lies.
            local = unit["file_url"]
            fallback = local if "://" in local else "file://" + os.path.abspath(local)
            return judge_page(url=fallback, read=read, canonical_from_page=True, **common)
        return judge_page(url=unit["url"], read=read, **common)
    return judge_page(
        url=unit["url"],
        read=lambda: unit["html"],
        declared_charset=unit["charset"],
        content_type=unit["content_type"],
        http_status=unit["http_status"],
        **common,
    )


def _unit_judge(inputs: tuple[WebInputConfig, ...], config: WebIngestConfig):
    """Phase 2 task body: units to candidate rows (decoding, extraction, labels)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = (_judge_unit(u, inputs[u["input_index"]], config) for u in batch.to_pylist())
            yield from _batches(rows, "candidate")

    return run


@dataclass
class WebIngestResult:
    kept: DataFrame
    rejected: DataFrame
    rows_in: int
    rows_in_by_input: dict[str, int]
    files_by_input: dict[str, int] = field(default_factory=dict)

    def release(self) -> None:
        self._candidates.unpersist()


def ingest_web(
    spark: SparkSession, inputs: tuple[WebInputConfig, ...], config: WebIngestConfig
) -> WebIngestResult:
    """Candidate rows for all inputs, split into kept pages and reject rows (see module doc)."""
    if not inputs:
        raise WebInputError("no web input: name at least one folder, JSONL or WARC input")
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        raise WebInputError(f"web input names must be unique, got {names}")
    listing, files_by_input, archive_bytes, folder_files = [], {}, 0, 0
    for index, web_input in enumerate(inputs):
        listed = list_input_files(web_input)
        files_by_input[web_input.name] = len(listed)
        for f in listed:
            listing.append((index, f.url, f.relpath, f.size, f.mtime))
            if web_input.kind == "folder":
                folder_files += 1
            else:
                archive_bytes += f.size
    archives = len(listing) - folder_files
    # Phase 1: archives one per task, folder files in runs of `files_per_partition`.
    read_partitions = max(1, archives + -(-folder_files // config.files_per_partition))
    frame = spark.createDataFrame(listing, _LISTING_SCHEMA)
    frame = frame.repartition(read_partitions, "file_url") if read_partitions > 1 else frame.coalesce(1)
    units = frame.mapInArrow(_unit_reader(tuple(inputs), config), _UNIT_SCHEMA)
    # Phase 2: extraction spread over every core; archives are compressed, so count ~5 bytes
    # of HTML per archive byte when sizing the partitions (~8 MB of HTML each).
    html_bytes = archive_bytes * 5 + sum(row[3] for row in listing if inputs[row[0]].kind == "folder")
    shuffle = int(spark.conf.get("spark.sql.shuffle.partitions") or 8)
    judge_partitions = max(shuffle, min(4096, -(-html_bytes // (8 * 1024 * 1024))))
    units = units.repartition(judge_partitions, "input_index", "key")
    candidates = units.mapInArrow(_unit_judge(tuple(inputs), config), CANDIDATE_SCHEMA)
    # The same URL twice: the first copy that passed, by input order then key, keeps it.
    order = Window.partitionBy("doc_id").orderBy(F.col("reason").isNotNull(), "input_index", "input_key")
    copy = F.row_number().over(order)
    first_input = F.first("input_index").over(order)
    duplicate = (copy > 1) & F.col("reason").isNull()
    # A later copy is named by where it was found, so that no two output rows share an id.
    copy_id = F.substring(
        F.sha2(F.concat_ws("\x00", F.lit(f"{WEB_SOURCE}-copy"), "web_input", "input_key"), 256), 1, 32
    )
    ranked = candidates.select(
        *[c for c in CANDIDATE_SCHEMA.fieldNames() if c not in ("doc_id", "reason", "detail")],
        F.when(copy > 1, copy_id).otherwise(F.col("doc_id")).alias("doc_id"),
        F.when(duplicate, F.lit("duplicate_url")).otherwise(F.col("reason")).alias("reason"),
        F.when(
            duplicate,
            F.concat(F.lit("same URL as the page kept from input #"), first_input.cast("string")),
        )
        .otherwise(F.col("detail"))
        .alias("detail"),
        F.when(duplicate, F.col("doc_id")).alias("kept_doc_id"),
    )
    ranked = ranked.persist(StorageLevel.MEMORY_AND_DISK)
    counts = {row["web_input"]: int(row["count"]) for row in ranked.groupBy("web_input").count().collect()}
    rows_in = sum(counts.values())
    kept = ranked.filter(F.col("reason").isNull()).select(*WEB_PAGE_COLUMNS)
    rejected = ranked.filter(F.col("reason").isNotNull()).select(
        "doc_id",
        F.lit(STAGE).alias("stage"),
        "reason",
        "detail",
        "path",
        "lang",
        "size_bytes",
        F.lit(None).cast("string").alias("cluster_id"),
        "kept_doc_id",
    )
    result = WebIngestResult(
        kept, rejected, rows_in, {n: counts.get(n, 0) for n in names}, files_by_input=files_by_input
    )
    result._candidates = ranked
    return result


def detect_input(path: str, name: str | None = None, url_base: str | None = None) -> WebInputConfig:
    """A web input for a path given on the command line: a WARC or JSONL file (or a folder of
    them), else a folder of HTML pages."""
    base = os.path.basename(path.rstrip("/")) or "input"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name or base.split(".")[0]) or "input"
    if os.path.isfile(path):
        if path.endswith(WARC_SUFFIXES):
            return WebInputConfig(name=name, kind="warc", path=path)
        if path.endswith(JSONL_SUFFIXES):
            return WebInputConfig(name=name, kind="jsonl", path=path)
        raise WebInputError(f"cannot tell the format of {path} (want .warc[.gz], .jsonl[.gz] or a folder)")
    if not os.path.isdir(path):
        raise WebInputError(f"input not found: {path}")
    kinds = {"warc": 0, "jsonl": 0, "folder": 0}
    for _, _, files in os.walk(path):
        for f in files:
            if f.endswith(WARC_SUFFIXES):
                kinds["warc"] += 1
            elif f.endswith(JSONL_SUFFIXES):
                kinds["jsonl"] += 1
            elif f.endswith(HTML_SUFFIXES):
                kinds["folder"] += 1
    kind = max(kinds, key=lambda k: (kinds[k], k == "folder"))
    if not kinds[kind]:
        raise WebInputError(f"{path} holds no .html, .jsonl or .warc file")
    return WebInputConfig(name=name, kind=kind, path=path, url_base=url_base if kind == "folder" else None)
