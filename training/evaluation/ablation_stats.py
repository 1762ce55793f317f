"""Which recipe variant makes the better model, with error bars: a paired two-level bootstrap.

Input, per variant and metric: a matrix of per-item values shaped [n_seeds, n_items] (items are
evaluation documents, FIM examples or benchmark tasks), row s being training seed s. Every variant
is measured on the same items and the same seeds; both are checked (item ids must match as sets,
the order may differ; seed labels, when given, must match in order).

For variant v the estimate is the mean over seeds and items. Its uncertainty has two sources, the
evaluation set (another sample of documents) and training (another seed), so each bootstrap
resample draws

    seeds with replacement  (n_seeds of them; the same seed indices for every variant)
    items with replacement  (n_items of them; the same item indices for every variant)

and recomputes the mean. Because one resample uses the same seeds and items for all variants, a
difference "variant minus baseline" is computed on paired data: an item that every model finds
hard (a big shared per-item effect) cancels in the difference instead of widening its interval.
A difference is `significant` when its interval excludes 0.

Items may carry weights (`Measurements.weights`, e.g. each document's bytes): the estimate is then
the weighted mean per seed, so byte-weighted per-document bits per byte is the pooled
bits / bytes of the set, where the plain mean lets a 100-byte file count as much as a 50 kB one.
A resampled item brings its weight along (a ratio estimator, bootstrapped as such).

Resamples are drawn as counts (how often each seed and each item was drawn), so the resampled
mean is `seed_counts @ values @ item_counts / (n_seeds * n_items)`: no loop over resamples or
items, and memory of one [resamples, n_items] block at a time.

Two intervals come out of the same draws:

    ci_percentile  the 2.5..97.5th percentiles of the resampled statistic (the plain bootstrap)
    ci             (default) the same distribution, its spread rescaled to the unbiased variance
                   of the mean under crossed seed x item effects, widened by Student's t

Why both: seeds and items are crossed factors, and the plain two-level bootstrap is off in both
directions. It counts the seed x item noise about twice (each level re-draws it), so with little
seed-to-seed variance its 95% intervals cover ~99% of the time; and with 2 seeds and a large
seed effect it sees only two training outcomes and covers ~55-70% (measured in
tests/test_ablation_stats.py). The calibrated interval takes the variance from the two-way
random-effects ANOVA, Var(mean) = (MS_seed + MS_item - MS_residual) / (n_seeds * n_items) (a
negative seed component counts as 0), and the t quantile with Satterthwaite's degrees of freedom:
with 2 seeds and a large seed effect those are few, and the interval is honestly wide. `seed_std`
(the std of per-seed means) is reported so a reader sees how large the seed effect is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

Direction = Literal["lower", "higher"]

# Metrics where less is better; every other metric is "higher is better" unless told otherwise.
LOWER_IS_BETTER = ("bits_per_byte", "bits", "loss", "perplexity")

ALL_ZERO = "not measurable (all zero)"


@dataclass(frozen=True)
class Measurements:
    """Per-item values of one metric for one variant: `values[s, i]` is seed s on item `items[i]`."""

    items: tuple[str, ...]
    values: np.ndarray
    seeds: tuple[Any, ...] | None = field(default=None)
    """Labels of the rows (e.g. training seeds), checked equal across variants when given."""
    weights: np.ndarray | None = field(default=None)
    """Optional weight per item (e.g. a document's bytes): the estimate becomes the weighted mean
    sum(w * x) / sum(w) per seed, so per-document bits per byte weighted by bytes is the pooled
    bits / bytes of the whole set. Must be the same for every variant (bytes are)."""

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim == 1:
            values = values[None, :]
        if values.ndim != 2:
            raise ValueError(f"values must be [n_seeds, n_items], got shape {values.shape}")
        items = tuple(str(i) for i in self.items)
        if values.shape[1] != len(items):
            raise ValueError(f"{len(items)} item ids but {values.shape[1]} columns of values")
        if values.shape[0] < 1 or values.shape[1] < 1:
            raise ValueError("need at least one seed and one item")
        if len(set(items)) != len(items):
            raise ValueError("item ids repeat")
        if not np.all(np.isfinite(values)):
            raise ValueError("values hold NaN or infinity")
        if self.seeds is not None and len(self.seeds) != values.shape[0]:
            raise ValueError(f"{len(self.seeds)} seed labels for {values.shape[0]} rows")
        if self.weights is not None:
            weights = np.asarray(self.weights, dtype=np.float64).reshape(-1)
            if len(weights) != len(items):
                raise ValueError(f"{len(weights)} weights for {len(items)} items")
            if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
                raise ValueError("weights must be finite, >= 0 and not all 0")
            object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "items", items)
        if self.seeds is not None:
            object.__setattr__(self, "seeds", tuple(self.seeds))


def metric_matrix(
    runs: Sequence[Sequence[Mapping[str, Any]]],
    value: str,
    *,
    item: str = "doc_id",
    seeds: Sequence[Any] | None = None,
    weight: str | None = None,
) -> Measurements:
    """Measurements from per-seed result rows (one list of row dicts per training seed, e.g. the
    rows `heldout.document_bits` returns): column `value`, items keyed by column `item`, optional
    item weights from column `weight` (e.g. `bytes`; equal in every seed). Every seed must cover
    the same items, each once."""
    if not runs:
        raise ValueError("no runs")
    tables = []
    weights: dict[str, float] = {}
    for index, rows in enumerate(runs):
        table: dict[str, float] = {}
        for row in rows:
            key = str(row[item])
            if key in table:
                raise ValueError(f"seed {index}: item {key!r} appears twice")
            table[key] = float(row[value])
            if weight is not None:
                if weights.setdefault(key, float(row[weight])) != float(row[weight]):
                    raise ValueError(f"item {key!r} has different {weight!r} in different seeds")
        tables.append(table)
    items = tuple(sorted(tables[0]))
    for index, table in enumerate(tables[1:], 1):
        if table.keys() != set(items):
            missing = sorted(set(items) - table.keys())[:5]
            extra = sorted(table.keys() - set(items))[:5]
            raise ValueError(f"seed {index} covers other items than seed 0: missing {missing}, extra {extra}")
    values = np.array([[table[i] for i in items] for table in tables])
    return Measurements(
        items,
        values,
        tuple(seeds) if seeds is not None else None,
        np.array([weights[i] for i in items]) if weight is not None else None,
    )


def direction_of(metric: str, better: Mapping[str, Direction] | None = None) -> Direction:
    """Which way is better for `metric`: the explicit mapping, else lower for LOWER_IS_BETTER names."""
    if better and metric in better:
        if better[metric] not in ("lower", "higher"):
            raise ValueError(f"better[{metric!r}] must be 'lower' or 'higher'")
        return better[metric]
    return "lower" if metric in LOWER_IS_BETTER else "higher"


def resample_counts(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """[resamples, n] counts of how often each of n units is drawn in n draws with replacement."""
    draws = rng.integers(0, n, size=(resamples, n))
    offsets = np.arange(resamples)[:, None] * n
    return (
        np.bincount((draws + offsets).ravel(), minlength=resamples * n)
        .reshape(resamples, n)
        .astype(np.float64)
    )


def bootstrap_means(
    matrices: Sequence[np.ndarray],
    *,
    resamples: int,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
    block_cells: int = 4_000_000,
) -> np.ndarray:
    """[len(matrices), resamples] two-level bootstrap means of each [n_seeds, n_items] matrix,
    every matrix resampled with the same seed and item draws (so differences stay paired); with
    item `weights`, weighted means (a drawn item brings its weight along)."""
    n_seeds, n_items = matrices[0].shape
    if any(m.shape != (n_seeds, n_items) for m in matrices):
        raise ValueError("matrices differ in shape")
    seed_counts = resample_counts(rng, n_seeds, resamples)
    item_counts = resample_counts(rng, n_items, resamples)
    if weights is not None:
        item_counts *= weights  # [resamples, n_items]: count x weight of every item
    out = np.empty((len(matrices), resamples))
    block = max(1, block_cells // max(1, n_items))
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        seeds, items = seed_counts[start:stop], item_counts[start:stop]
        for index, matrix in enumerate(matrices):
            # The seed-weighted sum per item, [block, n_items] (a sum over the few seeds rather
            # than a BLAS matmul, whose threads only spin on a busy machine at these sizes).
            weighted = np.zeros_like(items)
            for row in range(n_seeds):
                weighted += seeds[:, row, None] * matrix[row]
            out[index, start:stop] = (weighted * items).sum(axis=1)
    # Each resample holds n_seeds seed draws and sum(item_counts) of item mass.
    return out / (n_seeds * item_counts.sum(axis=1))


def _interval(samples: np.ndarray, confidence: float) -> list[float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return [float(low), float(high)]


def t_quantile(confidence: float, df: float) -> float:
    """Two-sided Student t quantile: P(|T| <= q) = confidence, for real df >= 1 (numpy only).

    With T = sqrt(df) * tan(theta) the density in theta is proportional to cos(theta)^(df - 1) on
    [0, pi/2), smooth enough to integrate on a grid; the quantile is read off the cumulative sum.
    """
    df = max(1.0, float(df))
    if df > 1e4:
        return NormalDist().inv_cdf(0.5 + confidence / 2.0)
    theta = np.linspace(0.0, math.pi / 2.0, 20_001)
    density = np.cos(theta) ** (df - 1.0)
    cumulative = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2.0)])
    angle = float(np.interp(confidence, cumulative / cumulative[-1], theta))
    return math.sqrt(df) * math.tan(angle)


def crossed_variance(matrix: np.ndarray) -> tuple[float, float]:
    """Unbiased variance of the grand mean of a [n_seeds, n_items] matrix under crossed random
    seed and item effects (two-way ANOVA without replication), and its Satterthwaite degrees of
    freedom. A negative seed component is taken as 0; one seed estimates the item part only."""
    n_seeds, n_items = matrix.shape
    if n_items < 2:
        return 0.0, 1.0
    grand = matrix.mean()
    seed_means, item_means = matrix.mean(axis=1), matrix.mean(axis=0)
    ms_item = n_seeds * float(((item_means - grand) ** 2).sum()) / (n_items - 1)
    if n_seeds < 2:
        return ms_item / n_items, float(n_items - 1)
    ms_seed = n_items * float(((seed_means - grand) ** 2).sum()) / (n_seeds - 1)
    residual = matrix - seed_means[:, None] - item_means[None, :] + grand
    ms_residual = float((residual**2).sum()) / ((n_seeds - 1) * (n_items - 1))
    combined = ms_seed + ms_item - ms_residual
    if combined <= ms_item:  # the seed component is estimated <= 0
        return ms_item / (n_seeds * n_items), float(n_items - 1)
    df = combined**2 / (
        ms_seed**2 / (n_seeds - 1)
        + ms_item**2 / (n_items - 1)
        + ms_residual**2 / ((n_seeds - 1) * (n_items - 1))
    )
    return combined / (n_seeds * n_items), float(df)


def calibrated_interval(
    estimate: float,
    samples: np.ndarray,
    matrix: np.ndarray,
    confidence: float,
    weights: np.ndarray | None = None,
) -> tuple[list[float], float]:
    """The bootstrap distribution's shape around `estimate`, its spread rescaled to the crossed
    design's unbiased variance and widened from the normal to the t quantile; and the df. A
    weighted mean (a ratio) is linearized first: w * (x - estimate) / mean(w)."""
    if weights is not None:
        matrix = weights * (matrix - estimate) / weights.mean()
    variance, df = crossed_variance(matrix)
    spread = float(samples.var())
    deviations = samples - samples.mean()
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(deviations, [tail, 100.0 - tail])
    if spread <= 1e-300 or variance <= 0.0:
        return [float(estimate + low), float(estimate + high)], df
    widen = t_quantile(confidence, df) / NormalDist().inv_cdf(0.5 + confidence / 2.0)
    scale = math.sqrt(variance / spread) * widen
    return [float(estimate + low * scale), float(estimate + high * scale)], df


def _number(value: float) -> str:
    return f"{value:.3g}" if value != 0 else "0"


def verdict(
    variant: str,
    baseline: str,
    metric: str,
    difference: float,
    interval: Sequence[float],
    direction: Direction,
) -> str:
    """Plain English: which is better and by how much (the interval of the improvement), or that
    the interval includes 0."""
    low, high = interval
    if low <= 0.0 <= high:
        return (
            f"no significant difference between {variant} and {baseline} on {metric} "
            f"({variant} minus {baseline}: {difference:+.3g} [{low:+.3g}, {high:+.3g}])"
        )
    gain, gain_low, gain_high = (
        (-difference, -high, -low) if direction == "lower" else (difference, low, high)
    )
    if gain > 0:
        word = "better"
    else:
        word, gain, gain_low, gain_high = "worse", -gain, -gain_high, -gain_low
    return (
        f"{variant} is {word} than {baseline} on {metric} by {_number(gain)} "
        f"[{_number(gain_low)}, {_number(gain_high)}]"
    )


def _aligned(
    variants: Mapping[str, Mapping[str, Measurements]], metric: str
) -> tuple[tuple[str, ...], list[np.ndarray], tuple[Any, ...] | None, np.ndarray | None]:
    """Every variant's matrix of `metric`, columns in the baseline's item order, and the item
    weights (the same for every variant, or None)."""
    names = list(variants)
    base = variants[names[0]].get(metric)
    if base is None:
        raise ValueError(f"metric {metric!r} missing for variant {names[0]!r}")
    items = base.items
    wanted = set(items)
    matrices = []
    for name in names:
        measured = variants[name].get(metric)
        if measured is None:
            raise ValueError(f"metric {metric!r} missing for variant {name!r}")
        if set(measured.items) != wanted:
            missing = sorted(wanted - set(measured.items))
            extra = sorted(set(measured.items) - wanted)
            raise ValueError(
                f"{metric}: variant {name!r} is measured on other items than {names[0]!r}: "
                f"{len(missing)} missing (e.g. {missing[:3]}), {len(extra)} extra (e.g. {extra[:3]})"
            )
        if measured.values.shape[0] != base.values.shape[0]:
            raise ValueError(
                f"{metric}: variant {name!r} has {measured.values.shape[0]} seeds, "
                f"{names[0]!r} has {base.values.shape[0]}; every variant needs the same seeds"
            )
        if base.seeds is not None and measured.seeds is not None and measured.seeds != base.seeds:
            raise ValueError(
                f"{metric}: variant {name!r} has seeds {measured.seeds}, {names[0]!r} {base.seeds}"
            )
        column = {item: index for index, item in enumerate(measured.items)}
        order = np.array([column[item] for item in items])
        matrices.append(measured.values[:, order])
        if (measured.weights is None) != (base.weights is None) or (
            base.weights is not None and not np.allclose(measured.weights[order], base.weights)
        ):
            raise ValueError(f"{metric}: variant {name!r} weighs the items differently from {names[0]!r}")
    return items, matrices, base.seeds, base.weights


def summarize(
    variants: Mapping[str, Mapping[str, Measurements | tuple[Sequence[str], Any]]],
    *,
    better: Mapping[str, Direction] | None = None,
    confidence: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
    interval: Literal["calibrated", "percentile"] = "calibrated",
) -> dict[str, Any]:
    """Every variant's metrics with intervals, and every variant minus the first (the baseline).

    `variants`: {variant: {metric: Measurements or (item_ids, values[n_seeds, n_items])}}, in
    the order to report (the first is the baseline). `better`: direction per metric (default:
    lower for bits per byte and losses, higher otherwise). `interval`: which interval is `ci` and
    decides `significant` (see the module docstring); the other is reported beside it. The result
    is JSON-serialisable:

        baseline, confidence, resamples, seed, interval, method
        metrics:     {metric: {better, items, seeds, seed_labels, weighted, measurable}}
        variants:    {variant: {metric: {mean, ci, ci_percentile, ci_calibrated, df, seed_means,
                                         seed_std, items, seeds}}}
        differences: {variant: {metric: {difference, ci, ci_percentile, ci_calibrated, df,
                                         significant, better, winner, seed_differences, seed_std,
                                         verdict}}}  (every variant but the baseline)
        verdicts:    [one sentence per variant and metric]

    A metric on which every variant scores 0 on every item (pass@k of a small proxy) has
    `measurable: false`, no intervals and the verdict "not measurable (all zero)".
    """
    if not variants:
        raise ValueError("no variants")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie in (0, 1)")
    if resamples < 100:
        raise ValueError("use at least 100 resamples (2,000-10,000 for a report)")
    if interval not in ("calibrated", "percentile"):
        raise ValueError(f"interval must be 'calibrated' or 'percentile', got {interval!r}")
    names = list(variants)
    baseline = names[0]
    data = {
        name: {metric: _as_measurements(value) for metric, value in metrics.items()}
        for name, metrics in variants.items()
    }
    metric_names = list(data[baseline])
    for name in names[1:]:
        extra = set(data[name]) - set(metric_names)
        if extra:
            raise ValueError(f"variant {name!r} has metrics the baseline lacks: {sorted(extra)}")
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {
        "baseline": baseline,
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
        "interval": interval,
        "method": (
            "paired two-level bootstrap: seeds with replacement, then items with replacement, the "
            "same draws for every variant; difference = variant minus baseline; ci_percentile = "
            "percentiles of the draws; ci_calibrated = the draws rescaled to the crossed seed x item "
            "ANOVA variance, widened by Student t with Satterthwaite df"
        ),
        "metrics": {},
        "variants": {name: {} for name in names},
        "differences": {name: {} for name in names[1:]},
        "verdicts": [],
    }
    for metric in metric_names:
        items, matrices, seed_labels, weights = _aligned(data, metric)
        direction = direction_of(metric, better)
        n_seeds, n_items = matrices[0].shape
        measurable = any(np.any(m != 0.0) for m in matrices)
        report["metrics"][metric] = {
            "better": direction,
            "items": n_items,
            "seeds": n_seeds,
            "seed_labels": list(seed_labels) if seed_labels is not None else None,
            "weighted": weights is not None,
            "measurable": bool(measurable),
        }
        # Every metric draws from the same generator in turn: fixed `seed`, fixed report.
        means = (
            bootstrap_means(matrices, resamples=resamples, rng=rng, weights=weights) if measurable else None
        )
        share = np.full(n_items, 1.0 / n_items) if weights is None else weights / weights.sum()
        for index, name in enumerate(names):
            matrix = matrices[index]
            seed_means = matrix @ share
            estimate = float(seed_means.mean())
            report["variants"][name][metric] = {
                "mean": estimate,
                **_intervals(estimate, means, index, None, matrix, confidence, interval, weights),
                "seed_means": [float(v) for v in seed_means],
                "seed_std": float(seed_means.std(ddof=1)) if n_seeds > 1 else None,
                "items": n_items,
                "seeds": n_seeds,
            }
            if index == 0:
                continue
            difference_matrix = matrix - matrices[0]
            seed_differences = difference_matrix @ share
            difference = float(seed_differences.mean())
            entry: dict[str, Any] = {
                "difference": difference,
                "better": direction,
                "seed_differences": [float(v) for v in seed_differences],
                "seed_std": float(seed_differences.std(ddof=1)) if n_seeds > 1 else None,
            }
            entry.update(
                _intervals(difference, means, index, 0, difference_matrix, confidence, interval, weights)
            )
            if means is None:
                entry.update(significant=False, winner=None, verdict=ALL_ZERO)
            else:
                low, high = entry["ci"]
                significant = not low <= 0.0 <= high
                improves = difference < 0 if direction == "lower" else difference > 0
                entry.update(
                    significant=significant,
                    winner=(name if improves else baseline) if significant else None,
                    verdict=verdict(name, baseline, metric, difference, entry["ci"], direction),
                )
            report["differences"][name][metric] = entry
            report["verdicts"].append(
                entry["verdict"] if means is not None else f"{name} vs {baseline} on {metric}: {ALL_ZERO}"
            )
    return _plain(report)


def _intervals(
    estimate: float,
    means: np.ndarray | None,
    index: int,
    baseline: int | None,
    matrix: np.ndarray,
    confidence: float,
    chosen: str,
    weights: np.ndarray | None,
) -> dict[str, Any]:
    """ci (the chosen one), ci_percentile, ci_calibrated and df of one mean or one difference."""
    if means is None:
        return {"ci": None, "ci_percentile": None, "ci_calibrated": None, "df": None}
    samples = means[index] - means[baseline] if baseline is not None else means[index]
    percentile = _interval(samples, confidence)
    calibrated, df = calibrated_interval(estimate, samples, matrix, confidence, weights)
    return {
        "ci": calibrated if chosen == "calibrated" else percentile,
        "ci_percentile": percentile,
        "ci_calibrated": calibrated,
        "df": df,
    }


def _as_measurements(value: Measurements | tuple[Sequence[str], Any]) -> Measurements:
    if isinstance(value, Measurements):
        return value
    items, values = value
    return Measurements(tuple(items), np.asarray(values))


def _plain(value: Any) -> Any:
    """Floats that JSON accepts (no NaN), tuples as lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
