"""Re-weighting languages (`code_mix`): declarative per-language downsampling and byte caps.

OpenCoder downsampled over-represented languages (Java from 409 GB to 200 GB, HTML from 213 GB to
64 GB); StarCoder capped data-like languages (JSON and YAML at 1 GB each, CSS at 3 GB). Both are
data here: `targets` maps a language to a `downsample` share and/or a `max_bytes` cap, and the
recipe's `scale` multiplies every cap, so the same targets serve a full-size run (scale 1) and
the demo corpus (a small scale).

Which files go is decided by one number per file, `unit = drop_unit(doc_id, "code_mix", seed)` in
[0, 1) (SHA-256 of seed and doc_id, computed identically in Spark and Python):

* downsample p: a file is kept when unit < p, so about p of the files (and bytes) stay;
* byte cap C: the files still in are taken in unit order until the next would pass C bytes.

The same doc_id keeps the same fate on every run and machine, and lowering p or C only removes
files (a file dropped at p = 0.5 is also dropped at p = 0.3).

StarCoder's other sources join here too: `sources` maps a source stage (notebooks, commits,
issues; `SOURCE_STAGES`) to the share of its documents mixed in, drawn the same way per doc_id
(salted with the stage name); a source not named is not mixed in. The language targets then apply
to code files and source documents alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from quality.recipe import RecipeError, config_from_dict
from quality.schema import REJECT_COLUMNS, reject_rows

STAGE = "code_mix"
GIB = 1024**3
# Source stages that may be mixed in (orchestration.source_stages declares them).
SOURCE_STAGES = ("notebooks_clean", "git_commits", "gh_issues")


@dataclass(frozen=True, kw_only=True)
class LanguageTarget:
    """What happens to one language in the mix."""

    downsample: float = 1.0
    """Share of the language's files kept, in [0, 1] (1: all)."""
    max_bytes: int | None = None
    """Byte cap at full scale (multiplied by the mix's `scale`); None: no cap."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.downsample <= 1.0:
            raise ValueError(f"downsample must be within [0, 1], got {self.downsample}")
        if self.max_bytes is not None and self.max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {self.max_bytes}")


def _default_targets() -> dict[str, dict[str, Any]]:
    return {
        "java": {"downsample": 0.49},  # OpenCoder: 409 GB -> 200 GB
        "html": {"downsample": 0.30},  # OpenCoder: 213 GB -> 64 GB
        "json": {"max_bytes": 1 * GIB},  # StarCoder
        "yaml": {"max_bytes": 1 * GIB},  # StarCoder
        "css": {"max_bytes": 3 * GIB},  # StarCoder
    }


@dataclass(frozen=True, kw_only=True)
class MixConfig:
    """How `code_mix` re-weights languages (recipe section `code_mix`)."""

    targets: dict[str, dict[str, Any]] = field(default_factory=_default_targets)
    """Language -> {downsample, max_bytes}; languages not named are kept whole."""
    scale: float = 1.0
    """Multiplier of every `max_bytes` (1 for full-size data; the demo recipe uses a small one)."""
    seed: int = 0
    """Seed of the per-file draw; another seed keeps another (equally sized) subset."""
    sources: dict[str, float] = field(default_factory=dict)
    """Source stage (one of SOURCE_STAGES) -> share of its documents mixed in, in [0, 1]; a source
    not named is not read (StarCoder's notebooks, commits and issues beside the code files)."""

    def language_targets(self) -> dict[str, LanguageTarget]:
        if self.scale <= 0:
            raise RecipeError(f"code_mix.scale must be > 0, got {self.scale}")
        for name, share in self.sources.items():
            if name not in SOURCE_STAGES:
                raise RecipeError(
                    f"code_mix.sources.{name}: not a source stage; known: {', '.join(SOURCE_STAGES)}"
                )
            if not 0.0 <= float(share) <= 1.0:
                raise RecipeError(f"code_mix.sources.{name}: share must lie in [0, 1], got {share}")
        return {
            lang.lower(): config_from_dict(LanguageTarget, spec, f"code_mix.targets.{lang}")
            for lang, spec in sorted(self.targets.items())
        }

    def cap_bytes(self, target: LanguageTarget) -> int | None:
        return None if target.max_bytes is None else int(target.max_bytes * self.scale)


def mix_unit(doc_id: str, seed: int) -> float:
    """The file's draw in [0, 1): SHA-256 of (seed, 'code_mix', doc_id), first 13 hex digits."""
    digest = hashlib.sha256(f"{seed}:{STAGE}:{doc_id}".encode()).hexdigest()
    return int(digest[:13], 16) / 16**13


def mix_unit_column(doc_id: Column, seed: int) -> Column:
    """`mix_unit` as a Spark expression (the same bits)."""
    digest = F.sha2(F.concat(F.lit(f"{seed}:{STAGE}:"), doc_id), 256)
    return F.conv(F.substring(digest, 1, 13), 16, 10).cast("double") / float(16**13)


def language_totals(frame: DataFrame) -> dict[str, dict[str, int]]:
    """{lang: {docs, bytes}} of a document frame."""
    rows = frame.groupBy("lang").agg(F.count("*").alias("docs"), F.sum("size_bytes").alias("bytes")).collect()
    return {
        r["lang"]: {"docs": int(r["docs"]), "bytes": int(r["bytes"] or 0)}
        for r in sorted(rows, key=lambda r: r["lang"] or "")
    }


@dataclass
class Mix:
    kept: DataFrame
    rejected: DataFrame
    before: dict[str, dict[str, int]]
    cutoffs: dict[str, float]
    caps: dict[str, int]


def source_unit_column(doc_id: Column, seed: int, source: str) -> Column:
    """A source document's draw in [0, 1), salted with its stage so sources draw independently."""
    return mix_unit_column(F.concat(F.lit(f"{source}:"), doc_id), seed)


def mix_in_sources(
    documents: DataFrame, sources: dict[str, DataFrame], config: MixConfig
) -> tuple[DataFrame, DataFrame | None]:
    """`documents` with each source's share of documents added (columns unioned by name), and the
    reject rows (`mix_source_share`) of the source documents left out; None without sources."""
    rejected = None
    for name, frame in sorted(sources.items()):
        share = float(config.sources[name])
        drawn = frame.withColumn("_unit", source_unit_column(F.col("doc_id"), config.seed, name))
        documents = documents.unionByName(
            drawn.filter(F.col("_unit") < share).drop("_unit"), allowMissingColumns=True
        )
        left_out = reject_rows(
            drawn.filter(F.col("_unit") >= share),
            STAGE,
            "mix_source_share",
            F.concat(
                F.lit(f"{name}: keep a share of {share:g} of documents (draw "),
                F.round("_unit", 4).cast("string"),
                F.lit(")"),
            ),
        )
        rejected = left_out if rejected is None else rejected.unionByName(left_out)
    return documents, rejected


def mix_documents(
    documents: DataFrame, config: MixConfig, sources: dict[str, DataFrame] | None = None
) -> Mix:
    """Apply the targets: kept documents (unchanged columns) and reject rows saying which target.
    `sources` (stage name -> documents) are mixed in first by `config.sources` shares."""
    targets = config.language_targets()
    source_rejects = None
    if sources:
        documents, source_rejects = mix_in_sources(documents, sources, config)
    before = language_totals(documents)
    with_unit = documents.withColumn("_unit", mix_unit_column(F.col("doc_id"), config.seed)).withColumn(
        "_lang", F.lower(F.col("lang"))
    )
    share = F.lit(1.0)
    for lang, target in targets.items():
        share = F.when(F.col("_lang") == lang, F.lit(float(target.downsample))).otherwise(share)
    with_unit = with_unit.withColumn("_share", share)

    # Byte caps: on a narrow frame, the running byte total in unit order per capped language gives
    # the largest unit that still fits; only those few numbers come back to the driver.
    caps = {lang: config.cap_bytes(t) for lang, t in targets.items() if t.max_bytes is not None}
    cutoffs: dict[str, float] = {}
    if caps:
        narrow = with_unit.filter(
            F.col("_lang").isin(list(caps)) & (F.col("_unit") < F.col("_share"))
        ).select("_lang", "doc_id", "size_bytes", "_unit")
        running = F.sum("size_bytes").over(
            Window.partitionBy("_lang").orderBy("_unit", "doc_id").rowsBetween(Window.unboundedPreceding, 0)
        )
        cap_column = F.lit(None).cast("long")
        for lang, cap in caps.items():
            cap_column = F.when(F.col("_lang") == lang, F.lit(cap)).otherwise(cap_column)
        fitting = narrow.withColumn("_running", running).filter(F.col("_running") <= cap_column)
        found = {
            r["_lang"]: float(r["cutoff"])
            for r in fitting.groupBy("_lang").agg(F.max("_unit").alias("cutoff")).collect()
        }
        cutoffs = {lang: found.get(lang, -1.0) for lang in caps}  # -1: not even the first file fits

    cutoff = F.lit(2.0)  # above any unit: uncapped
    for lang, value in cutoffs.items():
        cutoff = F.when(F.col("_lang") == lang, F.lit(value)).otherwise(cutoff)
    judged = with_unit.withColumn(
        "_reason",
        F.when(F.col("_unit") >= F.col("_share"), F.lit("mix_downsample")).when(
            F.col("_unit") > cutoff, F.lit("mix_byte_cap")
        ),
    )
    detail_cap = F.lit("")
    for lang, cap in caps.items():
        detail_cap = F.when(
            F.col("_lang") == lang,
            F.lit(
                f"{lang}: byte cap {cap} bytes ({targets[lang].max_bytes} x scale {config.scale:g}) reached"
            ),
        ).otherwise(detail_cap)
    detail = F.when(
        F.col("_reason") == "mix_downsample",
        F.concat(
            F.col("_lang"),
            F.lit(": keep a share of "),
            F.col("_share").cast("string"),
            F.lit(" of files (draw "),
            F.round(F.col("_unit"), 4).cast("string"),
            F.lit(")"),
        ),
    ).otherwise(detail_cap)
    kept = judged.filter(F.col("_reason").isNull()).select(*documents.columns)
    rejected = judged.filter(F.col("_reason").isNotNull()).select(
        "doc_id",
        F.lit(STAGE).alias("stage"),
        F.col("_reason").alias("reason"),
        detail.alias("detail"),
        "path",
        "lang",
        "size_bytes",
        F.lit(None).cast("string").alias("cluster_id"),
        F.lit(None).cast("string").alias("kept_doc_id"),
    )
    rejected = rejected.select(*REJECT_COLUMNS)
    if source_rejects is not None:
        rejected = rejected.unionByName(source_rejects.select(*REJECT_COLUMNS))
    return Mix(kept, rejected, before, cutoffs, {k: int(v) for k, v in caps.items()})


def plot_mix(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], top: int = 20):
    """A matplotlib figure: bytes per language before and after the mix (largest first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    languages = sorted(before, key=lambda lang: -before[lang]["bytes"])[:top]
    figure, axis = plt.subplots(figsize=(8, 0.32 * len(languages) + 1.4))
    positions = range(len(languages))
    mb_before = [before[lang]["bytes"] / 1e6 for lang in languages]
    mb_after = [after.get(lang, {}).get("bytes", 0) / 1e6 for lang in languages]
    axis.barh([p + 0.2 for p in positions], mb_before, height=0.4, label="before", color="#9aa5b1")
    axis.barh([p - 0.2 for p in positions], mb_after, height=0.4, label="after", color="#2f6fdf")
    axis.set_yticks(list(positions), languages)
    axis.invert_yaxis()
    axis.set_xlabel("MB")
    axis.set_title("code_mix: bytes per language before and after re-weighting")
    axis.legend(loc="lower right")
    figure.tight_layout()
    return figure


def mix_table(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], targets: dict[str, LanguageTarget]
) -> list[dict[str, Any]]:
    rows = []
    for lang in sorted(before, key=lambda lang: -before[lang]["bytes"]):
        target = targets.get(lang.lower())
        b, a = before[lang], after.get(lang, {"docs": 0, "bytes": 0})
        rows.append(
            {
                "lang": lang,
                "target": ""
                if target is None
                else f"x{target.downsample:g}" + (f", cap {target.max_bytes}" if target.max_bytes else ""),
                "docs_before": b["docs"],
                "docs_after": a["docs"],
                "bytes_before": b["bytes"],
                "bytes_after": a["bytes"],
                "share_of_bytes_before": round(
                    b["bytes"] / max(1, sum(v["bytes"] for v in before.values())), 4
                ),
                "share_of_bytes_after": round(
                    a["bytes"] / max(1, sum(v["bytes"] for v in after.values())), 4
                ),
            }
        )
    return rows
