"""The recipe model lives in `contracts.recipe` (Spark-free, shared with `training/`); this module
keeps the names importable from their old place."""

from contracts.recipe import (  # noqa: F401
    DEFAULT_RECIPE,
    PROJECT_ROOT,
    IngestConfig,
    MLflowConfig,
    Recipe,
    RecipeError,
    SourceConfig,
    SparkConfig,
    config_from_dict,
    load_recipe,
)
