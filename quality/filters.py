"""Decisions: threshold profiles applied to stored signals (the cheap half of "signals then decisions").

A *profile* (`quality/profiles/<name>.yaml`) is versioned data: the languages it judges and its
rules, each one signal, one comparison and one threshold (see `general.yaml` for the format). A
language profile `extends` another and adds, overrides or disables rules. Nothing is evaluated as
code: comparisons are a closed set of operators, so a profile cannot run anything.

The same profiles are applied two ways that must agree (a test checks they do):
* `decision_columns`: Spark column expressions, so the filter over a corpus is one projection
  in the JVM with no Python worker at all;
* `ProfileSet.fired_rules`: plain Python over one signals dict, for tests, benchmarks and notebooks.

OpenCoder's random drops (`drop_probability`) are decided by `drop_unit(doc_id, rule, seed)`, a
number in [0, 1) from SHA-256 of the three: the same documents go on every run and machine.

A rejected row's `reason` is the first rule that fired in profile order; `detail` names every rule
that fired with the signal value and threshold, e.g.
`long_lines_max: max_line_length=5120 > 1000; alpha_fraction: frac_alpha=0.12 < 0.25`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

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


def drop_unit(doc_id: str, rule: str, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, rule, doc_id): the probabilistic drops' coin."""
    digest = hashlib.sha256(f"{seed}:{rule}:{doc_id}".encode()).hexdigest()
    return int(digest[:13], 16) / 16**13


def drop_unit_column(doc_id: Column, rule: str, seed: int) -> Column:
    """`drop_unit` as a Spark expression (same bits: SHA-256, first 13 hex digits)."""
    digest = F.sha2(F.concat(F.lit(f"{seed}:{rule}:"), doc_id), 256)
    return F.conv(F.substring(digest, 1, 13), 16, 10).cast("double") / float(16**13)


def _parse_rule(name: str, spec: Any, where: str) -> Rule:
    if not isinstance(spec, dict):
        raise RecipeError(f"{where}: rule {name!r} must be a mapping, got {spec!r}")
    known = set(OPERATORS) | {"signal", "drop_probability", "only", "note"}
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
    return Rule(name, signal, op, value, probability, tuple(only) if only else None, spec.get("note"))


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

    def __init__(self, profiles: dict[str, Profile], seed: int = 0) -> None:
        self.profiles = profiles
        self.seed = seed
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
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def versions(self) -> dict[str, int]:
        return {name: p.version for name, p in sorted(self.profiles.items())}

    # ---- Python evaluation ----------------------------------------------------------------
    def fired_rules(self, signals: dict[str, Any], doc_id: str, lang: str | None) -> list[tuple[Rule, Any]]:
        """Every rule of the document's profile that fires, in profile order, with the value seen."""
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
            set(document) - {"name", "version", "extends", "languages", "rules", "disable", "description"}
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
        profiles[name] = Profile(name, int(document.get("version", 1)), languages, parsed)
    return ProfileSet(profiles, seed=config.seed)


# ---- Spark evaluation ------------------------------------------------------------------------
def _condition(rule: Rule) -> Column:
    column = F.col(rule.signal)
    if rule.op == "is_set":
        return column.isNotNull() if rule.value else column.isNull()
    if rule.op == "outside":
        condition = (column < F.lit(rule.value[0])) | (column > F.lit(rule.value[1]))
    else:
        value = F.lit(rule.value)
        condition = {
            "gt": lambda: column > value,
            "ge": lambda: column >= value,
            "lt": lambda: column < value,
            "le": lambda: column <= value,
            "eq": lambda: column == value,
            "ne": lambda: column != value,
        }[rule.op]()
    return F.coalesce(condition, F.lit(False))


def _value_text(rule: Rule) -> Column:
    column = F.col(rule.signal)
    kind = SIGNALS[rule.signal][0] if rule.signal in SIGNALS else None
    if kind is not None and str(kind) == "double":
        return F.coalesce(F.round(column, 4).cast("string"), F.lit("null"))
    if rule.op == "is_set":
        return F.coalesce(F.substring(column.cast("string"), 1, 120), F.lit("null"))
    return F.coalesce(F.lower(column.cast("string")), F.lit("null"))


def profile_column(profiles: ProfileSet, lang: Column) -> Column:
    """The name of the profile judging each row."""
    lowered = F.lower(lang)
    expression = F.lit(profiles.fallback)
    for language, name in sorted(profiles.by_language.items()):
        expression = F.when(lowered == F.lit(language), F.lit(name)).otherwise(expression)
    return expression


def decision_columns(profiles: ProfileSet) -> tuple[Column, Column]:
    """(reason, detail) Spark expressions over a frame with doc_id, lang, `_profile` and signals:
    reason is null when no rule fires."""
    fired: list[tuple[Column, Rule]] = []
    for profile in profiles.profiles.values():
        for rule in profile.rules:
            condition = (F.col("_profile") == F.lit(profile.name)) & _condition(rule)
            if rule.only:
                condition = condition & F.lower(F.col("lang")).isin(list(rule.only))
            if rule.drop_probability < 1.0:
                condition = condition & (
                    drop_unit_column(F.col("doc_id"), rule.name, profiles.seed) < rule.drop_probability
                )
            fired.append((condition, rule))
    if not fired:
        return F.lit(None).cast("string"), F.lit(None).cast("string")
    reason = F.coalesce(*[F.when(condition, F.lit(rule.name)) for condition, rule in fired])
    pieces = []
    for condition, rule in fired:
        suffix = f" {rule.threshold_text()}" + (
            f" (p={rule.drop_probability:g})" if rule.drop_probability < 1 else ""
        )
        text = F.concat(F.lit(f"{rule.name}: {rule.signal}="), _value_text(rule), F.lit(suffix))
        pieces.append(F.when(condition, text))
    # concat_ws skips nulls: only the rules that fired appear.
    detail = F.concat_ws("; ", *pieces)
    return reason, detail


def apply_filters(
    documents: DataFrame, signals: DataFrame, profiles: ProfileSet
) -> tuple[DataFrame, DataFrame]:
    """(kept documents with their own columns, reject rows) of `documents` judged by `signals`.

    A document without a signals row is rejected as `missing_signals` rather than kept unjudged."""
    signal_columns = [c for c in signals.columns if c not in ("lang", "size_bytes")]
    renamed = signals.select(
        *[F.col(c).alias(c) for c in signal_columns],
        F.col("size_bytes").alias("_signal_size_bytes"),
        F.lit(True).alias("_has_signals"),
    )
    joined = documents.join(renamed, on="doc_id", how="left")
    # Rules on size_bytes read the document's own column (identical to the signals' copy).
    reason, detail = decision_columns(profiles)
    judged = joined.withColumn("_profile", profile_column(profiles, F.col("lang")))
    judged = judged.withColumn(
        "_reason", F.when(F.col("_has_signals").isNull(), F.lit("missing_signals")).otherwise(reason)
    ).withColumn(
        "_detail",
        F.when(F.col("_has_signals").isNull(), F.lit("no row for this doc_id in quality_signals")).otherwise(
            F.concat(F.lit("profile "), F.col("_profile"), F.lit(": "), detail)
        ),
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
