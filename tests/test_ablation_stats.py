"""The paired two-level bootstrap on synthetic ablations whose truth is known (every draw seeded)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.evaluation.ablation_stats import (
    ALL_ZERO,
    Measurements,
    bootstrap_means,
    metric_matrix,
    summarize,
)


def simulate(
    rng: np.random.Generator,
    *,
    shift: float,
    n_seeds: int = 3,
    n_items: int = 150,
    item_sd: float = 1.0,
    noise_sd: float = 0.3,
    seed_sd: float = 0.02,
) -> tuple[Measurements, Measurements]:
    """Baseline A and variant B = A's per-item difficulty + `shift`, each with its own seed effect
    and per-(seed, item) noise. The truth of B - A is exactly `shift`."""
    items = tuple(f"doc-{i:04d}" for i in range(n_items))
    difficulty = rng.normal(0.0, item_sd, n_items)  # shared by both variants: cancels when paired

    def one(offset: float) -> np.ndarray:
        seed_effect = rng.normal(0.0, seed_sd, (n_seeds, 1))
        return 1.0 + offset + difficulty + seed_effect + rng.normal(0.0, noise_sd, (n_seeds, n_items))

    return Measurements(items, one(0.0)), Measurements(items, one(shift))


def test_a_planted_difference_is_significant_and_the_interval_covers_it():
    a, b = simulate(np.random.default_rng(1), shift=-0.15)
    report = summarize({"A": {"bits_per_byte": a}, "B": {"bits_per_byte": b}}, resamples=4000, seed=0)
    diff = report["differences"]["B"]["bits_per_byte"]
    assert diff["significant"] and diff["winner"] == "B" and diff["better"] == "lower"
    low, high = diff["ci"]
    assert low < -0.15 < high and high < 0
    assert diff["verdict"].startswith("B is better than A on bits_per_byte by 0.1")
    # The same gain on a higher-is-better metric reads the other way round.
    flipped = summarize({"A": {"exact_match": a}, "B": {"exact_match": b}}, resamples=2000)
    assert flipped["differences"]["B"]["exact_match"]["verdict"].startswith(
        "B is worse than A on exact_match"
    )
    json.dumps(report)  # the lead writes it as comparison.json


def test_a_zero_difference_is_no_significant_difference():
    a, b = simulate(np.random.default_rng(3), shift=0.0)
    report = summarize({"A": {"bits_per_byte": a}, "B": {"bits_per_byte": b}}, resamples=4000)
    diff = report["differences"]["B"]["bits_per_byte"]
    assert not diff["significant"] and diff["winner"] is None
    assert diff["ci"][0] < 0 < diff["ci"][1]
    assert diff["verdict"].startswith("no significant difference")
    assert report["verdicts"] == [diff["verdict"]]


def coverage(rng: np.random.Generator, experiments: int = 200, **kwargs) -> dict[str, float]:
    """Share of experiments whose interval holds the planted shift, and share called significant,
    for the calibrated (`ci`) and the plain percentile interval."""
    shift = kwargs.setdefault("shift", 0.1)
    hits = {"ci": 0, "ci_percentile": 0, "significant": 0}
    for experiment in range(experiments):
        a, b = simulate(rng, n_items=120, **kwargs)
        diff = summarize({"A": {"m": a}, "B": {"m": b}}, resamples=1000, seed=experiment)["differences"]["B"][
            "m"
        ]
        for key in ("ci", "ci_percentile"):
            hits[key] += diff[key][0] <= shift <= diff[key][1]
        hits["significant"] += diff["significant"]
    return {key: value / experiments for key, value in hits.items()}


def test_interval_coverage_over_many_simulated_ablations_is_near_95_percent():
    # 200 seeded experiments per setting, so each share is a fixed number; the bands only guard
    # against a broken method (a binomial 200 at 0.95 has sd 1.5 points).
    # Little seed-to-seed variance: the plain two-level bootstrap counts the seed x item noise
    # twice and over-covers; the calibrated interval is near 95% and detects the shift more often.
    quiet = coverage(np.random.default_rng(2024), n_seeds=3, seed_sd=0.02)
    assert 0.92 <= quiet["ci"] <= 0.99 and quiet["ci_percentile"] >= 0.975, quiet
    # A large seed effect: the plain bootstrap, seeing 3 training outcomes, under-covers.
    loud = coverage(np.random.default_rng(2025), n_seeds=3, seed_sd=0.1)
    assert 0.92 <= loud["ci"] <= 0.99 and loud["ci_percentile"] <= 0.9, loud
    # No difference: "significant" is a false alarm about 5% of the time, not more.
    null = coverage(np.random.default_rng(2026), n_seeds=2, seed_sd=0.02, shift=0.0)
    assert null["significant"] <= 0.08 and null["ci"] >= 0.92, null


def test_pairing_removes_a_large_shared_item_effect():
    # Items differ by sd 5, the variants by 0.05: unpaired, the interval would be ~+-0.5 wide.
    a, b = simulate(
        np.random.default_rng(3), shift=0.05, item_sd=5.0, noise_sd=0.05, seed_sd=0.0, n_items=200
    )
    report = summarize({"A": {"m": a}, "B": {"m": b}}, resamples=4000)
    low, high = report["differences"]["B"]["m"]["ci"]
    assert high - low < 0.05 and low < 0.05 < high and report["differences"]["B"]["m"]["significant"]
    # The variants' own intervals are wide (the item spread), the difference's is narrow.
    a_low, a_high = report["variants"]["A"]["m"]["ci"]
    assert a_high - a_low > 20 * (high - low)


def test_seed_spread_is_reported_and_widens_the_interval():
    rng = np.random.default_rng(4)
    quiet = summarize(dict(zip("AB", ({"m": m} for m in simulate(rng, shift=0.1, seed_sd=0.0)), strict=True)))
    loud = summarize(dict(zip("AB", ({"m": m} for m in simulate(rng, shift=0.1, seed_sd=0.3)), strict=True)))
    width = lambda r: np.diff(r["differences"]["B"]["m"]["ci"])[0]  # noqa: E731
    assert width(loud) > 2 * width(quiet)
    assert loud["variants"]["A"]["m"]["seed_std"] > 3 * quiet["variants"]["A"]["m"]["seed_std"]
    assert len(loud["variants"]["A"]["m"]["seed_means"]) == 3


def test_all_zero_pass_at_k_is_not_measurable():
    tasks = [f"HumanEval/{i}" for i in range(8)]
    zeros = Measurements(tasks, np.zeros((2, 8)))
    report = summarize({"A": {"pass@1": zeros}, "B": {"pass@1": zeros}, "C": {"pass@1": zeros}})
    assert report["metrics"]["pass@1"]["measurable"] is False
    assert report["variants"]["B"]["pass@1"]["ci"] is None
    diff = report["differences"]["C"]["pass@1"]
    assert diff["ci"] is None and not diff["significant"] and diff["verdict"] == ALL_ZERO
    # One variant solving one task once makes the metric measurable again.
    some = np.zeros((2, 8))
    some[1, 3] = 1.0
    report = summarize({"A": {"pass@1": zeros}, "B": {"pass@1": (tasks, some)}})
    assert (
        report["metrics"]["pass@1"]["measurable"] and report["differences"]["B"]["pass@1"]["ci"] is not None
    )


def test_alignment_errors_raise():
    a, b = simulate(np.random.default_rng(5), shift=0.0, n_items=10)
    short = Measurements(a.items[:-1], a.values[:, :-1])
    with pytest.raises(ValueError, match="other items"):
        summarize({"A": {"m": a}, "B": {"m": short}})
    with pytest.raises(ValueError, match="same seeds"):
        summarize({"A": {"m": a}, "B": {"m": Measurements(b.items, b.values[:2])}})
    with pytest.raises(ValueError, match="missing for variant"):
        summarize({"A": {"m": a, "n": a}, "B": {"m": b}})
    with pytest.raises(ValueError, match="repeat"):
        Measurements(("x", "x"), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="NaN"):
        Measurements(("x", "y"), np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="seeds"):
        summarize({"A": {"m": Measurements(a.items, a.values, seeds=(1, 2, 3))},
                   "B": {"m": Measurements(b.items, b.values, seeds=(1, 2, 4))}})  # fmt: skip
    # The same items in another order are aligned, not an error.
    reordered = Measurements(b.items[::-1], b.values[:, ::-1])
    one = summarize({"A": {"m": a}, "B": {"m": b}}, resamples=500)
    two = summarize({"A": {"m": a}, "B": {"m": reordered}}, resamples=500)
    assert one["differences"] == two["differences"]


def test_metric_matrix_pivots_rows_per_seed():
    runs = [
        [{"doc_id": "b", "bits_per_byte": 2.0}, {"doc_id": "a", "bits_per_byte": 1.0}],
        [{"doc_id": "a", "bits_per_byte": 1.5}, {"doc_id": "b", "bits_per_byte": 2.5}],
    ]
    matrix = metric_matrix(runs, "bits_per_byte", seeds=(0, 1))
    assert matrix.items == ("a", "b") and matrix.values.tolist() == [[1.0, 2.0], [1.5, 2.5]]
    with pytest.raises(ValueError, match="other items"):
        metric_matrix([runs[0], runs[1][:1]], "bits_per_byte")


def test_bootstrap_counts_equal_explicit_index_resampling():
    # The count formulation is the mean of values[seed draws][:, item draws]: check it by hand.
    rng = np.random.default_rng(6)
    matrix = rng.normal(size=(3, 7))
    means = bootstrap_means([matrix], resamples=50, rng=np.random.default_rng(9))[0]
    replay = np.random.default_rng(9)
    seeds = replay.integers(0, 3, size=(50, 3))
    items = replay.integers(0, 7, size=(50, 7))
    for b in range(50):
        assert means[b] == pytest.approx(matrix[np.ix_(seeds[b], items[b])].mean())


def test_report_is_deterministic_for_a_seed():
    a, b = simulate(np.random.default_rng(7), shift=0.1, n_items=30)
    variants = {"A": {"m": a}, "B": {"m": b}}
    assert summarize(variants, seed=3, resamples=500) == summarize(variants, seed=3, resamples=500)
    assert summarize(variants, seed=3, resamples=500) != summarize(variants, seed=4, resamples=500)


def test_byte_weights_give_the_pooled_bits_per_byte():
    # Per-document bits per byte weighted by bytes is total bits / total bytes of the set.
    rng = np.random.default_rng(8)
    size = rng.integers(100, 5000, 40).astype(float)
    runs = {
        name: [
            [
                {"doc_id": f"d{i}", "bits_per_byte": bpb, "bytes": size[i]}
                for i, bpb in enumerate(rng.uniform(1.0, 4.0, 40) - shift)
            ]
            for _ in range(2)
        ]
        for name, shift in (("A", 0.0), ("B", 0.3))
    }
    variants = {
        name: {"bits_per_byte": metric_matrix(rows, "bits_per_byte", weight="bytes")}
        for name, rows in runs.items()
    }
    report = summarize(variants, resamples=2000)
    pooled = np.mean([sum(r["bits_per_byte"] * r["bytes"] for r in rows) / size.sum() for rows in runs["A"]])
    assert report["variants"]["A"]["bits_per_byte"]["mean"] == pytest.approx(pooled)
    assert report["metrics"]["bits_per_byte"]["weighted"]
    low, high = report["variants"]["A"]["bits_per_byte"]["ci"]
    assert low < pooled < high
    with pytest.raises(ValueError, match="weighs the items differently"):
        summarize({"A": variants["A"], "B": {"bits_per_byte": Measurements(*_unweighted(variants["B"]))}})


def _unweighted(metrics: dict) -> tuple:
    measured = metrics["bits_per_byte"]
    return measured.items, measured.values


def test_weighted_interval_coverage_is_near_95_percent():
    rng = np.random.default_rng(11)
    covered = 0
    for experiment in range(200):
        a, b = simulate(rng, shift=0.1, n_items=120, seed_sd=0.05)
        weights = rng.lognormal(0.0, 1.0, 120)  # document sizes are skewed
        variants = {
            "A": {"m": Measurements(a.items, a.values, weights=weights)},
            "B": {"m": Measurements(b.items, b.values, weights=weights)},
        }
        low, high = summarize(variants, resamples=1000, seed=experiment)["differences"]["B"]["m"]["ci"]
        covered += low <= 0.1 <= high
    assert 0.92 <= covered / 200 <= 0.99, covered
