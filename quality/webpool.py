"""The demo web pool: documentation installed on this machine, each page under its public URL.

A web recall demo needs a pool whose domains mean something. The HTML documentation that Debian
packages (and a Rust toolchain) install is real web content: each site below is published on the
web under the URL this module gives it, so `docs.python.org`, `debian-handbook.info` and
`doc.rust-lang.org` are domains in the pool exactly as they are in Common Crawl.

    python3.11-doc       docs.python.org/3.11/...                           PSF-2.0
    debian-handbook      debian-handbook.info/browse/<lang>/stable/...      GPL-2.0+ or CC-BY-SA-3.0
    debian-reference     www.debian.org/doc/manuals/debian-reference/...    GPL-2.0+
    nodejs-doc           nodejs.org/docs/latest-v<major>.x/api/...          MIT
    npm-doc              docs.npmjs.com/cli/v<major>/...                    Artistic-2.0
    valgrind-doc         valgrind.org/docs/manual/...                       GPL-2.0+
    rust-doc             doc.rust-lang.org/stable/...   (rustup toolchain)  MIT OR Apache-2.0
    maint-guide          www.debian.org/doc/manuals/maint-guide/...         GPL-2.0+

and the background, documentation for people who use software rather than write it, and prose:

    libreoffice-help     help.libreoffice.org/<7.x>/en-US/text/...          MPL-2.0
    gnucash-docs         www.gnucash.org/docs/v<major>/<lang>/gnucash-...   GFDL-1.1+
    debian-faq           www.debian.org/doc/manuals/debian-faq/...          (permissive, see copyright)
    debian-history       www.debian.org/doc/manuals/project-history/...     GPL-2.0+
    developers-reference www.debian.org/doc/manuals/developers-reference/.. GPL-2.0+
    harden-doc           www.debian.org/doc/manuals/securing-debian-manual/ GPL-2.0+

The recipe's `web.pages_per_site` gives each site its quota, so that code pages are a small
minority of the pool (the demo: ~15% of pages carry the measurement label `code`), as on the
web, and a random page is most likely prose. `scripts/install-web-docs.sh` installs the Debian
documentation packages; the others are used when present. Without any of them the demo reads the committed sample
(`recipes/data/web_sample/`, built from these sites by `scripts/build_web_pool.py --sample`).
HTML documentation found elsewhere under /usr/share/doc has no known public URL and is listed by
`unmapped_html_folders()` instead of being given an invented one.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from contracts.storage import atomic_write
from quality.dedup.config import DedupConfig
from quality.ingest import list_folder
from quality.recall import RecallConfig
from quality.recipe import PROJECT_ROOT, config_from_dict
from quality.web import WebIngestConfig, WebInputConfig, page_url

SAMPLE_POOL = PROJECT_ROOT / "recipes" / "data" / "web_sample" / "pool.warc.gz"


@dataclass(frozen=True, kw_only=True)
class DocSite:
    """A documentation site installed on this machine and the public URL it is served under."""

    name: str
    """Input name (letters, digits, '-', '_', '.')."""
    roots: tuple[str, ...]
    """Candidate local folders (globs allowed); the first that exists is used."""
    url_base: str
    """Public URL of the folder; `{major}` is replaced by `version_major()` of the site."""
    url_rewrite: tuple[str, ...] = ()
    """`[regex, replacement]` from the relative path to the public path (see WebInputConfig)."""
    include: tuple[str, ...] = ("**/*.html",)
    exclude: tuple[str, ...] = ()
    licence: str
    """SPDX expression of the documentation's licence (from the package's copyright file)."""
    version_file: str | None = None
    """A file (relative to the root) whose text names the version, for `{major}` in the URL."""
    version_pattern: str | None = None
    """Regex with one group: the major version inside `version_file`."""

    def root(self) -> str | None:
        for pattern in self.roots:
            for found in sorted(glob.glob(os.path.expanduser(pattern))):
                if os.path.isdir(found):
                    return found
        return None

    def version_major(self, root: str) -> str | None:
        if not self.version_file or not self.version_pattern:
            return None
        path = Path(root, self.version_file)
        try:
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        except OSError:
            return None
        text = data[:200_000].decode("utf-8", errors="replace")
        match = re.search(self.version_pattern, text)
        return match.group(1) if match else None


_RUSTUP = os.environ.get("RUSTUP_HOME", "~/.rustup")

DOC_SITES: tuple[DocSite, ...] = (
    DocSite(
        name="python3.11-doc",
        roots=("/usr/share/doc/python3.11/html", "/usr/share/doc/python3.11-doc/html"),
        url_base="https://docs.python.org/3.11",
        # _static holds the theme; search.html is a script shell; genindex-all is the whole index.
        exclude=("_static/**", "_sources/**", "_images/**", "search.html", "genindex-all.html"),
        licence="PSF-2.0",
    ),
    DocSite(
        name="debian-handbook",
        roots=("/usr/share/doc/debian-handbook/html",),
        url_base="https://debian-handbook.info/browse",
        url_rewrite=(r"^([^/]+)/", r"\1/stable/"),
        exclude=("Common_Content/**", "*/Common_Content/**"),
        licence="GPL-2.0-or-later OR CC-BY-SA-3.0",
    ),
    DocSite(
        name="debian-reference",
        roots=("/usr/share/debian-reference",),
        url_base="https://www.debian.org/doc/manuals/debian-reference",
        include=("*.html",),
        licence="GPL-2.0-or-later",
    ),
    DocSite(
        name="nodejs-doc",
        roots=("/usr/share/doc/nodejs/api",),
        url_base="https://nodejs.org/docs/latest-v{major}.x/api",
        include=("*.html",),
        exclude=("all.html",),  # the whole manual again on one 5 MB page
        licence="MIT",
        version_file="index.html",
        version_pattern=r"Node\.js v(\d+)\.",
    ),
    DocSite(
        name="npm-doc",
        roots=("/usr/lib/node_modules/npm/docs/output", "/usr/share/nodejs/npm/docs/output"),
        url_base="https://docs.npmjs.com/cli/v{major}",
        url_rewrite=(r"\.html$", ""),
        licence="Artistic-2.0",
        version_file="../../package.json",
        version_pattern=r'"version":\s*"(\d+)\.',
    ),
    DocSite(
        name="valgrind-doc",
        roots=("/usr/share/doc/valgrind/html",),
        url_base="https://valgrind.org/docs/manual",
        include=("*.html",),
        licence="GPL-2.0-or-later",
    ),
    DocSite(
        name="rust-doc",
        roots=(f"{_RUSTUP}/toolchains/stable-*/share/doc/rust/html",),
        url_base="https://doc.rust-lang.org/stable",
        # src/ are syntax-highlighted source files, not pages; print.html repeats a whole book; the
        # machine intrinsics (40,000 one-function pages) and the old book editions (redirect
        # stubs) would drown every other page of the site in a hash sample.
        exclude=(
            "src/**",
            "core/arch/**",
            "core/core_arch/**",
            "std/arch/**",
            "*/intrinsics/**",
            "core/core_simd/**",
            "book/first-edition/**",
            "book/second-edition/**",
            "book/2018-edition/**",
            "static.files/**",
            "**/print.html",
            "**/toc.html",
            "**/404.html",
            "**/sidebar-items*.html",
            "**/all.html",
        ),
        licence="MIT OR Apache-2.0",
    ),
    # The background: documentation for people who use software rather than write it (an office
    # suite's help, an accounting program's guide) and a project's prose (history, FAQ, policy
    # for its members). Code is a small minority here, as on the web at large.
    DocSite(
        name="libreoffice-help",
        roots=("/usr/share/libreoffice/help/en-US",),
        url_base="https://help.libreoffice.org/{major}/en-US",
        include=("text/**/*.html",),
        licence="MPL-2.0",
        version_file="text/shared/05/new_help.html",
        version_pattern=r"LibreOffice (\d+\.\d+) Help",
    ),
    DocSite(
        name="gnucash-docs",
        roots=("/usr/share/doc/gnucash-docs",),
        url_base="https://www.gnucash.org/docs/v{major}",
        # gnucash-guide-en/x.html -> C/gnucash-guide/x.html; gnucash-help-de/ -> de/gnucash-help/
        url_rewrite=(
            r"^gnucash-(guide|help)-en/",
            r"C/gnucash-\1/",
            r"^gnucash-(guide|help)-([a-z]{2})/",
            r"\2/gnucash-\1/",
        ),
        include=("gnucash-*/*.html",),
        licence="GFDL-1.1-or-later",
        version_file="changelog.Debian.gz",  # "gnucash-docs (4.13-1) unstable": the docs of GnuCash 4
        version_pattern=r"^gnucash-docs \((\d+)\.",
    ),
    DocSite(
        name="debian-faq",
        roots=("/usr/share/doc/debian/FAQ",),
        url_base="https://www.debian.org/doc/manuals/debian-faq",
        include=("*.en.html",),  # the plain names are links to these
        licence="LicenseRef-debian-faq",  # verbatim and modified copies permitted (copyright file)
    ),
    DocSite(
        name="debian-history",
        roots=("/usr/share/doc/debian-history/docs",),
        url_base="https://www.debian.org/doc/manuals/project-history",
        include=("*.html",),
        licence="GPL-2.0-or-later",
    ),
    DocSite(
        name="developers-reference",
        roots=("/usr/share/developers-reference",),
        url_base="https://www.debian.org/doc/manuals/developers-reference",
        include=("*.html",),
        exclude=("developers-reference.html",),  # the whole manual again on one page
        licence="GPL-2.0-or-later",
    ),
    DocSite(
        name="maint-guide",
        roots=("/usr/share/doc/maint-guide/html",),
        url_base="https://www.debian.org/doc/manuals/maint-guide",
        include=("*.en.html",),
        licence="GPL-2.0-or-later",
    ),
    DocSite(
        name="harden-doc",
        roots=("/usr/share/doc/harden-doc/html",),
        url_base="https://www.debian.org/doc/manuals/securing-debian-manual",
        url_rewrite=(r"^en-US/(.*)\.html$", r"\1.en.html"),
        include=("en-US/*.html",),
        licence="GPL-2.0-or-later",
    ),
)


def installed_doc_inputs(
    max_pages_per_site: int | None = None,
    sites: tuple[str, ...] | None = None,
    pages_per_site: dict[str, int] | None = None,
) -> list[WebInputConfig]:
    """A folder web input for every documentation site present on this machine; a site named in
    `pages_per_site` gets that many pages (a hash sample), the others `max_pages_per_site`."""
    inputs = []
    pages_per_site = pages_per_site or {}
    for site in DOC_SITES:
        if sites is not None and site.name not in sites:
            continue
        if pages_per_site.get(site.name, 1) == 0:
            continue
        root = site.root()
        if root is None:
            continue
        base = site.url_base
        if "{major}" in base:
            major = site.version_major(root)
            if major is None:
                continue  # no version, no honest URL
            base = base.replace("{major}", major)
        inputs.append(
            WebInputConfig(
                name=site.name,
                kind="folder",
                path=root,
                url_base=base,
                url_rewrite=site.url_rewrite,
                include=site.include,
                exclude=site.exclude,
                max_pages=pages_per_site.get(site.name, max_pages_per_site),
                licence=site.licence,
            )
        )
    return inputs


def unmapped_html_folders(root: str = "/usr/share/doc") -> dict[str, int]:
    """HTML files under `root` per package folder that no DocSite covers (for the builder's report)."""
    covered = [site.root() for site in DOC_SITES]
    covered = [os.path.realpath(c) for c in covered if c]
    found: dict[str, int] = {}
    if not os.path.isdir(root):
        return found
    for package in sorted(os.listdir(root)):
        folder = os.path.join(root, package)
        if not os.path.isdir(folder) or os.path.islink(folder):
            continue
        real = os.path.realpath(folder)
        if any(real == c or real.startswith(c + os.sep) or c.startswith(real + os.sep) for c in covered):
            continue
        count = sum(
            1 for _, _, files in os.walk(folder) for name in files if name.endswith((".html", ".htm"))
        )
        if count:
            found[package] = count
    return found


@dataclass(frozen=True, kw_only=True)
class CodePagesConfig:
    """How `code_web_pages` cleans the last round's recalled pages."""

    exact_dedup: bool = True
    """Keep one page per content SHA-256: the highest score, then the smallest URL, wins."""
    near_dedup: bool = True
    """Then remove near duplicates (mirrors, versioned copies of the same docs) with the MinHash
    engine of `near_dedup` (`quality.dedup`), settings in `near`."""
    near: DedupConfig = field(
        default_factory=lambda: DedupConfig(threshold=0.7, num_bands=32, rows_per_band=8, min_tokens=50)
    )
    """MinHash settings for web pages (the keys of the recipe's `dedup` section). 32 x 8 bands
    over 256 permutations as for code; `min_tokens` 50 leaves short pages to exact dedup."""
    text_filters: bool = True
    """Judge pages with the quality filters' `text` profile (signals from `quality.signals`,
    thresholds from `quality/profiles/text.yaml`, overrides from the recipe's `quality_filter`)."""


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    """The recipe's `web` section: the pool, its ingest, the recall rounds, the final pages."""

    installed_docs: bool = True
    """Read the documentation sites installed on this machine (see DOC_SITES) into the pool."""
    installed_sites: tuple[str, ...] | None = None
    """Only these installed sites (by name); None takes every site found."""
    max_pages_per_site: int | None = 300
    """A hash sample of at most this many pages per installed site (None: all of them)."""
    pages_per_site: dict[str, int] = field(default_factory=dict)
    """Per installed site (by name), its own page quota instead of `max_pages_per_site` (0 leaves
    the site out). This is how a pool gets a realistic background: a few hundred pages of user
    help and project prose for every few dozen pages of programming documentation."""
    inputs: tuple[WebInputConfig, ...] = ()
    """Further inputs (folders of HTML, JSONL with url+html, WARC files), each a mapping with
    the keys of WebInputConfig."""
    fallback_inputs: tuple[WebInputConfig, ...] = (
        WebInputConfig(name="web-sample", kind="warc", path=str(SAMPLE_POOL)),
    )
    """Read only when the two above give no input at all: by default the committed sample."""
    ingest: WebIngestConfig = WebIngestConfig()
    """Extraction and labels (`web_pages`)."""
    recall: RecallConfig = RecallConfig()
    """The rounds (`recall_round_1..N`)."""
    code_pages: CodePagesConfig = CodePagesConfig()
    """The final cleaning (`code_web_pages`)."""

    def __post_init__(self) -> None:
        for name in ("inputs", "fallback_inputs"):
            items = tuple(
                item
                if isinstance(item, WebInputConfig)
                else config_from_dict(WebInputConfig, item, f"web.{name}")
                for item in getattr(self, name)
            )
            object.__setattr__(self, name, items)

    def resolved_inputs(self) -> tuple[WebInputConfig, ...]:
        """The inputs this machine gives: installed sites plus `inputs`, else `fallback_inputs`."""
        found: list[WebInputConfig] = []
        if self.installed_docs:
            found += installed_doc_inputs(self.max_pages_per_site, self.installed_sites, self.pages_per_site)
        found += list(self.inputs)
        return tuple(found) if found else self.fallback_inputs


@dataclass(frozen=True)
class PoolPage:
    """One page of the pool as a WARC record will carry it."""

    url: str
    html: bytes
    date: str
    site: str
    licence: str


def iter_pool_pages(inputs: Iterable[WebInputConfig]) -> Iterable[PoolPage]:
    """The pages of folder inputs with their public URLs, in input then path order."""
    for web_input in inputs:
        source = web_input.folder_source()
        from quality.web import _sampled  # the same hash sample the ingest would take

        for listed in _sampled(list_folder(source), web_input.max_pages):
            url = page_url(web_input, listed.relpath)
            stamp = datetime.fromtimestamp(listed.mtime or 0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            yield PoolPage(url, Path(listed.url).read_bytes(), stamp, web_input.name, web_input.licence or "")


def write_warc(path: str | os.PathLike[str], pages: Iterable[PoolPage]) -> dict[str, int]:
    """Write pages as gzipped WARC `response` records (as Common Crawl stores them).

    Record ids are derived from the URL and dates from the file times, so the same pages give the
    same bytes on every run. Returns pages written per site."""
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    counts: dict[str, int] = {}
    with atomic_write(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for page in pages:
            http_headers = StatusAndHeaders(
                "200 OK",
                [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page.html)))],
                protocol="HTTP/1.1",
            )
            record = writer.create_warc_record(
                page.url,
                "response",
                payload=BytesIO(page.html),
                length=len(page.html),
                http_headers=http_headers,
                warc_headers_dict={
                    "WARC-Record-ID": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, page.url)}>",
                    "WARC-Date": page.date,
                },
            )
            writer.write_record(record)
            counts[page.site] = counts.get(page.site, 0) + 1
    return counts


def write_jsonl(path: str | os.PathLike[str], pages: Iterable[PoolPage]) -> int:
    """The same pages as gzipped JSONL (`url`, `html`, `date`, `licence`), for tools without WARC."""
    written = 0
    # No file name in the gzip header (a path would put the random temporary name there): the
    # same pages give the same bytes.
    with (
        atomic_write(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as handle,
    ):
        for page in pages:
            record = {
                "url": page.url,
                "html": page.html.decode("utf-8", "replace"),
                "date": page.date,
                "licence": page.licence,
            }
            handle.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
            written += 1
    return written


def fingerprint(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file (the sample's LICENSES.md records it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
