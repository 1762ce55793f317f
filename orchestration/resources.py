"""Dagster resources: the recipe, the storage root, Spark, MLflow and DuckDB.

Each is a thin, configurable handle; the engines in `quality/` and `training/` never see Dagster.
Defaults make the embedded setup work with no configuration: the recipe from `$CODECOOK_RECIPE`
(else `recipes/demo.yaml`), the storage root from `$CODECOOK_HOME` (else `./.codecook`), local
Spark, MLflow in a SQLite file under the storage root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from quality.recipe import Recipe, load_recipe
from quality.storage import StorageLayout, default_home


class RecipeResource(dg.ConfigurableResource):
    """The recipe every asset of a run reads its knobs from."""

    path: str | None = Field(
        default=None, description="Recipe YAML; None: $CODECOOK_RECIPE, else recipes/demo.yaml."
    )

    def load(self) -> Recipe:
        return load_recipe(self.path)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Validated once when a run starts, so a typo fails the run before any stage computes.
        self.load()


class StorageResource(dg.ConfigurableResource):
    """The storage root holding data, rejected rows, the Dagster instance and MLflow."""

    root: str | None = Field(
        default=None, description="Local folder or fsspec URL; None: $CODECOOK_HOME, else ./.codecook."
    )

    def layout(self) -> StorageLayout:
        root = self.root or default_home()
        return StorageLayout(root if "://" in root else str(Path(root).resolve()))


class SparkResource(dg.ConfigurableResource):
    """A Spark session built from the recipe's `spark` section (local[*] by default)."""

    master: str | None = Field(default=None, description="Overrides the recipe's master URL when set.")
    remote: str | None = Field(
        default=None,
        description=(
            "Spark Connect address (sc://host:port) overriding the recipe's; None: "
            "$CODECOOK_SPARK_REMOTE, which `codecook ui` sets to the one server it starts, so every "
            "step process of a run shares one JVM instead of starting its own."
        ),
    )

    def session(self, recipe: Recipe):
        from dataclasses import replace

        from orchestration.ui import SPARK_REMOTE_ENV
        from quality.spark_session import build_spark_session

        config = recipe.spark if self.master is None else replace(recipe.spark, master=self.master)
        remote = self.remote or os.environ.get(SPARK_REMOTE_ENV)
        if remote:
            config = replace(config, remote=remote)
        return build_spark_session(config, app_name=f"codecook-{recipe.name}")


class MLflowResource(dg.ConfigurableResource):
    """MLflow tracking with an explicit URI, one experiment per recipe, runs tagged with Dagster ids."""

    tracking_uri: str | None = Field(
        default=None,
        description="Overrides the recipe; None: the recipe's URI, else sqlite under the storage root.",
    )

    def resolve_uri(self, recipe: Recipe, layout: StorageLayout) -> str:
        return self.tracking_uri or recipe.mlflow.tracking_uri or layout.mlflow_uri

    def experiment_id(self, recipe: Recipe, layout: StorageLayout) -> str:
        """Create the recipe's experiment on first use, with artifacts under the storage root
        (MLflow would otherwise put them in ./mlruns of whatever the working directory is)."""
        import mlflow

        mlflow.set_tracking_uri(self.resolve_uri(recipe, layout))
        experiment = mlflow.get_experiment_by_name(recipe.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        artifacts = layout.mlflow_artifacts
        location = artifacts if "://" in artifacts else Path(artifacts).resolve().as_uri()
        try:
            return mlflow.create_experiment(recipe.experiment_name, artifact_location=location)
        except mlflow.exceptions.MlflowException:
            # Steps running at once (the UI's multiprocess executor) on a fresh store may all find
            # no experiment; those losing the race to create it read the one that won.
            experiment = mlflow.get_experiment_by_name(recipe.experiment_name)
            if experiment is None:
                raise
            return experiment.experiment_id

    @contextmanager
    def run(self, context: Any, recipe: Recipe, layout: StorageLayout, **params: Any) -> Iterator[Any]:
        """An MLflow run for one asset materialization, tagged so it can be found from Dagster."""
        import mlflow

        asset_key = (
            context.asset_key.to_user_string() if getattr(context, "has_assets_def", True) else "check"
        )
        experiment_id = self.experiment_id(recipe, layout)
        tags = {
            "dagster.run_id": context.run_id,
            "dagster.asset_key": asset_key,
            "codecook.recipe": recipe.name,
            "codecook.recipe_hash": recipe.hash,
        }
        with mlflow.start_run(experiment_id=experiment_id, run_name=asset_key, tags=tags) as run:
            mlflow.log_params({"recipe": recipe.name, "recipe_hash": recipe.hash, **params})
            yield run


class DuckDBResource(dg.ConfigurableResource):
    """An in-memory DuckDB connection for quick questions over manifests and Parquet outputs."""

    threads: int = Field(
        default=2, description="DuckDB worker threads; small, it shares the machine with Spark."
    )

    def connect(self):
        import duckdb

        connection = duckdb.connect(":memory:")
        connection.execute(f"SET threads = {int(self.threads)}")
        return connection


def default_resources() -> dict[str, Any]:
    """The embedded defaults; every field can be overridden from the Dagster launchpad."""
    return {
        "recipe": RecipeResource(),
        "storage": StorageResource(),
        "spark": SparkResource(),
        "mlflow": MLflowResource(),
        "duckdb": DuckDBResource(),
    }


def ensure_dagster_home(layout: StorageLayout) -> str:
    """Point DAGSTER_HOME at the storage root's `dagster/` folder with a SQLite-backed instance."""
    import yaml

    home = Path(layout.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    settings = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}) if config.exists() else {}
    # SQLite storage is Dagster's default under DAGSTER_HOME. Telemetry stays off offline, and so
    # does the first-run "new user experience" (the newsletter modal that covers the UI); set
    # only when absent, so an instance file a team wrote keeps its own choices.
    missing = {key: {"enabled": False} for key in ("telemetry", "nux") if key not in settings}
    if missing or not config.exists():
        from contracts.storage import atomic_write

        with atomic_write(str(config)) as handle:
            handle.write(yaml.safe_dump({**settings, **missing}, sort_keys=False))
    os.environ["DAGSTER_HOME"] = str(home)
    return str(home)
