"""What every stage asset shares: the asset made from a stage declaration, ownership, groups,
metadata from a manifest and a report, plots, MLflow logging.

A document stage is declared once (`orchestration.stage.Stage`, the declarations in
`orchestration.stages`); `stage_asset(stage)` makes its Dagster asset: load the recipe and the
stage's section, start Spark and an MLflow run, `run_stage` (engine -> write -> release ->
report), then `stage_result(...)` turns the manifest and the report into Dagster metadata and
MLflow metrics in one place. `stage_asset_checks(stage)` makes its blocking checks.
"""

import base64
import io
import json
import os
import urllib.parse
from typing import Any

import dagster as dg

from contracts.reuse import StageStore, engine_fingerprint, files_fingerprint, stage_key
from orchestration.automation import WATCHED_BY_STAGE, data_refresh_condition
from orchestration.checks import declared_checks, stage_checks
from orchestration.resources import (
    DuckDBResource,
    MLflowResource,
    RecipeResource,
    SparkResource,
    StorageResource,
)
from orchestration.stage import (
    GROUP_DATA,
    GROUP_EVAL,
    GROUP_MODEL,
    GROUP_WEB,
    Json,
    Markdown,
    Plot,
    Report,
    Stage,
    StageRun,
    Table,
    run_stage,
    summary_line,
)
from orchestration.ui import mlflow_ui_url
from quality.progress import SparkProgress
from quality.storage import StagePaths, read_manifest, read_stage

__all__ = ["GROUP_DATA", "GROUP_EVAL", "GROUP_MODEL", "GROUP_WEB", "OWNER"]

OWNER = "team:codecook"
STAGE_STORE_ENV = "CODECOOK_STAGE_STORE"
# Sections a stage reads besides its own (they are part of its key).
EXTRA_SECTIONS = {"code_web_pages": ("quality_filter",)}


def stage_store() -> StageStore | None:
    """The store shared by the variants of an ablation (`$CODECOOK_STAGE_STORE`); None: no reuse."""
    root = os.environ.get(STAGE_STORE_ENV)
    return StageStore(root) if root else None


def reuse_key(name: str, section: str | None, upstream: tuple[str, ...], recipe, layout) -> tuple[str, dict]:
    """The stage's key (see `contracts.reuse`) and what went into it.

    Settings: the stage's recipe section(s), deployment fields left out. Inputs: the content
    checksums of the upstream outputs it reads (`upstream`: `Stage.inputs`, so a code_mix source of
    share 0, not read, need not exist and is not in the key); for `raw_code`, which reads the
    sources themselves, the sources' settings and a fingerprint of their files.
    """
    sections = ([section] if section else []) + list(EXTRA_SECTIONS.get(name, ()))
    settings: dict[str, Any] = {s: recipe.settings(s) for s in sections}
    inputs = {up: read_manifest(layout.stage(up))["checksum"] for up in upstream}
    if not upstream:
        settings["sources"] = recipe.settings("sources")
        inputs["files"] = files_fingerprint([source.path for source in recipe.sources])
    return stage_key(name, settings, inputs), {"settings": settings, "inputs": inputs}


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A small Markdown table (Dagster renders it in the asset's metadata)."""
    if not rows:
        return "_empty_"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def figure_metadata(figure, artifact_name: str) -> dg.MetadataValue:
    """Log a matplotlib figure to the active MLflow run and show it in the Dagster UI from there.

    The Dagster UI's Markdown (react-markdown's URL filter) keeps only http(s) image addresses: a
    plot embedded as a `data:` URL never shows. So the metadata points at the PNG on the MLflow UI's
    artifact endpoint (`orchestration.ui.mlflow_ui_url`: the running `codecook ui`'s, else its
    default address), the same for runs launched from the UI and for `codecook demo` runs. Without
    an active MLflow run there is nothing to point at, and the PNG is embedded.
    """
    import matplotlib.pyplot as plt
    import mlflow

    run = mlflow.active_run()
    if run is not None:
        mlflow.log_figure(figure, artifact_name)
        plt.close(figure)
        query = urllib.parse.urlencode({"path": artifact_name, "run_uuid": run.info.run_id})
        return dg.MetadataValue.md(f"![{artifact_name}]({mlflow_ui_url()}/get-artifact?{query})")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
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


def as_json(value: Any) -> dg.MetadataValue:
    return dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))


def metadata_value(value: Any) -> Any:
    """A report value (orchestration.stage) as Dagster metadata; numbers and text stay as they are."""
    if isinstance(value, Table):
        return dg.MetadataValue.md(markdown_table(value.rows, value.columns))
    if isinstance(value, Markdown):
        return dg.MetadataValue.md(value.text)
    if isinstance(value, Json):
        return as_json(value.value)
    if isinstance(value, Plot):
        return figure_metadata(value.make(), value.artifact)
    return value


def log_report(report: Report) -> None:
    """A report's metrics and artifacts into the active MLflow run."""
    import mlflow

    if report.metrics:
        mlflow.log_metrics({k: float(v) for k, v in report.metrics.items()})
    for name, payload in report.artifacts.items():
        if name.endswith(".json"):
            mlflow.log_dict(payload, name)
        else:
            mlflow.log_text(payload, name)


def stage_asset(stage: Stage) -> dg.AssetsDefinition:
    """The Dagster asset of a declared stage: its upstream stages are its deps; it runs the
    engine on the recipe's section inside an MLflow run and returns the report as metadata."""

    @dg.asset(
        name=stage.name,
        deps=[dg.AssetKey(name) for name in (*stage.upstream, *WATCHED_BY_STAGE.get(stage.name, ()))],
        group_name=stage.group,
        # Data stages refresh when an input changed (orchestration.automation); model and
        # evaluation stages are never started by automation.
        automation_condition=data_refresh_condition() if stage.group in (GROUP_DATA, GROUP_WEB) else None,
        kinds=set(stage.kinds),
        owners=[OWNER],
        description=stage.description,
        # The engine code's hash: Dagster marks the asset stale when the code that computes it changed.
        code_version=engine_fingerprint(),
    )
    def stage_asset_fn(
        context: dg.AssetExecutionContext,
        recipe: RecipeResource,
        storage: StorageResource,
        spark: SparkResource,
        mlflow: MLflowResource,
        duckdb: DuckDBResource,
    ) -> dg.MaterializeResult:
        loaded, layout = recipe.load(), storage.layout()
        session = spark.session(loaded)
        run = StageRun(
            stage=stage,
            spark=session,
            config=loaded.section(stage.section, stage.config) if stage.section else None,
            layout=layout,
            read=lambda name: read_stage(session, layout.stage(name)),
            count=lambda name: int(read_manifest(layout.stage(name))["rows_out"]),
            connect=duckdb.connect,
            recipe=loaded,
            log=context.log.info,
        )
        store = stage_store()
        # Only stages that read their inputs from the storage root (or the sources) can be keyed.
        keyed = store is not None and (stage.upstream or stage.name == "raw_code")
        key, made_of = (
            reuse_key(stage.name, stage.section, stage.inputs(run.config), loaded, layout)
            if keyed
            else ("", {})
        )
        with mlflow.run(context, loaded, layout, **stage.params(run)) as active:
            found = store.lookup(stage.name, key) if keyed else None
            if found is not None:
                store.restore(stage.name, key, run.paths)
                manifest = read_manifest(run.paths)
                context.log.info(
                    f"{stage.name}: reused stored output {key} (computed by {found['computed_by']})"
                )
                return stage_result(
                    manifest,
                    run.paths,
                    active,
                    extra={"stage_key": key, "reused": True, "reused_from": found["computed_by"]},
                )
            # Spark's console bar reaches no one watching the run: tasks, rate and ETA go to the run log.
            with SparkProgress(session, stage.name, context.log.info):
                manifest, report = run_stage(run, recipe_hash=loaded.hash)
            if keyed:
                store.publish(stage.name, key, run.paths, {"computed_by": layout.root, **made_of})
                report.metadata.update({"stage_key": key, "reused": False})
            for line in [summary_line(manifest), *report.lines]:
                context.log.info(line)
            log_report(report)
            metadata = {name: metadata_value(value) for name, value in report.metadata.items()}
            return stage_result(manifest, run.paths, active, extra=metadata)

    return stage_asset_fn


def stage_asset_checks(stage: Stage) -> list[dg.AssetChecksDefinition]:
    """The standard blocking checks of a declared stage plus the ones it declares itself."""
    standard = stage_checks(
        stage.name, required_columns=stage.required_columns, with_expectations=stage.expectations
    )
    return [*standard, *declared_checks(stage, metadata_value)]
