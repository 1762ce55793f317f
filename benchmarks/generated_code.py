"""Generated and non-human code: how much the shipped profiles drop, and how much ordinary code stays.

    .venv/bin/python -m benchmarks.generated_code [--per-category 40] [--show 10]

The labelled set is built from real files found on this machine (nothing is written for the
test): each category is a glob over the places where such files live (this project's
site-packages, the interpreter's, npm's bundled modules, the Google Cloud SDK, Debian's headers),
sampled with a fixed seed to at most `--per-category` files. Categories whose files are absent on
a machine are reported as absent, never counted.

Positives (should be dropped): protobuf and gRPC stubs (the current `_pb2.py` builder style with a
licence header among them), protobuf-generated JavaScript, OpenAPI clients, Google apitools
clients, ANTLR lexers and parsers, Cython and Bison output, PLY tables, lock files, minified
bundles, generated data tables. Negatives (should stay): the standard library's own modules
outside its test suites.

Each file goes through the real engine (`signal_batch` + the shipped profiles); a dropped file is
attributed to the first rule that fired, so the table shows which rule catches which category.
The baseline measured in the same run is OpenCoder's released autogen rule alone (a generate /
autogen / do-not-edit phrase in the first 200 characters), re-implemented here only to count.
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sysconfig  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow as pa  # noqa: E402

from quality.filters import load_profiles  # noqa: E402
from quality.languages import language_of  # noqa: E402
from quality.signals import SignalConfig, signal_batch  # noqa: E402
from quality.textio import Rejected, decode_text  # noqa: E402

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SITE = Path(sysconfig.get_paths()["purelib"])
ROOTS = [
    SITE,
    STDLIB / "site-packages",
    Path("/usr/lib/node_modules"),
    Path("/usr/share/nodejs"),
    Path("/usr/lib/google-cloud-sdk"),
    Path("/usr/include"),
    Path("/usr/lib/x86_64-linux-gnu/perl"),
    STDLIB,
]

# category -> globs (relative to each root)
GENERATED: dict[str, tuple[str, ...]] = {
    "protobuf (Python _pb2)": ("**/*_pb2.py",),
    "gRPC (Python _pb2_grpc)": ("**/*_pb2_grpc.py",),
    "protobuf (JavaScript)": ("**/__generated__/**/*.js",),
    "OpenAPI client": ("kubernetes/client/models/*.py", "kubernetes/client/api/*.py"),
    "apitools client": ("lib/googlecloudsdk/generated_clients/apis/*/*/*_messages.py",),
    "ANTLR": ("**/antlr*/**/generated/*.py", "**/antlr/runtime/ASL*.py"),
    "Cython": ("lxml/*.h",),
    "Bison": ("**/perly.h", "**/perly.act", "**/perly.tab"),
    "PLY tables": ("**/pycparser/lextab.py", "**/pycparser/yacctab.py"),
    "lock file": ("**/Pipfile.lock", "**/pkgjs-lock.json", "**/package-lock.json", "**/yarn.lock"),
    "minified bundle": ("**/*.min.js", "mlflow/server/js/build/static/js/*.chunk.js"),
    # CPython's codec tables: "generated from 'MAPPINGS/...' with gencodec.py".
    "codec table (gencodec)": ("encodings/cp*.py", "encodings/iso8859_*.py", "encodings/mac_*.py"),
    "data table": (
        "pip/_vendor/idna/uts46data.py",
        "pip/_vendor/idna/idnadata.py",
        "**/pygments/lexers/_*_builtins.py",
        "**/pygments/lexers/_mapping.py",
        "**/rich/_emoji_codes.py",
    ),
}
# The standard library's modules outside its test suites (and its generated codec tables).
ORDINARY_EXCLUDE = re.compile(r"(^|/)(tests?|idle_test|site-packages|__pycache__|lib2to3/tests)(/|$)")

# OpenCoder's released autogen rule, for the baseline column (its phrases, first 200 characters).
_RELEASED_AUTOGEN = re.compile(r"generate|autogen|do not edit|automatically generated", re.IGNORECASE)


def _read(path: Path) -> str | None:
    try:
        if path.stat().st_size > 8 * 1024 * 1024:
            return None
        return decode_text(path.read_bytes())
    except (Rejected, OSError):
        return None


def labelled_set(per_category: int) -> list[dict]:
    rng = random.Random(0)
    docs = []
    for category, globs in GENERATED.items():
        found = sorted(
            {p for root in ROOTS if root.is_dir() for g in globs for p in root.glob(g) if p.is_file()}
        )
        rng.shuffle(found)
        taken = 0
        for path in found:
            if taken >= per_category:
                break
            text = _read(path)
            lang, _ = language_of(path.name)
            if text is None or lang is None:
                continue
            docs.append(_doc(path, text, lang, category, True))
            taken += 1
    labelled = {d["path"] for d in docs}
    codec_tables = {str(p) for g in GENERATED["codec table (gencodec)"] for p in STDLIB.glob(g)}
    for path in sorted(STDLIB.rglob("*.py")):
        rel = path.relative_to(STDLIB).as_posix()
        if ORDINARY_EXCLUDE.search(rel) or str(path) in labelled or str(path) in codec_tables:
            continue
        text = _read(path)
        if text is not None:
            docs.append(_doc(path, text, "python", "stdlib module", False))
    return docs


def _doc(path: Path, text: str, lang: str, category: str, generated: bool) -> dict:
    return {
        "doc_id": str(path),
        "content": text,
        "lang": lang,
        "path": str(path),
        "size_bytes": len(text.encode()),
        "category": category,
        "generated": generated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-category", type=int, default=40)
    parser.add_argument("--show", type=int, default=10, help="misjudged files to list per side")
    args = parser.parse_args()

    docs = labelled_set(args.per_category)
    profiles = load_profiles()
    config = SignalConfig()
    first_rule: dict[str, str | None] = {}
    fired_all: dict[str, set[str]] = {}
    columns = ("doc_id", "content", "lang", "path", "size_bytes")
    for start in range(0, len(docs), 500):
        batch = pa.RecordBatch.from_pylist([{k: d[k] for k in columns} for d in docs[start : start + 500]])
        for row in signal_batch(batch, config).to_pylist():
            fired = profiles.fired_rules(row, row["doc_id"], row["lang"])
            first_rule[row["doc_id"]] = fired[0][0].name if fired else None
            fired_all[row["doc_id"]] = {rule.name for rule, _ in fired}

    by_category: dict[str, list[dict]] = {}
    for doc in docs:
        by_category.setdefault(doc["category"], []).append(doc)
    print(f"{'category':26} {'files':>5} {'dropped':>8} {'released autogen':>17}  rules (first that fired)")
    totals = Counter()
    print("(whole profiles; the stdlib row includes OpenCoder's own Python thresholds, which drop small")
    print(" modules, stubs and no-logic files by design)")
    for category in [*GENERATED, "stdlib module"]:
        group = by_category.get(category, [])
        if not group:
            print(f"{category:26} {'absent on this machine':>32}")
            continue
        dropped = [d for d in group if first_rule[d["doc_id"]]]
        baseline = [d for d in group if _RELEASED_AUTOGEN.search(d["content"][:200])]
        rules = Counter(first_rule[d["doc_id"]] for d in dropped)
        side = "generated" if group[0]["generated"] else "ordinary"
        totals[(side, "files")] += len(group)
        totals[(side, "dropped")] += len(dropped)
        totals[(side, "baseline")] += len(baseline)
        print(
            f"{category:26} {len(group):5} {len(dropped) / len(group):8.0%} {len(baseline) / len(group):17.0%}  "
            + ", ".join(f"{rule} {n}" for rule, n in rules.most_common(4))
        )
    generated, ordinary = totals[("generated", "files")], totals[("ordinary", "files")]
    print(
        f"\ngenerated/non-human files dropped: {totals[('generated', 'dropped')]}/{generated} = "
        f"{totals[('generated', 'dropped')] / generated:.1%} (released autogen rule alone: "
        f"{totals[('generated', 'baseline')] / generated:.1%})"
    )
    kept = ordinary - totals[("ordinary", "dropped")]
    print(
        f"ordinary stdlib modules kept: {kept}/{ordinary} = {kept / ordinary:.1%} "
        f"(released autogen rule alone would drop {totals[('ordinary', 'baseline')]})"
    )
    missed = [d for d in docs if d["generated"] and not first_rule[d["doc_id"]]]
    print(f"\ngenerated files kept ({len(missed)}; first {args.show}):")
    for doc in missed[: args.show]:
        print(f"  [{doc['category']}] {doc['path']}")
    generated_rules = {"generated_code", "autogenerated", "data_table"}
    by_generated_rules = [d for d in docs if not d["generated"] and fired_all[d["doc_id"]] & generated_rules]
    print(
        f"ordinary stdlib modules kept by the generated-code rules ({', '.join(sorted(generated_rules))}): "
        f"{ordinary - len(by_generated_rules)}/{ordinary} = {1 - len(by_generated_rules) / ordinary:.1%}"
    )
    lost = [d for d in docs if not d["generated"] and first_rule[d["doc_id"]]]
    reasons = Counter(first_rule[d["doc_id"]] for d in lost)
    print(f"stdlib modules dropped ({len(lost)}): " + ", ".join(f"{r} {n}" for r, n in reasons.most_common()))
    for doc in [d for d in lost if first_rule[d["doc_id"]] in ("generated_code", "autogenerated")][
        : args.show
    ]:
        print(f"  {first_rule[doc['doc_id']]}: {doc['path']}")


if __name__ == "__main__":
    main()
