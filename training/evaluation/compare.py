"""Runs side by side: data settings, model, loss and pass@k from one MLflow experiment.

Training and its evaluation share one MLflow run, so one row per run carries everything a
comparison needs. Columns come from what the runs logged:

    settings   params named like the recipe knobs that move results (dedup thresholds, filter
               profiles, the model preset, steps); see SETTING_PATTERNS
    loss       `final_loss` / `model.final_loss`
    scores     every `<benchmark>.pass_at_1` metric and the FIM exact-match rates
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SETTING_PATTERNS = (
    "recipe.*threshold*",
    "recipe.*profile*",
    "recipe.*num_bands*",
    "recipe.*rows_per_band*",
    "recipe.quality_filter.*",
    "model.preset",
    "model.steps",
    "preset",
    "steps",
    "max_steps",
)
LOSS_METRICS = ("model.final_loss", "final_loss", "train.final_loss", "loss")
SCORE_PATTERNS = ("*.pass_at_1", "fim.*.exact_match")


def collect_runs(tracking_uri: str, experiment: str) -> list[dict[str, Any]]:
    """One row per run that has evaluation scores or a final loss, newest first."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise LookupError(f"no MLflow experiment named {experiment!r} at {tracking_uri}")
    mlflow.set_tracking_uri(tracking_uri)
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time DESC"], max_results=500)
    rows = []
    for run in runs:
        metrics, params = run.data.metrics, run.data.params
        scores = {k: v for k, v in metrics.items() if any(fnmatch.fnmatch(k, p) for p in SCORE_PATTERNS)}
        loss = next((metrics[k] for k in LOSS_METRICS if k in metrics), None)
        if not scores and loss is None:
            continue
        settings = {
            k: v for k, v in sorted(params.items()) if any(fnmatch.fnmatch(k, p) for p in SETTING_PATTERNS)
        }
        rows.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name or "",
                "started": run.info.start_time,
                "settings": settings,
                "final_loss": loss,
                "scores": scores,
            }
        )
    return rows


def table_columns(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The setting and score columns that appear in any row (sorted)."""
    settings = sorted({k for row in rows for k in row["settings"]})
    scores = sorted({k for row in rows for k in row["scores"]})
    return settings, scores


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def flat_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells: run, settings..., final loss, scores..."""
    settings, scores = table_columns(rows)
    header = ["run", *settings, "final_loss", *scores]
    cells = []
    for row in rows:
        cells.append(
            [
                f"{row['run_name']} ({row['run_id'][:8]})",
                *(_format(row["settings"].get(k)) for k in settings),
                _format(row["final_loss"]),
                *(_format(row["scores"].get(k)) for k in scores),
            ]
        )
    return header, cells


def text_table(rows: Sequence[dict[str, Any]]) -> str:
    """Fixed-width table for a terminal."""
    if not rows:
        return "(no runs with evaluation results or a final loss)"
    header, cells = flat_rows(rows)
    widths = [max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(lines)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "_no runs with evaluation results or a final loss_"
    header, cells = flat_rows(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell) + " |" for cell in cells]
    return "\n".join(lines)


def plot_scores(rows: Sequence[dict[str, Any]], path: str | Path | None = None):
    """Grouped bars: each run's scores (pass@1, FIM exact match); saved to `path` when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    _, scores = table_columns(rows)
    ordered = list(reversed(rows))  # oldest first, left to right
    figure, axes = plt.subplots(figsize=(max(6, 1.2 * len(ordered) + 2), 4))
    width = 0.8 / max(1, len(scores))
    positions = np.arange(len(ordered))
    for index, score in enumerate(scores):
        values = [row["scores"].get(score, np.nan) for row in ordered]
        axes.bar(positions + index * width, values, width, label=score)
    axes.set_xticks(positions + width * (len(scores) - 1) / 2)
    axes.set_xticklabels([f"{r['run_name'][:16]}\n{r['run_id'][:8]}" for r in ordered], fontsize=8)
    axes.set_ylim(0, 1)
    axes.set_ylabel("score")
    axes.set_title("Evaluation per run")
    if scores:
        axes.legend(fontsize=8)
    figure.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    return figure


def _interval(values: dict[str, Any] | None, digits: int = 4) -> str:
    if not values:
        return "-"
    middle = values.get("difference", values.get("mean"))
    ci = values.get("ci")
    text = f"{middle:+.{digits}f}" if "difference" in values else f"{middle:.{digits}f}"
    if ci:
        text += (
            f" [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"
            if "difference" in values
            else (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]")
        )
    if values.get("significant"):
        text += " *"
    return text


def ablation_table(comparison: dict[str, Any]) -> str:
    """An ablation's comparison.json as text: per variant each metric's mean with its interval, and
    its difference from the baseline (`*`: significant), then the verdicts."""
    metrics = sorted({m for v in comparison["variants"] for m in (v.get("metrics") or {})})
    header = ["variant", "status", *metrics, *(f"diff {m}" for m in metrics)]
    cells = []
    for variant in comparison["variants"]:
        own = variant.get("metrics") or {}
        diff = variant.get("difference_vs_baseline") or {}
        cells.append(
            [
                variant["name"],
                variant["status"],
                *(_interval(own.get(m)) for m in metrics),
                *(_interval(diff.get(m)) if diff else "(baseline)" for m in metrics),
            ]
        )
    widths = [max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(len(header))]
    lines = [
        f"ablation {comparison['ablation']}: baseline {comparison['baseline']}, "
        f"{comparison.get('statistics', {}).get('confidence', 0.95):.0%} intervals, "
        f"evaluation set {comparison['evaluation_set']['documents']} documents",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
        *("  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells),
        "",
        *comparison.get("verdicts", []),
    ]
    return "\n".join(lines)
