"""Fidelity to OpenCoder's released filters: both engines judge the same Python files.

    .venv/bin/python -m benchmarks.opencoder_fidelity --opencoder /tmp/opc \
        --opencoder-python /tmp/opcvenv/bin/python [--limit N] [--show 20]

`--opencoder` is a checkout of OpenCoder's public `opc_data_filtering` (for instance the fetched
mirror extracted with `git archive HEAD | tar -x -C /tmp/opc`). It is never imported into this
process: it runs in `--opencoder-python`, an interpreter that has its requirements (nltk, pygments,
regex, numpy, jieba, zhconv, esprima, beautifulsoup4; install them into a throwaway venv under
/tmp, not into the project's). Both sides run in one process on one core, one after the other.

The files are the Python files of the demo corpus (this interpreter's standard library plus the
site-packages slices `recipes/demo.yaml` reads), decoded as ingest decodes them.

Printed: keep/drop agreement, Cohen's kappa, the confusion matrix, a table per released rule (how
often each side's rule fired, and on how many files they disagree), docs/s of each side and their
ratio, and every file decided differently with the rules that differ. The mapping between the two
rule sets is read from the profiles themselves (`opencoder:` on a codecook rule), and so are the
reasons for differences (`deviation:` on a rule, `opencoder_unported:` on a profile): a disagreeing
file is *explained* when every rule that differs on it carries a listed deviation.

OpenCoder's released config drops a share of files at random (`random.random() > 0.2`, unseeded);
codecook draws the same share by a hash of the doc_id. Those coins cannot agree file by file, so
for the comparison both run that rule deterministically: the released `random.random` is pinned to
return 1.0 and codecook's `drop_probability` is set to 1. The coin itself is a listed deviation.
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow as pa  # noqa: E402

from benchmarks.quality import demo_corpus  # noqa: E402
from quality.filters import ProfileSet, load_profiles  # noqa: E402
from quality.signals import SignalConfig, signal_batch  # noqa: E402

# Runs inside the released code's interpreter: one JSON document per input line, one JSON result
# per output line, plus the seconds spent computing signals and decisions (startup excluded).
_DRIVER = r"""
import json, random, sys, time
sys.path.insert(0, sys.argv[1])
random.random = lambda: 1.0  # the unseeded coin, pinned: the rule then fires on its condition
from pipeline.compute_quality_signals import ComputeCodeQualitySignal
from pipeline.compute_filtering import CodeFilter
signals, decide = ComputeCodeQualitySignal(), CodeFilter()
docs = [json.loads(line) for line in open(sys.argv[2], encoding="utf-8")]
spent = 0.0
with open(sys.argv[3], "w", encoding="utf-8") as out:
    for doc in docs:
        name = doc["path"].rsplit("/", 1)[-1]
        started = time.process_time()
        measured = json.loads(signals.evaluate(doc["content"], name, "en", ".py", doc["size_bytes"], "python", "code"))
        verdict = json.loads(decide.evaluate("code", "en", "python", measured.get("quality_signal")))
        spent += time.process_time() - started
        out.write(json.dumps({"doc_id": doc["doc_id"], "effective": verdict["effective"],
                              "hit_map": json.loads(verdict.get("hit_map") or "{}"),
                              "errors": sorted(json.loads(measured.get("err_msg") or "{}"))}) + "\n")
    out.write(json.dumps({"seconds": spent}) + "\n")
"""


def run_released(
    checkout: Path, interpreter: str, docs: list[dict], cache: Path | None
) -> tuple[dict[str, dict], float]:
    """Released verdicts by doc_id, and the CPU seconds they took. With `cache`, verdicts of a
    previous run on the same files are read from it (and written there after a fresh run)."""
    key = hashlib.sha256(json.dumps([(d["doc_id"], d["content"]) for d in docs]).encode()).hexdigest()
    if cache and cache.is_file():
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored["key"] == key:
            print(f"released verdicts read from {cache} (measured in an earlier run)")
            return stored["verdicts"], stored["seconds"]
        print(f"{cache} holds other files; running the released code again")
    with tempfile.TemporaryDirectory(prefix="opc-fidelity-") as tmp:
        driver, inputs, outputs = Path(tmp, "driver.py"), Path(tmp, "in.jsonl"), Path(tmp, "out.jsonl")
        driver.write_text(_DRIVER, encoding="utf-8")
        with inputs.open("w", encoding="utf-8") as handle:
            for doc in docs:
                handle.write(json.dumps(doc) + "\n")
        # The released code prints warnings on stdout; they are not ours to show.
        subprocess.run(
            [interpreter, str(driver), str(checkout), str(inputs), str(outputs)],
            check=True,
            cwd=checkout,
            stdout=subprocess.DEVNULL,
        )
        rows = [json.loads(line) for line in outputs.read_text(encoding="utf-8").splitlines()]
    seconds = rows.pop()["seconds"]
    verdicts = {row["doc_id"]: row for row in rows}
    if cache:
        cache.write_text(json.dumps({"key": key, "seconds": seconds, "verdicts": verdicts}), encoding="utf-8")
    return verdicts, seconds


def deterministic(profiles: ProfileSet) -> ProfileSet:
    """The same profiles with every probabilistic rule firing on its condition alone."""
    resolved = {
        name: replace(p, rules=tuple(replace(r, drop_probability=1.0) for r in p.rules))
        for name, p in profiles.profiles.items()
    }
    return ProfileSet(resolved, seed=profiles.seed)


def run_codecook(docs: list[dict], profiles: ProfileSet) -> tuple[dict[str, set[str]], float]:
    """Rules fired per doc_id, and the CPU seconds of signals plus decisions."""
    config = SignalConfig()
    fired: dict[str, set[str]] = {}
    started = time.process_time()
    for start in range(0, len(docs), 1000):
        batch = pa.RecordBatch.from_pylist(docs[start : start + 1000])
        for row in signal_batch(batch, config).to_pylist():
            hits = profiles.fired_rules(row, row["doc_id"], row["lang"])
            fired[row["doc_id"]] = {rule.name for rule, _ in hits}
    return fired, time.process_time() - started


def kappa(pairs: list[tuple[bool, bool]]) -> float:
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    p_a, p_b = sum(a for a, _ in pairs) / n, sum(b for _, b in pairs) / n
    expected = p_a * p_b + (1 - p_a) * (1 - p_b)
    return (observed - expected) / (1 - expected) if expected < 1 else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--opencoder", type=Path, required=True, help="checkout of opc_data_filtering")
    parser.add_argument(
        "--opencoder-python", default=sys.executable, help="interpreter with its requirements"
    )
    parser.add_argument("--limit", type=int, default=None, help="judge only the first N files")
    parser.add_argument(
        "--released-cache",
        type=Path,
        default=None,
        help="JSON file keeping the released verdicts between runs (they take minutes)",
    )
    parser.add_argument("--show", type=int, default=30, help="disagreeing files to list")
    args = parser.parse_args()

    docs = [
        {k: d[k] for k in ("doc_id", "content", "lang", "path", "size_bytes")}
        for d in demo_corpus(None)
        if d["lang"] == "python"
    ]
    docs.sort(key=lambda d: d["doc_id"])
    docs = docs[: args.limit] if args.limit else docs
    print(f"{len(docs)} Python files of the demo corpus ({sum(d['size_bytes'] for d in docs) / 1e6:.1f} MB)")

    profiles = load_profiles()
    profile = profiles.profile_for("python")
    codecook_fired, ours_seconds = run_codecook(docs, deterministic(profiles))
    released, theirs_seconds = run_released(args.opencoder, args.opencoder_python, docs, args.released_cache)

    # Released rule -> the codecook rules that stand for it; codecook rules without a counterpart.
    counterpart: dict[str, list[str]] = defaultdict(list)
    deviations: dict[str, str] = {}
    own_rules: list[str] = []
    for rule in profile.rules:
        if rule.deviation:
            deviations[rule.name] = rule.deviation
        if rule.opencoder:
            counterpart[rule.opencoder].append(rule.name)
        else:
            own_rules.append(rule.name)
    unported = dict(profile.opencoder_unported)

    pairs, rows = [], []
    per_rule = Counter()
    for doc in docs:
        theirs = released[doc["doc_id"]]
        their_hits = {name for name, hit in theirs["hit_map"].items() if hit}
        ours = codecook_fired[doc["doc_id"]]
        keep_theirs, keep_ours = theirs["effective"] == "1", not ours
        pairs.append((keep_theirs, keep_ours))
        differing = []
        for name in sorted(set(theirs["hit_map"]) | set(counterpart) | set(unported)):
            mine = counterpart.get(name, [])
            t_hit, o_hit = name in their_hits, any(r in ours for r in mine)
            per_rule[(name, "theirs")] += t_hit
            per_rule[(name, "ours")] += o_hit
            if t_hit != o_hit:
                per_rule[(name, "differ")] += 1
                differing.append((name, mine))
        for name in own_rules:
            if name in ours:
                per_rule[(name, "ours")] += 1
                per_rule[(name, "differ")] += 1
                differing.append((f"(codecook) {name}", [name]))
        if keep_theirs != keep_ours:
            explained = all(
                (mine and all(r in deviations for r in mine)) or name in unported for name, mine in differing
            ) and bool(differing)
            if not keep_theirs and not their_hits:
                # The released pipeline dropped it without a rule firing: a signal errored or timed out.
                differing.append(("(released) no rule fired: " + ",".join(theirs["errors"]), []))
                explained = False
            rows.append((doc["doc_id"], keep_theirs, keep_ours, differing, explained))

    n = len(pairs)
    agree = sum(a == b for a, b in pairs)
    matrix = Counter(pairs)
    print(f"\nagreement: {agree}/{n} = {agree / n:.1%}   kappa: {kappa(pairs):.3f}")
    print(
        f"  both keep {matrix[(True, True)]}, both drop {matrix[(False, False)]}, "
        f"released keeps / codecook drops {matrix[(True, False)]}, "
        f"released drops / codecook keeps {matrix[(False, True)]}"
    )
    explained = sum(1 for *_, e in rows if e)
    print(f"  disagreements explained by a listed deviation: {explained}/{len(rows)}")

    print(f"\n{'released rule':48} {'codecook rule(s)':36} {'rel':>5} {'ours':>5} {'differ':>6}  deviation")
    names = sorted({k[0] for k in per_rule}, key=lambda k: (-per_rule[(k, "differ")], k))
    for name in names:
        mine = counterpart.get(name, [name] if name in own_rules else [])
        reason = unported.get(name) or "; ".join(deviations[r] for r in mine if r in deviations) or "-"
        print(
            f"{name:48} {','.join(mine) or '(not ported)':36} {per_rule[(name, 'theirs')]:5} "
            f"{per_rule[(name, 'ours')]:5} {per_rule[(name, 'differ')]:6}  {reason[:90]}"
        )

    print(
        f"\nspeed, one core: released {n / theirs_seconds:.1f} docs/s ({theirs_seconds:.1f} CPU s), "
        f"codecook {n / ours_seconds:.1f} docs/s ({ours_seconds:.1f} CPU s): "
        f"{theirs_seconds / ours_seconds:.1f}x"
    )
    print(f"\nfiles decided differently ({len(rows)}; first {args.show}):")
    for doc_id, keep_theirs, _, differing, was_explained in rows[: args.show]:
        verdict = "released keeps, codecook drops" if keep_theirs else "released drops, codecook keeps"
        rules = "; ".join(f"{name}->{','.join(mine) or '-'}" for name, mine in differing)
        print(f"  {'  ' if was_explained else '! '}{doc_id}: {verdict}: {rules}")


if __name__ == "__main__":
    main()
