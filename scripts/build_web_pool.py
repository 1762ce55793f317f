"""Build a web pool (a gzipped WARC of `response` records) from the documentation on this machine.

    python scripts/build_web_pool.py --output /tmp/pool.warc.gz [--max-pages-per-site 500]
    python scripts/build_web_pool.py --sample        # rewrite the committed demo sample

Each page carries the public URL it has on its project's site (see `quality.webpool.DOC_SITES`).
`--sample` writes `recipes/data/web_sample/pool.warc.gz` with a fixed quota per site (a hash
sample, so the same installed docs give the same file) and its `LICENSES.md`.
The pool can be read by `codecook ingest-web --input POOL --output DIR` or by the recipe's `web`
section (`inputs: [{name: pool, kind: warc, path: POOL}]`).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quality.webpool import (  # noqa: E402
    DOC_SITES,
    fingerprint,
    installed_doc_inputs,
    iter_pool_pages,
    unmapped_html_folders,
    write_jsonl,
    write_warc,
)

SAMPLE_DIR = ROOT / "recipes" / "data" / "web_sample"
# Pages per site in the committed sample: small (under 2 MB compressed), with the demo pool's
# mix: programming documentation a minority among an office suite's help, an accounting guide in
# five languages and Debian's prose, so that random pages are mostly not code, as on the web.
SAMPLE_QUOTA = {
    "python3.11-doc": 36,
    "rust-doc": 14,
    "nodejs-doc": 6,
    "npm-doc": 10,
    "valgrind-doc": 4,
    "maint-guide": 3,
    "debian-reference": 3,
    "debian-handbook": 36,
    "libreoffice-help": 150,
    "gnucash-docs": 60,
    "debian-history": 14,
    "debian-faq": 6,
    "developers-reference": 4,
    "harden-doc": 10,
}
# Where each sampled site's licence text can be read in full.
LICENCE_NOTES = {
    "python3.11-doc": (
        "Python 3.11 documentation, (c) Python Software Foundation. PSF License Agreement "
        "(code examples also under the Zero-Clause BSD licence since 3.8.6). Debian package "
        "python3.11-doc; full text in /usr/share/doc/python3.11-doc/copyright and on "
        "https://docs.python.org/3.11/license.html."
    ),
    "debian-handbook": (
        "The Debian Administrator's Handbook, (c) Raphael Hertzog and Roland Mas, and its "
        "translators. GPL-2.0-or-later or CC-BY-SA-3.0, at your choice. Debian package "
        "debian-handbook; full text in /usr/share/doc/debian-handbook/copyright."
    ),
    "debian-reference": (
        "Debian Reference, (c) Osamu Aoki. GPL-2.0-or-later. Debian packages "
        "debian-reference-en/-common; full text in /usr/share/doc/debian-reference-common/copyright."
    ),
    "nodejs-doc": (
        "Node.js API documentation, (c) Node.js contributors. MIT. Shipped with the nodejs package; "
        "full text in /usr/share/doc/nodejs/LICENSE."
    ),
    "npm-doc": (
        "npm CLI documentation, (c) npm, Inc. and contributors. Artistic-2.0. Shipped with npm; full "
        "text in the npm package's LICENSE."
    ),
    "valgrind-doc": (
        "Valgrind manual, (c) the Valgrind developers. GPL-2.0-or-later per Debian's copyright "
        "file (/usr/share/doc/valgrind/copyright)."
    ),
    "rust-doc": (
        "The Rust documentation (the book, Rust by Example, the reference, std), (c) the Rust "
        "project developers. MIT OR Apache-2.0. Shipped with the rustup toolchain "
        "(share/doc/rust/COPYRIGHT.html, licenses/)."
    ),
    "maint-guide": (
        "Debian New Maintainers' Guide, (c) Josip Rodin, Osamu Aoki and others. GPL-2.0-or-later "
        "(stylesheet MIT). Debian package maint-guide; full text in /usr/share/doc/maint-guide/copyright."
    ),
    "libreoffice-help": (
        "LibreOffice Help, (c) The Document Foundation and contributors. MPL-2.0. Debian packages "
        "libreoffice-help-en-us/-common; full text in /usr/share/doc/libreoffice-help-en-us/copyright "
        "and /usr/share/common-licenses/MPL-2.0."
    ),
    "gnucash-docs": (
        "GnuCash Tutorial and Concept Guide and GnuCash Help Manual, (c) the GnuCash Documentation "
        "Team. GFDL-1.1-or-later (no invariant sections). Debian package gnucash-docs; full text in "
        "/usr/share/doc/gnucash-docs/copyright."
    ),
    "debian-faq": (
        "The Debian GNU/Linux FAQ, (c) Susan G. Kleinmann, Sven Rudolph, Javier Fernandez-Sanguino "
        "and others. Verbatim and modified copies permitted under the terms in its copyright file "
        "(/usr/share/doc/debian-faq/copyright). Debian package debian-faq."
    ),
    "debian-history": (
        "A Brief History of Debian, (c) the Debian Documentation Project. GPL-2.0-or-later. Debian "
        "package debian-history; full text in /usr/share/doc/debian-history/copyright."
    ),
    "developers-reference": (
        "Debian Developer's Reference, (c) Christian Schwarz, Adam Di Carlo, Raphael Hertzog and "
        "others. GPL-2.0-or-later. Debian package developers-reference; full text in "
        "/usr/share/doc/developers-reference/copyright."
    ),
    "harden-doc": (
        "Securing Debian Manual, (c) Javier Fernandez-Sanguino Pena and others. GPL-2.0-or-later. "
        "Debian package harden-doc; full text in /usr/share/doc/harden-doc/copyright."
    ),
}


def build_sample() -> int:
    inputs = [
        replace(i, max_pages=SAMPLE_QUOTA[i.name]) for i in installed_doc_inputs() if i.name in SAMPLE_QUOTA
    ]
    missing = sorted(set(SAMPLE_QUOTA) - {i.name for i in inputs})
    if missing:
        print(f"note: not installed here, left out of the sample: {', '.join(missing)}")
    target = SAMPLE_DIR / "pool.warc.gz"
    counts = write_warc(target, iter_pool_pages(inputs))
    size = target.stat().st_size
    lines = [
        "# The committed web sample",
        "",
        "`pool.warc.gz` holds real documentation pages as gzipped WARC `response` records, each under",
        "the public URL it has on its project's site. It lets the web recall demo and its tests run",
        "where the documentation packages cannot be installed. Like the demo pool, it is mostly pages",
        "that are not code (an office suite's help, an accounting guide in five languages, Debian's",
        "prose) around a minority of programming documentation. It is rebuilt byte for byte by",
        "`python scripts/build_web_pool.py --sample` (a hash sample per site, record ids from the URL,",
        "dates from the files: the same installed documentation gives the same file). The measurement",
        "labels and their hand check: `LABELS.md`, `label_check.tsv`.",
        "",
        f"- size: {size:,} bytes; pages: {sum(counts.values())}",
        f"- sha256: `{fingerprint(target)}`",
        "",
        "| site | pages | licence |",
        "|---|---|---|",
    ]
    by_name = {s.name: s for s in DOC_SITES}
    for name, pages in counts.items():
        lines.append(f"| {name} | {pages} | {by_name[name].licence} |")
    lines += ["", "## Licences and copyright", ""]
    for name in counts:
        lines.append(f"- **{name}**: {LICENCE_NOTES[name]}")
    lines += [
        "",
        "The pages are redistributed unmodified (HTML as installed) for testing and demonstration;",
        "each record's `WARC-Target-URI` names its origin.",
        "",
    ]
    (SAMPLE_DIR / "LICENSES.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {target} ({size:,} bytes): {counts}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", help="Pool file: .warc.gz (default) or .jsonl.gz")
    parser.add_argument("--max-pages-per-site", type=int, default=None, help="Hash sample per site.")
    parser.add_argument(
        "--sites", nargs="*", help=f"Only these sites ({', '.join(s.name for s in DOC_SITES)})."
    )
    parser.add_argument("--sample", action="store_true", help="Rewrite the committed sample instead.")
    args = parser.parse_args(argv)
    if args.sample:
        return build_sample()
    if not args.output:
        parser.error("--output is required unless --sample is given")
    inputs = installed_doc_inputs(args.max_pages_per_site, tuple(args.sites) if args.sites else None)
    if not inputs:
        print("no documentation site is installed here; run scripts/install-web-docs.sh", file=sys.stderr)
        return 1
    for web_input in inputs:
        print(f"{web_input.name:<18} {web_input.path}  ->  {web_input.url_base}")
    if args.output.endswith((".jsonl", ".jsonl.gz")):
        written = write_jsonl(args.output, iter_pool_pages(inputs))
        print(f"wrote {written} pages to {args.output}")
    else:
        counts = write_warc(args.output, iter_pool_pages(inputs))
        print(f"wrote {sum(counts.values())} pages to {args.output}: {counts}")
    unmapped = unmapped_html_folders()
    if unmapped:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(unmapped.items(), key=lambda kv: -kv[1])[:12])
        print(f"HTML under /usr/share/doc without a known public URL (not in the pool): {listed}")
    print(f"size: {os.path.getsize(args.output):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
