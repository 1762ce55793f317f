"""Decisions: threshold profiles applied to stored signals (the cheap half of "signals then decisions").

A *profile* (`quality/profiles/<name>.yaml`) is versioned data: the languages it judges and its
rules, each one signal, one comparison and one threshold (see `general.yaml` for the format). A
language profile `extends` another and adds, overrides or disables rules. Nothing is evaluated as
code: comparisons are a closed set of operators, so a profile cannot run anything.

The same profiles are applied two ways that must agree (a test checks they do):
* `decide_batch`: per Arrow batch of the narrow signals table, one vectorised comparison per rule
  (this is what Spark runs, in `mapInArrow`; only the rows a rule fires on are touched in Python).
  It is not a Spark SQL expression on purpose: ~400 CASE WHENs overflow Spark's 64 KB generated
  method limit and fall back to interpretation with a wall of compiler errors in the log.
* `ProfileSet.fired_rules`: plain Python over one signals dict, for tests, benchmarks and notebooks.

OpenCoder's random drops (`drop_probability`) are decided by `drop_unit(doc_id, rule, seed)`, a
number in [0, 1) from SHA-256 of the three: the same documents go on every run and machine.

A rejected row's `reason` is the first rule that fired in profile order; `detail` names the
profile and every rule that fired with the signal value and threshold, e.g.
`profile javascript: long_lines_max: max_line_length=5120 > 1000; alpha_fraction: frac_alpha_visible=0.12 < 0.5`.

Two recipe knobs sit beside the profiles, for OpenCoder's ablations (`FilterConfig`): `min_stars`
(a document-level stars rule, reasons `min_stars` / `stars_unknown`, decided before the profiles)
and `enabled: false` (no profile rule applies: the "quality filters off" variant).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from quality.recipe import RecipeError
from quality.schema import REJECT_COLUMNS
from quality.signals import SIGNALS

STAGE = "filtered_code"
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
FALLBACK = "*"
# Columns a rule may name besides the signals: the signals table carries them too.
EXTRA_RULE_COLUMNS = {"size_bytes"}
OPERATORS = ("gt", "ge", "lt", "le", "eq", "ne", "outside", "is_set")
_SYMBOL = {
    "gt": ">",
    "ge": ">=",
    "lt": "<",
    "le": "<=",
    "eq": "==",
    "ne": "!=",
    "outside": "outside",
    "is_set": "is set",
}


@dataclass(frozen=True, kw_only=True)
class FilterConfig:
    """How `filtered_code` applies the profiles (recipe section `quality_filter`)."""

    profiles_dir: str | None = None
    """Folder of profile YAML files; None: the ones shipped in `quality/profiles/`."""
    seed: int = 0
    """Seed of the probabilistic drops (with doc_id and rule name); change it to draw another subset."""
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per profile, rule fields to change without editing the YAML, e.g.
    `{python: {prompt_comments: {gt: 0.05}}}`; a rule set to null is disabled."""
    disabled_rules: tuple[str, ...] = ()
    """Rules switched off in every profile."""
    enabled: bool = True
    """False switches every profile rule off: `filtered_code` keeps every document (only
    `min_stars`, when set, still rejects), so generated, minified and data files reach training:
    the "quality filters off" sanity ablation, which must train worse. `quality_signals` is still
    computed (it is its own stage). `code_web_pages` reads this section too, so its text profile
    is off as well."""
    min_stars: int | None = None
    """Keep only code documents with at least this many `stars` (OpenCoder's GitHub-stars filter
    ablation); the others are rejected as `min_stars`. A code document whose stars are unknown
    (null, or no `stars` column) is rejected as `stars_unknown`, a reason of its own: a popularity
    filter keeps what is known to clear the bar, and the funnel shows how much was unknown. Web
    pages (`source = 'web'`) have no repository and are never judged on stars. None: no stars rule.
    Decided before the profiles: when it fires it is the reason, and the detail names it last."""

    def __post_init__(self) -> None:
        if self.min_stars is not None and self.min_stars < 0:
            raise ValueError(f"min_stars must be >= 0 or null, got {self.min_stars}")


@dataclass(frozen=True)
class Rule:
    """One threshold: fires when `signal` compares `op` to `value` (nulls never fire, bar is_set)."""

    name: str
    signal: str
    op: str
    value: Any
    drop_probability: float = 1.0
    only: tuple[str, ...] | None = None
    note: str | None = None
    # Documentation only (never part of the decision or the fingerprint): the released OpenCoder
    # signal this rule stands for, and how and why this rule differs from it.
    opencoder: str | None = None
    deviation: str | None = None

    def condition_holds(self, observed: Any) -> bool:
        if self.op == "is_set":
            return (observed is not None) == bool(self.value)
        if observed is None or (isinstance(observed, float) and math.isnan(observed)):
            return False
        if self.op == "outside":
            low, high = self.value
            return observed < low or observed > high
        if self.op == "gt":
            return observed > self.value
        if self.op == "ge":
            return observed >= self.value
        if self.op == "lt":
            return observed < self.value
        if self.op == "le":
            return observed <= self.value
        if self.op == "eq":
            return observed == self.value
        return observed != self.value

    def threshold_text(self) -> str:
        if self.op == "outside":
            return f"outside [{self.value[0]}, {self.value[1]}]"
        if self.op == "is_set":
            return "is set"
        value = str(self.value).lower() if isinstance(self.value, bool) else self.value
        return f"{_SYMBOL[self.op]} {value}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            self.op: list(self.value) if isinstance(self.value, tuple) else self.value,
            **({"drop_probability": self.drop_probability} if self.drop_probability < 1 else {}),
            **({"only": list(self.only)} if self.only else {}),
        }


@dataclass(frozen=True)
class Profile:
    name: str
    version: int
    languages: tuple[str, ...]
    rules: tuple[Rule, ...]
    # Released OpenCoder rules this profile does not port, each with the reason (documentation).
    opencoder_unported: tuple[tuple[str, str], ...] = ()


def drop_unit(doc_id: str, rule: str, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, rule, doc_id): the probabilistic drops' coin."""
    digest = hashlib.sha256(f"{seed}:{rule}:{doc_id}".encode()).hexdigest()
    return int(digest[:13], 16) / 16**13


def _parse_rule(name: str, spec: Any, where: str) -> Rule:
    if not isinstance(spec, dict):
        raise RecipeError(f"{where}: rule {name!r} must be a mapping, got {spec!r}")
    known = set(OPERATORS) | {"signal", "drop_probability", "only", "note", "opencoder", "deviation"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise RecipeError(f"{where}: rule {name!r} has unknown key(s) {unknown}; known: {sorted(known)}")
    signal = spec.get("signal")
    if signal not in SIGNALS and signal not in EXTRA_RULE_COLUMNS:
        raise RecipeError(f"{where}: rule {name!r} names unknown signal {signal!r}")
    ops = [op for op in OPERATORS if op in spec]
    if len(ops) != 1:
        raise RecipeError(f"{where}: rule {name!r} needs exactly one of {list(OPERATORS)}, got {ops}")
    op, value = ops[0], spec[ops[0]]
    if op == "outside":
        if not (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(isinstance(v, int | float) for v in value)
        ):
            raise RecipeError(f"{where}: rule {name!r}: outside needs [low, high], got {value!r}")
        value = (value[0], value[1])
    elif op in ("gt", "ge", "lt", "le") and not (
        isinstance(value, int | float) and not isinstance(value, bool)
    ):
        raise RecipeError(f"{where}: rule {name!r}: {op} needs a number, got {value!r}")
    elif op in ("eq", "ne") and not isinstance(value, int | float | bool):
        raise RecipeError(f"{where}: rule {name!r}: {op} needs a number or true/false, got {value!r}")
    elif op == "is_set" and not isinstance(value, bool):
        raise RecipeError(f"{where}: rule {name!r}: is_set needs true or false")
    probability = float(spec.get("drop_probability", 1.0))
    if not 0.0 <= probability <= 1.0:
        raise RecipeError(f"{where}: rule {name!r}: drop_probability must be within [0, 1]")
    only = spec.get("only")
    return Rule(
        name,
        signal,
        op,
        value,
        probability,
        tuple(only) if only else None,
        spec.get("note"),
        spec.get("opencoder"),
        spec.get("deviation"),
    )


def _merge(base: dict[str, dict], changes: dict[str, Any] | None, where: str) -> dict[str, dict]:
    """Rules of `base` updated by `changes`: a mapping replaces or adds a rule, null removes it,
    and a partial mapping (no `signal`) changes only the fields it names."""
    merged = dict(base)
    for name, spec in (changes or {}).items():
        if spec is None:
            merged.pop(name, None)
        elif isinstance(spec, dict) and "signal" not in spec and name in merged:
            updated = {
                k: v
                for k, v in merged[name].items()
                if k not in OPERATORS or not (set(spec) & set(OPERATORS))
            }
            merged[name] = {**updated, **spec}
        else:
            merged[name] = spec
    return merged


class ProfileSet:
    """Every profile, resolved (extends applied), with the language -> profile lookup."""

    def __init__(
        self,
        profiles: dict[str, Profile],
        seed: int = 0,
        *,
        enabled: bool = True,
        min_stars: int | None = None,
    ) -> None:
        self.profiles = profiles
        self.seed = seed
        # FilterConfig.enabled: False means no profile rule fires (the profiles are still loaded,
        # validated and reported). FilterConfig.min_stars: the stars rule `apply_filters` adds.
        self.enabled = enabled
        self.min_stars = min_stars
        self.by_language: dict[str, str] = {}
        self.fallback: str | None = None
        for profile in profiles.values():
            for lang in profile.languages:
                if lang == FALLBACK:
                    if self.fallback:
                        raise RecipeError(f"profiles {self.fallback!r} and {profile.name!r} both claim '*'")
                    self.fallback = profile.name
                elif lang in self.by_language:
                    raise RecipeError(
                        f"language {lang!r} is claimed by {self.by_language[lang]!r} and {profile.name!r}"
                    )
                else:
                    self.by_language[lang] = profile.name
        if self.fallback is None:
            raise RecipeError("no profile claims the fallback language '*'")

    def profile_for(self, lang: str | None) -> Profile:
        return self.profiles[self.by_language.get((lang or "").lower(), self.fallback)]

    def fingerprint(self) -> str:
        """A hash of every resolved rule: two runs with the same fingerprint decide identically."""
        payload = {
            name: {
                "version": p.version,
                "languages": list(p.languages),
                "rules": {r.name: r.as_dict() for r in p.rules},
            }
            for name, p in sorted(self.profiles.items())
        }
        payload["seed"] = self.seed
        # Only when not the default, so the fingerprints of existing runs stay what they were.
        if not self.enabled:
            payload["enabled"] = False
        if self.min_stars is not None:
            payload["min_stars"] = self.min_stars
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def versions(self) -> dict[str, int]:
        return {name: p.version for name, p in sorted(self.profiles.items())}

    # ---- Python evaluation ----------------------------------------------------------------
    def fired_rules(self, signals: dict[str, Any], doc_id: str, lang: str | None) -> list[tuple[Rule, Any]]:
        """Every rule of the document's profile that fires, in profile order, with the value seen."""
        if not self.enabled:
            return []
        profile = self.profile_for(lang)
        fired = []
        for rule in profile.rules:
            if rule.only and (lang or "").lower() not in rule.only:
                continue
            observed = signals.get(rule.signal)
            if not rule.condition_holds(observed):
                continue
            if (
                rule.drop_probability < 1.0
                and drop_unit(doc_id, rule.name, self.seed) >= rule.drop_probability
            ):
                continue
            fired.append((rule, observed))
        return fired


def load_profiles(config: FilterConfig | None = None) -> ProfileSet:
    """Read, validate and resolve the profile folder (`extends`, overrides, disabled rules)."""
    config = config or FilterConfig()
    folder = Path(config.profiles_dir) if config.profiles_dir else PROFILES_DIR
    raw: dict[str, dict] = {}
    for path in sorted(folder.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        name = document.get("name") or path.stem
        unknown = sorted(
            set(document)
            - {
                "name",
                "version",
                "extends",
                "languages",
                "rules",
                "disable",
                "description",
                "opencoder_unported",
            }
        )
        if unknown:
            raise RecipeError(f"{path.name}: unknown key(s) {unknown}")
        if name in raw:
            raise RecipeError(f"{path.name}: profile {name!r} defined twice")
        raw[name] = {**document, "_file": path.name}
    if not raw:
        raise RecipeError(f"no profile YAML in {folder}")
    unknown_overrides = sorted(set(config.overrides) - set(raw))
    if unknown_overrides:
        raise RecipeError(
            f"quality_filter.overrides names unknown profile(s) {unknown_overrides}; known: {sorted(raw)}"
        )

    resolved: dict[str, dict[str, dict]] = {}

    def resolve(name: str, chain: tuple[str, ...] = ()) -> dict[str, dict]:
        if name in resolved:
            return resolved[name]
        if name in chain:
            raise RecipeError(f"profiles extend each other in a loop: {' -> '.join((*chain, name))}")
        if name not in raw:
            raise RecipeError(f"profile {chain[-1] if chain else '?'!r} extends unknown profile {name!r}")
        document = raw[name]
        parent = resolve(document["extends"], (*chain, name)) if document.get("extends") else {}
        rules = _merge(parent, document.get("rules"), document["_file"])
        for disabled in document.get("disable") or ():
            if disabled not in rules:
                raise RecipeError(f"{document['_file']}: disables unknown rule {disabled!r}")
            rules.pop(disabled)
        resolved[name] = rules
        return rules

    profiles = {}
    for name, document in raw.items():
        rules = _merge(resolve(name), config.overrides.get(name), f"quality_filter.overrides.{name}")
        for disabled in config.disabled_rules:
            rules.pop(disabled, None)
        parsed = tuple(_parse_rule(rule, spec, document["_file"]) for rule, spec in rules.items())
        languages = tuple(
            str(lang).lower() if lang != FALLBACK else FALLBACK for lang in document.get("languages") or ()
        )
        if not languages:
            raise RecipeError(f"{document['_file']}: a profile must list its languages")
        unported = document.get("opencoder_unported") or {}
        profiles[name] = Profile(
            name, int(document.get("version", 1)), languages, parsed, tuple(sorted(unported.items()))
        )
    return ProfileSet(profiles, seed=config.seed, enabled=config.enabled, min_stars=config.min_stars)


# ---- Batch evaluation (Arrow), as Spark runs it ------------------------------------------------
_COMPARE = {
    "gt": pc.greater,
    "ge": pc.greater_equal,
    "lt": pc.less,
    "le": pc.less_equal,
    "eq": pc.equal,
    "ne": pc.not_equal,
}


def _rule_mask(rule: Rule, column: pa.Array) -> np.ndarray:
    """Rows of `column` where the rule's comparison holds (nulls: False, bar is_set)."""
    if rule.op == "is_set":
        valid = pc.is_valid(column)
        mask = valid if rule.value else pc.invert(valid)
    elif rule.op == "outside":
        mask = pc.or_(pc.less(column, rule.value[0]), pc.greater(column, rule.value[1]))
    else:
        mask = _COMPARE[rule.op](column, rule.value)
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def _format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value[:120]
    return str(value)


def decide_batch(batch: pa.RecordBatch, profiles: ProfileSet) -> pa.RecordBatch:
    """(doc_id, profile, reason, detail) for a batch of signal rows: each rule is one vectorised
    comparison over the batch; only the rows a rule fires on are touched in Python."""
    n = batch.num_rows
    langs = [(lang or "").lower() for lang in batch.column("lang").to_pylist()]
    profile_names = np.array([profiles.profile_for(lang).name for lang in langs], dtype=object)
    doc_ids = batch.column("doc_id").to_pylist()
    fired: list[list[tuple[Rule, int]]] = [[] for _ in range(n)]
    for profile in profiles.profiles.values() if profiles.enabled else ():
        # Each profile's rules run on its own rows only (one `take`, then one comparison per rule).
        rows_of_profile = np.flatnonzero(profile_names == profile.name)
        if not rows_of_profile.size:
            continue
        subset = batch.take(pa.array(rows_of_profile))
        for rule in profile.rules:
            mask = _rule_mask(rule, subset.column(rule.signal))
            for row in rows_of_profile[mask]:
                if rule.only and langs[row] not in rule.only:
                    continue
                if (
                    rule.drop_probability < 1.0
                    and drop_unit(doc_ids[row], rule.name, profiles.seed) >= rule.drop_probability
                ):
                    continue
                fired[row].append((rule, row))
    reasons, details = [], []
    for row, hits in enumerate(fired):
        if not hits:
            reasons.append(None)
            details.append(None)
            continue
        # Rules run profile by profile, so hits are already in profile order.
        reasons.append(hits[0][0].name)
        pieces = []
        for rule, _ in hits:
            observed = batch.column(rule.signal)[row].as_py()
            chance = f" (p={rule.drop_probability:g})" if rule.drop_probability < 1 else ""
            pieces.append(
                f"{rule.name}: {rule.signal}={_format_value(observed)} {rule.threshold_text()}{chance}"
            )
        details.append(f"profile {profile_names[row]}: " + "; ".join(pieces))
    return pa.RecordBatch.from_arrays(
        [
            batch.column("doc_id"),
            pa.array(profile_names.tolist(), pa.string()),
            pa.array(reasons, pa.string()),
            pa.array(details, pa.string()),
        ],
        names=["doc_id", "profile", "reason", "detail"],
    )


DECISION_SCHEMA = T.StructType(
    [
        T.StructField("doc_id", T.StringType(), False),
        T.StructField("profile", T.StringType(), True),
        T.StructField("reason", T.StringType(), True),
        T.StructField("detail", T.StringType(), True),
    ]
)


def decisions(signals: DataFrame, profiles: ProfileSet) -> DataFrame:
    """(doc_id, profile, reason, detail) for every row of a signals table; reason null = keep."""
    needed = sorted(
        {"doc_id", "lang"} | {rule.signal for p in profiles.profiles.values() for rule in p.rules}
    )

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield decide_batch(batch, profiles)

    return signals.select(*needed).mapInArrow(run, DECISION_SCHEMA)


def stars_verdict(documents: DataFrame, min_stars: int | None) -> tuple[Column, Column]:
    """(reason, detail) of the stars rule (`FilterConfig.min_stars`) for each row; nulls = passes.

    `min_stars` when stars < min_stars, `stars_unknown` when they are null or the frame has no
    `stars` column; rows with `source = 'web'` are never judged. The detail reads like a profile
    rule's, `min_stars: stars=3 < 10`, so `rule_hits` counts it."""
    if min_stars is None:
        return F.lit(None).cast("string"), F.lit(None).cast("string")
    stars = F.col("stars").cast("long") if "stars" in documents.columns else F.lit(None).cast("long")
    code = F.coalesce(F.col("source") != "web", F.lit(True)) if "source" in documents.columns else F.lit(True)
    reason = F.when(code & stars.isNull(), F.lit("stars_unknown")).when(
        code & (stars < F.lit(min_stars)), F.lit("min_stars")
    )
    detail = F.when(code & stars.isNull(), F.lit(f"stars_unknown: stars=null, min_stars {min_stars}")).when(
        code & (stars < F.lit(min_stars)), F.format_string(f"min_stars: stars=%d < {min_stars}", stars)
    )
    return reason, detail


def apply_filters(
    documents: DataFrame, signals: DataFrame, profiles: ProfileSet
) -> tuple[DataFrame, DataFrame]:
    """(kept documents with their own columns, reject rows) of `documents` judged by `signals`.

    Decisions are made on the narrow signals table and joined to the documents by doc_id, so the
    content is read once and never passes through Python. A document without a signals row is
    rejected as `missing_signals` rather than kept unjudged.

    With `profiles.enabled` False (`quality_filter.enabled: false`) no profile rule applies and
    the signals are not read: every document is kept, bar what the stars rule rejects. The stars
    rule (`quality_filter.min_stars`, see `stars_verdict`) is decided first: when it fires its
    rule is the reason, and the detail lists it after any profile rules that fired too."""
    star_reason, star_detail = stars_verdict(documents, profiles.min_stars)
    if profiles.enabled:
        verdicts = decisions(signals, profiles).select(
            "doc_id",
            F.col("reason").alias("_reason"),
            F.col("detail").alias("_detail"),
            F.lit(True).alias("_judged"),
        )
        judged = documents.join(verdicts, on="doc_id", how="left")
        missing = F.col("_judged").isNull()
        profile_reason = F.when(missing, F.lit("missing_signals")).otherwise(F.col("_reason"))
        profile_detail = F.when(missing, F.lit("no row for this doc_id in quality_signals")).otherwise(
            F.col("_detail")
        )
    else:
        judged = documents
        profile_reason = profile_detail = F.lit(None).cast("string")
    judged = judged.withColumn("_reason", F.coalesce(star_reason, profile_reason)).withColumn(
        "_detail", F.concat_ws("; ", profile_detail, star_detail)
    )
    kept = judged.filter(F.col("_reason").isNull()).select(*documents.columns)
    rejected = judged.filter(F.col("_reason").isNotNull()).select(
        "doc_id",
        F.lit(STAGE).alias("stage"),
        F.col("_reason").alias("reason"),
        F.col("_detail").alias("detail"),
        "path",
        "lang",
        "size_bytes",
        F.lit(None).cast("string").alias("cluster_id"),
        F.lit(None).cast("string").alias("kept_doc_id"),
    )
    return kept, rejected.select(*REJECT_COLUMNS)


def rule_hits(rejected: DataFrame) -> dict[str, int]:
    """How often each rule fired among rejected rows (every rule named in detail, not only the
    reason): OpenCoder's per-rule hit map, for the funnel and asset metadata."""
    body = F.regexp_replace(F.col("detail"), r"^profile [^:]+: ", "")
    names = F.explode(F.split(body, "; ")).alias("piece")
    counts = (
        rejected.select(names)
        .select(F.regexp_extract("piece", r"^([A-Za-z0-9_]+):", 1).alias("rule"))
        .filter(F.col("rule") != "")
        .groupBy("rule")
        .count()
        .collect()
    )
    return {row["rule"]: int(row["count"]) for row in sorted(counts, key=lambda r: (-r["count"], r["rule"]))}
