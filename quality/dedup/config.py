"""Dedup settings and the LSH arithmetic behind them.

MinHash LSH splits a signature of `num_perm` values into `num_bands` bands of `rows_per_band`
values. Two documents become candidates when all values of at least one band agree, which for a
pair with Jaccard similarity J happens with probability

    P(J) = 1 - (1 - J ** rows_per_band) ** num_bands        (the "S-curve")

whose steepest point sits near (1 / num_bands) ** (1 / rows_per_band). Writing bands and rows the
wrong way round is the classic mistake: 16 bands x 128 rows puts that point at J ~ 0.98, which
finds only near-identical files. So both numbers are named explicitly here, and when they are not
given they are derived from `threshold` with the derivation printed (see `LSHParams.explain`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

# SPDX ids (lower case) counted as permissive by the keep policy. Deliberately short and well known;
# a recipe can replace it.
PERMISSIVE_LICENCES: tuple[str, ...] = (
    "mit",
    "mit-0",
    "apache-2.0",
    "bsd-2-clause",
    "bsd-3-clause",
    "0bsd",
    "isc",
    "zlib",
    "unlicense",
    "cc0-1.0",
    "bsl-1.0",
    "psf-2.0",
    "python-2.0",
    "upl-1.0",
    "postgresql",
)


@dataclass(frozen=True, kw_only=True)
class DedupConfig:
    """Exact (SHA-256) and near (MinHash LSH) deduplication; the recipe's `dedup:` section."""

    level: Literal["file", "repo"] = "file"
    """What one duplicate is. `file`: every file on its own, across all repositories (what
    OpenCoder and StarCoder ship). `repo`: the repository (`repo` column; a document without one
    is a unit of its own) is deduplicated as a whole and removed whole, and files are never
    deduplicated one by one, so near-duplicate or identical files in otherwise different
    repositories all survive: OpenCoder's repository-level ablation, which kept many more
    duplicate tokens and trained worse. Rejects are `repo_exact_duplicate` /
    `repo_near_duplicate`; see `quality.dedup.engine` for the unit's content and hash."""
    shingle_size: int = 5
    """Tokens per shingle. Tokens are maximal runs of letters, digits and `_` (so whitespace and
    punctuation changes do not matter); BigCode and OpenCoder use 5-grams."""
    num_perm: int = 256
    """MinHash permutations, i.e. signature length (BigCode: 256). More is more accurate and slower."""
    threshold: float = 0.7
    """Target Jaccard similarity. Used to derive bands x rows when they are not given, and as the
    cut-off of exact verification when `verify` is on (unless `verify_threshold` says otherwise)."""
    num_bands: int | None = None
    """LSH bands. Give it together with `rows_per_band`, or leave both unset to derive them from
    `threshold`. `num_bands * rows_per_band` must not exceed `num_perm`."""
    rows_per_band: int | None = None
    """Signature values per band (a band matches only if all of them agree)."""
    false_negative_weight: float = 0.5
    """When deriving bands x rows: weight of missed pairs above `threshold` against the weight
    (1 - this) of extra candidates below it. 0.5 weighs both alike (datasketch's default);
    raise it to favour recall."""
    seed: int = 42
    """Seed of the MinHash permutations. Same seed, same signatures, same clusters."""
    min_tokens: int = 10
    """Documents with fewer tokens are not near-deduplicated (they stay singleton clusters): a
    handful of tokens make a few shingles, and tiny files collide by accident. Exact dedup still
    covers them."""
    verify: bool = False
    """Compute the exact Jaccard of every candidate pair on its shingles and link only pairs at or
    above `verify_threshold`. Removes LSH false positives at the cost of a join on shingle sets."""
    verify_threshold: float | None = None
    """Cut-off for `verify`; None means `threshold`."""
    bucket_cap: int = 64
    """Largest LSH bucket whose members are paired all-to-all for verification. A bigger bucket
    links each member to the bucket's smallest doc_id instead (n - 1 pairs, not n(n-1)/2), so
    one hot bucket cannot explode the join; how many buckets were capped is reported. Without
    `verify` every bucket is linked that way anyway (the components are the same)."""
    kept_twin_min_jaccard: float | None = None
    """A near duplicate is removed only if the MinHash estimate of its Jaccard with the document
    kept in its place reaches this (None: `threshold`). Members of a component that fall short,
    such as the far end of a chain A ~ B ~ C, are regrouped around a further kept document in
    keep-policy order. 0 keeps exactly one document per component (BigCode's behaviour)."""
    max_kept_per_component: int = 1000
    """Most documents kept in one component by that regrouping; further members short of every
    kept document go to their most similar one anyway, and are counted in the manifest."""
    regroup_max_component_size: int = 100_000
    """Components with more members keep only their best document (no regrouping), so that one
    giant component (boilerplate shared by many files) never has to fit in one worker."""
    max_iterations: int = 60
    """Upper bound on connected-component rounds (large-star + small-star); converging takes
    O(log^2 n) rounds, so hitting this bound means something is wrong and the stage fails."""
    driver_graph_max_edges: int = 200_000
    """Largest candidate graph (star edges out of the LSH buckets) whose connected components and
    keep choice are computed on the driver, in numpy, instead of in Spark rounds. A graph this
    small fits in a few hundred MB there (its bucket members, at most twice this many rows, come
    back with the job that signs the documents, and each clustered document brings its
    signature), while every Spark round costs whole jobs, which dominate small corpora. Bigger graphs, and every
    graph when `verify` is on, go through Spark (large-star / small-star, grouped keep choice).
    0 always uses Spark. Both ways give the same clusters and the same kept documents."""
    permissive_licences: tuple[str, ...] = PERMISSIVE_LICENCES
    """SPDX ids (case-insensitive) preferred by the keep policy after stars and commit date."""

    def __post_init__(self) -> None:
        if self.level not in ("file", "repo"):
            raise ValueError(f"level must be 'file' or 'repo', got {self.level!r}")
        if self.shingle_size < 1:
            raise ValueError(f"shingle_size must be >= 1, got {self.shingle_size}")
        if self.num_perm < 2:
            raise ValueError(f"num_perm must be >= 2, got {self.num_perm}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if (self.num_bands is None) != (self.rows_per_band is None):
            raise ValueError(
                "give both num_bands and rows_per_band, or neither (then they are derived from threshold)"
            )
        if self.num_bands is not None:
            if self.num_bands < 1 or self.rows_per_band < 1:
                raise ValueError("num_bands and rows_per_band must be >= 1")
            if self.num_bands * self.rows_per_band > self.num_perm:
                raise ValueError(
                    f"num_bands x rows_per_band = {self.num_bands} x {self.rows_per_band} = "
                    f"{self.num_bands * self.rows_per_band} exceeds num_perm = {self.num_perm}"
                )
        if not 0.0 < self.false_negative_weight < 1.0:
            raise ValueError("false_negative_weight must be in (0, 1)")
        if self.verify_threshold is not None and not 0.0 < self.verify_threshold <= 1.0:
            raise ValueError("verify_threshold must be in (0, 1]")
        if self.bucket_cap < 2:
            raise ValueError("bucket_cap must be >= 2")
        if self.kept_twin_min_jaccard is not None and not 0.0 <= self.kept_twin_min_jaccard <= 1.0:
            raise ValueError("kept_twin_min_jaccard must be in [0, 1]")
        if self.max_kept_per_component < 1 or self.regroup_max_component_size < 1:
            raise ValueError("max_kept_per_component and regroup_max_component_size must be >= 1")
        if self.min_tokens < 1:
            raise ValueError("min_tokens must be >= 1")
        if self.driver_graph_max_edges < 0:
            raise ValueError("driver_graph_max_edges must be >= 0")

    @property
    def effective_kept_twin_min_jaccard(self) -> float:
        return self.threshold if self.kept_twin_min_jaccard is None else self.kept_twin_min_jaccard

    @property
    def effective_verify_threshold(self) -> float:
        return self.threshold if self.verify_threshold is None else self.verify_threshold

    def lsh(self) -> LSHParams:
        """Bands x rows: as configured, or derived from `threshold`."""
        if self.num_bands is not None:
            return LSHParams(
                num_perm=self.num_perm,
                num_bands=self.num_bands,
                rows_per_band=self.rows_per_band,
                threshold=self.threshold,
                derived=False,
            )
        return derive_lsh_params(self.num_perm, self.threshold, self.false_negative_weight)

    def as_params(self) -> dict[str, object]:
        """Flat settings for MLflow params and manifests."""
        lsh = self.lsh()
        values = asdict(self)
        values["permissive_licences"] = ",".join(self.permissive_licences)
        values.update(num_bands=lsh.num_bands, rows_per_band=lsh.rows_per_band, lsh_derived=lsh.derived)
        return values


def candidate_probability(jaccard, num_bands: int, rows_per_band: int):
    """P(two documents with this Jaccard share at least one band): the S-curve."""
    jaccard = np.asarray(jaccard, dtype=np.float64)
    return 1.0 - (1.0 - jaccard**rows_per_band) ** num_bands


def _areas(threshold: float, num_bands: int, rows_per_band: int) -> tuple[float, float]:
    """(false-positive area below threshold, false-negative area above it) under the S-curve."""
    below = np.linspace(0.0, threshold, 201)
    above = np.linspace(threshold, 1.0, 201)
    fp = np.trapezoid(candidate_probability(below, num_bands, rows_per_band), below)
    fn = np.trapezoid(1.0 - candidate_probability(above, num_bands, rows_per_band), above)
    return float(fp), float(fn)


@dataclass(frozen=True)
class LSHParams:
    """Bands x rows in use and where they came from."""

    num_perm: int
    num_bands: int
    rows_per_band: int
    threshold: float
    derived: bool

    @property
    def s_curve_midpoint(self) -> float:
        """Jaccard where the S-curve is steepest, ~ (1/b)^(1/r)."""
        return (1.0 / self.num_bands) ** (1.0 / self.rows_per_band)

    def probability(self, jaccard):
        return candidate_probability(jaccard, self.num_bands, self.rows_per_band)

    def s_curve(self, points: int = 101) -> list[tuple[float, float]]:
        """(Jaccard, candidate probability) pairs from 0 to 1, for plots and metadata."""
        grid = np.linspace(0.0, 1.0, points)
        return [
            (round(float(j), 4), round(float(p), 6))
            for j, p in zip(grid, self.probability(grid), strict=True)
        ]

    def explain(self) -> str:
        """One paragraph saying which bands x rows are used, why, and what they catch."""
        fp, fn = _areas(self.threshold, self.num_bands, self.rows_per_band)
        probe = ", ".join(f"P(J={j:.1f})={float(self.probability(j)):.3f}" for j in (0.5, 0.6, 0.7, 0.8, 0.9))
        origin = (
            f"derived from threshold {self.threshold} over all b x r <= {self.num_perm} by minimising "
            f"the weighted false-positive + false-negative area under the S-curve"
            if self.derived
            else f"set explicitly (threshold {self.threshold})"
        )
        used = self.num_bands * self.rows_per_band
        return (
            f"MinHash LSH: {self.num_perm} permutations, {self.num_bands} bands x {self.rows_per_band} rows "
            f"= {used} values used; {origin}. S-curve midpoint (1/b)^(1/r) = {self.s_curve_midpoint:.3f}; "
            f"{probe}; FP area below threshold {fp:.4f}, FN area above it {fn:.4f}."
        )


def derive_lsh_params(num_perm: int, threshold: float, false_negative_weight: float = 0.5) -> LSHParams:
    """The bands x rows (b * r <= num_perm) minimising the weighted FP + FN areas of the S-curve."""
    best: tuple[float, int, int] | None = None
    for num_bands in range(1, num_perm + 1):
        for rows_per_band in range(1, num_perm // num_bands + 1):
            fp, fn = _areas(threshold, num_bands, rows_per_band)
            error = (1.0 - false_negative_weight) * fp + false_negative_weight * fn
            # Ties go to fewer bands (fewer bucket rows to shuffle).
            if best is None or error < best[0] - 1e-12:
                best = (error, num_bands, rows_per_band)
    assert best is not None
    return LSHParams(
        num_perm=num_perm, num_bands=best[1], rows_per_band=best[2], threshold=threshold, derived=True
    )
