"""Recipes: one YAML file describes a whole run of the graph (sources, engines, every stage's knobs).

A recipe is data. Each stage owns one top-level section and reads it into its own typed config
with `Recipe.section(name, ConfigClass)`, which rejects unknown keys so a typo fails loudly instead
of silently running with a default.

Values may name places on this machine with placeholders, resolved when the recipe is loaded:
  ${stdlib}         the running interpreter's standard library folder
  ${site_packages}  the running environment's site-packages folder
  ${recipe_dir}     the folder holding the recipe file
  ${project_root}   the folder holding pyproject.toml (the recipe's parent's parent by default)
  ${env:NAME}       an environment variable (an error if unset)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sysconfig
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RECIPE = PROJECT_ROOT / "recipes" / "demo.yaml"

_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
C = TypeVar("C")


class RecipeError(ValueError):
    """A recipe that cannot be run as written; the message says which key and why."""


def config_from_dict(cls: type[C], data: dict[str, Any] | None, where: str) -> C:
    """Build the dataclass `cls` from `data`, refusing unknown keys and coercing lists to tuples."""
    data = dict(data or {})
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        origin = typing.get_origin(hint)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = config_from_dict(hint, value, f"{where}.{name}")
        elif origin is tuple and isinstance(value, list):
            value = tuple(value)
        elif origin in (typing.Union, types.UnionType) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise RecipeError(f"{where}: {error}") from None


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    """One place code is read from."""

    name: str
    """Short, stable name; part of every `doc_id`, so renaming a source renames its documents."""
    kind: Literal["folder", "jsonl", "parquet"]
    """`folder`: every file below `path`; `jsonl` / `parquet`: rows with a `content` column."""
    path: str
    """Local path or fsspec URL (a folder, a file, or a glob of files for jsonl/parquet)."""
    include: tuple[str, ...] = ("**",)
    """Folder sources: globs over the path relative to `path` (`**` spans folders); a file must match one."""
    exclude: tuple[str, ...] = ()
    """Folder sources: globs that remove files `include` admitted (e.g. `**/__pycache__/**`)."""
    repo: str | None = None
    """Repository name recorded for every file of this source (overridden by a `repo` column)."""
    repo_from_first_dir: bool = False
    """Folder sources: use the first folder below `path` as the repository name (site-packages)."""
    stars: int | None = None
    """Star count recorded for every file of this source (overridden by a `stars` column)."""
    licence: str | None = None
    """Licence recorded for every file of this source (overridden by a `licence` column)."""

    def __post_init__(self) -> None:
        if self.kind not in ("folder", "jsonl", "parquet"):
            raise ValueError(
                f"source {self.name!r}: kind must be folder, jsonl or parquet, not {self.kind!r}"
            )
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"source name {self.name!r} must be letters, digits, '_', '.' or '-'")


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    """How `raw_code` turns sources into documents."""

    max_file_bytes: int = 8 * 1024 * 1024
    """Files larger than this are rejected as `too_large` without being read (OpenCoder: 8 MB)."""
    files_per_partition: int = 500
    """Folder sources: listed files per Spark partition; smaller spreads skewed folders better."""


@dataclass(frozen=True, kw_only=True)
class SparkConfig:
    """Where Spark runs. The embedded default is a local session using every core."""

    master: str = "local[*]"
    """Spark master URL (`local[*]`, `spark://host:7077`, `k8s://...`); ignored when `remote` is set."""
    remote: str | None = None
    """Spark Connect address (`sc://host:15002`); runs the same jobs on a remote cluster."""
    driver_memory: str = "auto"
    """JVM heap of the local driver; `auto` takes a third of this machine's memory, capped at 8g."""
    shuffle_partitions: int = 8
    """`spark.sql.shuffle.partitions`; fixed (not per-core) so results do not depend on the machine."""
    conf: dict[str, str] = field(default_factory=dict)
    """Any further Spark settings, passed through unchanged."""


@dataclass(frozen=True, kw_only=True)
class MLflowConfig:
    """Where runs are tracked."""

    tracking_uri: str | None = None
    """Explicit tracking URI; None means `sqlite:///<storage root>/mlflow.db`, never MLflow's cwd default."""
    experiment: str | None = None
    """Experiment name; None means `codecook-<recipe name>` (one experiment per recipe)."""


@dataclass(frozen=True)
class Recipe:
    """A loaded recipe: its resolved document, a hash of what it says, and the shared sections."""

    name: str
    path: Path
    document: dict[str, Any]
    hash: str
    sources: tuple[SourceConfig, ...]
    ingest: IngestConfig
    spark: SparkConfig
    mlflow: MLflowConfig

    def section(self, name: str, cls: type[C]) -> C:
        """The recipe's `name` section as a `cls` config (defaults where the recipe is silent)."""
        return config_from_dict(cls, self.document.get(name), f"{self.path.name}: {name}")

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or f"codecook-{self.name}"


def _resolve(value: Any, context: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, context) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key.startswith("env:"):
            var = key[4:]
            if var not in os.environ:
                raise RecipeError(f"placeholder ${{{key}}}: environment variable {var} is not set")
            return os.environ[var]
        if key not in context:
            raise RecipeError(f"unknown placeholder ${{{key}}}; known: {sorted(context)} and env:NAME")
        return context[key]

    return _PLACEHOLDER.sub(substitute, value)


def load_recipe(path: str | os.PathLike[str] | None = None) -> Recipe:
    """Load a recipe file (default: `$CODECOOK_RECIPE`, else `recipes/demo.yaml`)."""
    path = Path(path or os.environ.get("CODECOOK_RECIPE") or DEFAULT_RECIPE).resolve()
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{path.name}: a recipe is a mapping of sections")
    # The hash covers what the recipe says, before placeholders: the same recipe on two machines
    # hashes the same, and any edit to a knob changes it.
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]
    context = {
        "stdlib": sysconfig.get_paths()["stdlib"],
        "site_packages": sysconfig.get_paths()["purelib"],
        "recipe_dir": str(path.parent),
        "project_root": str(PROJECT_ROOT),
    }
    document = _resolve(raw, context)
    name = document.get("name") or path.stem
    sources = tuple(
        config_from_dict(SourceConfig, source, f"{path.name}: sources[{index}]")
        for index, source in enumerate(document.get("sources") or [])
    )
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise RecipeError(f"{path.name}: source names must be unique, got {names}")
    return Recipe(
        name=name,
        path=path,
        document=document,
        hash=digest,
        sources=sources,
        ingest=config_from_dict(IngestConfig, document.get("ingest"), f"{path.name}: ingest"),
        spark=config_from_dict(SparkConfig, document.get("spark"), f"{path.name}: spark"),
        mlflow=config_from_dict(MLflowConfig, document.get("mlflow"), f"{path.name}: mlflow"),
    )
