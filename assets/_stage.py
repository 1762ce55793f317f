"""What every stage asset shares: ownership, groups, metadata from a manifest, plots, MLflow logging.

Assets stay thin: read inputs, call the engine, write through `quality.storage.write_stage`, then
`stage_result(...)` turns the manifest into Dagster metadata and MLflow metrics in one place.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import dagster as dg

from quality.storage import StagePaths

OWNER = "team:codecook"
GROUP_DATA = "data"  # code ingest, dedup, filters, mix: refreshed weekly by the schedule
GROUP_WEB = "web"  # web pool and recall rounds: refreshed with the data
GROUP_MODEL = "model"  # tokenizer, shards, training
GROUP_EVAL = "evaluation"  # benchmarks and reports


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A small Markdown table (Dagster renders it in the asset's metadata)."""
    if not rows:
        return "_empty_"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def figure_metadata(figure, artifact_name: str) -> dg.MetadataValue:
    """Embed a matplotlib figure in metadata and log the same PNG to the active MLflow run."""
    import matplotlib.pyplot as plt
    import mlflow

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    if mlflow.active_run() is not None:
        mlflow.log_figure(figure, artifact_name)
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return dg.MetadataValue.md(f"![{artifact_name}](data:image/png;base64,{encoded})")


def log_manifest(manifest: dict[str, Any]) -> None:
    """Counts as MLflow metrics and the manifest itself as an artifact of the active run."""
    import mlflow

    mlflow.log_metrics(
        {
            "rows_in": manifest["rows_in"],
            "rows_out": manifest["rows_out"],
            "rows_rejected": manifest["rows_rejected"],
            "bytes_out": manifest.get("bytes_out", 0),
            **{
                f"rejected.{reason}": count
                for reason, count in manifest.get("rejected_by_reason", {}).items()
            },
        }
    )
    mlflow.log_dict(manifest, f"manifests/{manifest['stage']}.json")


def stage_result(
    manifest: dict[str, Any], paths: StagePaths, run: Any, extra: dict[str, Any] | None = None
) -> dg.MaterializeResult:
    """MaterializeResult for a document stage: counts, rejects by reason, paths, MLflow run."""
    log_manifest(manifest)
    reasons = manifest.get("rejected_by_reason", {})
    metadata: dict[str, Any] = {
        "rows_in": dg.MetadataValue.int(manifest["rows_in"]),
        "rows_out": dg.MetadataValue.int(manifest["rows_out"]),
        "rows_rejected": dg.MetadataValue.int(manifest["rows_rejected"]),
        "bytes_out": dg.MetadataValue.int(manifest.get("bytes_out", 0)),
        "rejected_by_reason": dg.MetadataValue.md(
            markdown_table(
                [{"reason": r, "rows": n} for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
            )
        ),
        "path": dg.MetadataValue.path(paths.data_dir),
        "rejected_path": dg.MetadataValue.path(paths.rejected_dir),
        "checksum": manifest["checksum"],
        "recipe_hash": manifest["recipe_hash"],
        "mlflow_run_id": run.info.run_id,
        "mlflow_experiment_id": run.info.experiment_id,
    }
    metadata.update(extra or {})
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(manifest["checksum"]))


def language_breakdown(connection, paths: StagePaths, limit: int = 25) -> list[dict[str, Any]]:
    """Rows and bytes per language of a stage's kept output, largest first."""
    rows = connection.execute(
        "SELECT lang, count(*) AS docs, sum(size_bytes) AS bytes FROM read_parquet(?) GROUP BY lang ORDER BY bytes DESC, lang LIMIT ?",
        [f"{paths.data_dir}/*.parquet", limit],
    ).fetchall()
    return [{"lang": lang, "docs": int(docs), "bytes": int(size or 0)} for lang, docs, size in rows]


def as_json(value: Any) -> dg.MetadataValue:
    return dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
