"""Recipes: one YAML file describes a whole run of the graph (sources, engines, every stage's knobs).

A recipe is one typed model, validated when it is loaded: every top-level section is built into
its stage's config class (SECTIONS below), so an unknown key at any depth, a misspelled section or
a wrong value fails before any stage runs, naming the file, the key and what is allowed.

Variants: a recipe may say `extends: other.yaml` (a path relative to the recipe's folder) and then
only what differs. The files are merged key by key (mappings merge, everything else, lists
included, is replaced). A key may be written dotted, `dedup.num_bands: 16` meaning
`dedup: {num_bands: 16}`, and `load_recipe(path, overrides=["training.steps=60"])` applies the same
form from a command line.

Values may name places on this machine with placeholders, resolved when the recipe is loaded:
  ${stdlib}         the running interpreter's standard library folder
  ${site_packages}  the running environment's site-packages folder
  ${recipe_dir}     the folder holding the recipe file that writes the placeholder
  ${project_root}   the folder holding pyproject.toml
  ${env:NAME}       an environment variable (an error if unset)

Imports neither Spark nor Dagster; the section classes are imported when a recipe is loaded.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import os
import re
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from contracts.config import DEPLOYMENT, RecipeError, build_config, settings_of, to_plain

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RECIPE = PROJECT_ROOT / "recipes" / "demo.yaml"

_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
C = TypeVar("C")

__all__ = [
    "DEFAULT_RECIPE",
    "AblationConfig",
    "PROJECT_ROOT",
    "SECTIONS",
    "IngestConfig",
    "MLflowConfig",
    "Recipe",
    "RecipeError",
    "SourceConfig",
    "SparkConfig",
    "apply_overrides",
    "config_from_dict",
    "load_recipe",
]


def config_from_dict(cls: type[C], data: dict[str, Any] | None, where: str) -> C:
    """Build the config `cls` from plain data, validated (see `contracts.config.build_config`)."""
    return build_config(cls, data, where)


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
    files_per_partition: int = field(default=500, metadata=DEPLOYMENT)
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
    jvm_quick_start: bool = field(default=True, metadata=DEPLOYMENT)
    """Local driver JVM tuned for minute-long stages (`quality.jvm_start`): C1-only JIT and the
    class-data archive `make env` builds; about half the driver's CPU on small corpora. Off: the
    JVM's own settings, for long single-machine runs whose time goes to JVM-side shuffles."""


@dataclass(frozen=True, kw_only=True)
class MLflowConfig:
    """Where runs are tracked."""

    tracking_uri: str | None = None
    """Explicit tracking URI; None means `sqlite:///<storage root>/mlflow.db`, never MLflow's cwd default."""
    experiment: str | None = None
    """Experiment name; None means `codecook-<recipe name>` (one experiment per recipe)."""


@dataclass(frozen=True, kw_only=True)
class AblationConfig:
    """How `codecook ablate` compares variants of this recipe (every variant must agree on it)."""

    seeds: tuple[int, ...] = (1, 2)
    """Training seeds per variant; each variant trains once per seed, so the comparison sees how
    much of a difference the seed alone makes. At least 2."""
    eval_stage: str = "decontaminated_code"
    """Stage of the first variant whose held-out documents form the evaluation set."""
    holdout_fraction: float = 0.05
    """Share of documents (by a hash of doc_id alone) held out of every variant's training shards
    and eligible for the evaluation set."""
    languages: tuple[str, ...] = ("python",)
    """Languages of the evaluation documents (empty: all)."""
    max_eval_docs: int = 200
    """Evaluation documents at most (the lowest hash scores first, so the set is stable)."""
    max_doc_chars: int = 6000
    """Evaluation documents are cut to this many characters (scoring cost grows with length)."""
    passk: tuple[Literal["humaneval", "mbpp"], ...] = ()
    """Benchmarks also run on every trained proxy (the recipe's `eval:` section sets limits and
    prompts); their per-task pass@1 joins the metrics. A metric every variant scores 0 on is
    reported as not measurable, which is what a small from-scratch proxy gets: worth it with
    continued pretraining of a real base model."""
    bootstrap_samples: int = 4000
    """Resamples of the paired bootstrap behind every confidence interval."""
    confidence: float = 0.95
    """Coverage of the confidence intervals."""

    def __post_init__(self) -> None:
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: want at least 2 distinct seeds, got {list(self.seeds)}")
        if not 0.0 < self.holdout_fraction < 0.5:
            raise ValueError(f"holdout_fraction must lie in (0, 0.5), got {self.holdout_fraction}")
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie in (0.5, 1), got {self.confidence}")


# Section name -> "module:Class" of its typed config. Imported when a recipe is loaded, so this
# module stays free of Spark; every section is validated then, present or not.
SECTIONS: dict[str, str] = {
    "spark": "contracts.recipe:SparkConfig",
    "mlflow": "contracts.recipe:MLflowConfig",
    "ingest": "contracts.recipe:IngestConfig",
    "dedup": "quality.dedup.config:DedupConfig",
    "quality_signals": "quality.signals:SignalConfig",
    "quality_filter": "quality.filters:FilterConfig",
    "pii": "quality.pii:PIIConfig",
    "decontamination": "quality.decontaminate:DecontaminationConfig",
    "code_mix": "quality.mix:MixConfig",
    "notebooks": "quality.notebooks:NotebookConfig",
    "git_commits": "quality.commits:CommitConfig",
    "gh_issues": "quality.gh_issues:IssueConfig",
    "web": "quality.webpool:WebConfig",
    "tokenizer": "training.config:TokenizerConfig",
    "training": "training.config:TrainConfig",
    "eval": "training.evaluation.config:EvalConfig",
    "ablation": "contracts.recipe:AblationConfig",
    "seed_functions": "quality.seed_functions:SeedFunctionsConfig",
    "self_align": "training.instruct.config:SelfAlignConfig",
    "sft": "training.instruct.config:SFTConfig",
}
# Checks that need more than the types (a profile name in an override, a language target), run at
# load time too: section -> "module:function(config)" raising ValueError/RecipeError.
SECTION_CHECKS: dict[str, str] = {
    "quality_filter": "quality.filters:load_profiles",
    "code_mix": "quality.mix:MixConfig.language_targets",
}
# Top-level keys that are not stage sections.
META_KEYS = {
    "name": "Display name; the MLflow experiment is `codecook-<name>` unless `mlflow.experiment` says otherwise.",
    "description": "Free text: what this recipe or variant is for.",
    "extends": "A recipe file this one starts from (relative to this file's folder).",
    "sources": "The code sources of `raw_code`: a list of SourceConfig mappings.",
}


def section_class(name: str) -> type:
    """The config class of section `name`."""
    if name not in SECTIONS:
        raise KeyError(f"no recipe section {name!r}; sections: {sorted(SECTIONS)}")
    module, _, attr = SECTIONS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def _call(reference: str, config: Any) -> None:
    module, _, attr = reference.partition(":")
    target: Any = importlib.import_module(module)
    for part in attr.split("."):
        target = getattr(target, part)
    # A method reference (Class.method) is called on the config, a function with it.
    target(config)


@dataclass(frozen=True)
class Recipe:
    """A loaded, validated recipe: its merged document, a hash of its settings, every section typed."""

    name: str
    """Display name (`name:`, else the file's stem)."""
    path: Path
    """The file that was loaded (the last of the `extends` chain)."""
    document: dict[str, Any]
    """The merged document with placeholders resolved; `name in document` tells a section was written."""
    hash: str
    """SHA-256 prefix of the effective settings (merged, before placeholders; without name,
    description and extends): two files that say the same thing hash the same."""
    configs: dict[str, Any]
    """Section name -> its validated config (defaults for sections the recipe does not write)."""
    sources: tuple[SourceConfig, ...]
    """The code sources of `raw_code`."""
    chain: tuple[Path, ...] = ()
    """The files merged into this recipe, base first."""

    def section(self, name: str, cls: type[C] | None = None) -> C:
        """The validated config of section `name` (defaults where the recipe is silent)."""
        if name not in self.configs:
            raise KeyError(f"no recipe section {name!r}; sections: {sorted(self.configs)}")
        config = self.configs[name]
        if cls is not None and not isinstance(config, cls):
            raise TypeError(f"section {name!r} is a {type(config).__name__}, not {cls.__name__}")
        return config

    @property
    def ingest(self) -> IngestConfig:
        return self.configs["ingest"]

    @property
    def spark(self) -> SparkConfig:
        return self.configs["spark"]

    @property
    def mlflow(self) -> MLflowConfig:
        return self.configs["mlflow"]

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or f"codecook-{self.name}"

    def settings(self, name: str) -> Any:
        """What section `name` computes with: its config as plain data, deployment fields left out."""
        if name == "sources":
            return to_plain(self.sources)
        return settings_of(self.section(name))


# ------------------------------------------------------------------------------------------------
# Reading, merging and overriding


def _expand_dotted(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Top-level `{'a.b': 1}` -> `{'a': {'b': 1}}`, merged with keys written nested.

    Only top-level keys are read as paths: deeper keys may hold dots of their own
    (`node_selector: {nvidia.com/gpu.product: ...}`).
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise RecipeError(f"{where}: keys must be strings, got {key!r}")
        parts = key.split(".")
        if any(not p for p in parts):
            raise RecipeError(f"{where}: malformed dotted key {key!r}")
        nested: Any = value
        for part in reversed(parts[1:]):
            nested = {part: nested}
        out[parts[0]] = merge(out[parts[0]], nested) if parts[0] in out else nested
    return out


def merge(base: Any, change: Any) -> Any:
    """`change` laid over `base`: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(change, dict):
        merged = dict(base)
        for key, value in change.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    return change


def apply_overrides(document: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`KEY=VALUE` strings (dotted keys, YAML values) laid over `document`."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {item!r}: want KEY=VALUE, e.g. training.steps=60")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise RecipeError(f"override {item!r}: value is not valid YAML: {error}") from None
        document = merge(document, _expand_dotted({key.strip(): value}, "override"))
    return document


def _read_yaml(path: Path, referrer: Path | None) -> dict[str, Any]:
    if not path.is_file():
        where = f" (extended by {referrer})" if referrer else ""
        raise RecipeError(f"recipe not found: {path}{where}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: not valid YAML: {error}") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections, got {type(raw).__name__}")
    return _expand_dotted(raw, path.name)


def _chain(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The files of an `extends` chain, base first, each parsed."""
    chain: list[tuple[Path, dict[str, Any]]] = []
    referrer: Path | None = None
    while True:
        if any(path == seen for seen, _ in chain):
            cycle = " -> ".join(str(p) for p, _ in chain) + f" -> {path}"
            raise RecipeError(f"recipe `extends` forms a cycle: {cycle}")
        document = _read_yaml(path, referrer)
        chain.append((path, document))
        parent = document.get("extends")
        if parent is None:
            break
        if not isinstance(parent, str):
            raise RecipeError(f"{path}: extends: want one file name, got {parent!r}")
        referrer, path = path, (path.parent / parent).resolve()
    return list(reversed(chain))


def _placeholders(path: Path) -> dict[str, str]:
    return {
        "stdlib": sysconfig.get_paths()["stdlib"],
        "site_packages": sysconfig.get_paths()["purelib"],
        "recipe_dir": str(path.parent),
        "project_root": str(PROJECT_ROOT),
    }


def _resolve(value: Any, context: dict[str, str], where: str) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, context, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, context, where) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key.startswith("env:"):
            var = key[4:]
            if var not in os.environ:
                raise RecipeError(f"{where}: placeholder ${{{key}}}: environment variable {var} is not set")
            return os.environ[var]
        if key not in context:
            raise RecipeError(
                f"{where}: unknown placeholder ${{{key}}}; known: {sorted(context)} and env:NAME"
            )
        return context[key]

    return _PLACEHOLDER.sub(substitute, value)


def settings_hash(value: Any) -> str:
    """A short, stable hash of plain data (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_recipe(
    path: str | os.PathLike[str] | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> Recipe:
    """Load and validate a recipe (default: `$CODECOOK_RECIPE`, else `recipes/demo.yaml`).

    Raises RecipeError naming every problem found; nothing has run when it does.
    """
    path = Path(path or os.environ.get("CODECOOK_RECIPE") or DEFAULT_RECIPE).resolve()
    chain = _chain(path)
    raw: dict[str, Any] = {}
    resolved: dict[str, Any] = {}
    for file, document in chain:
        # Placeholders resolve per file: `${recipe_dir}` is the folder of the file that wrote it.
        raw = merge(raw, document)
        resolved = merge(resolved, _resolve(document, _placeholders(file), file.name))
    if overrides:
        raw = apply_overrides(raw, overrides)
        resolved = apply_overrides(resolved, overrides)
        resolved = _resolve(resolved, _placeholders(path), "override")
    name = resolved.get("name") or path.stem
    where = (
        path.name if len(chain) == 1 else f"{path.name} (extends {', '.join(p.name for p, _ in chain[:-1])})"
    )

    problems: list[str] = []
    unknown = sorted(set(resolved) - set(SECTIONS) - set(META_KEYS))
    for key in unknown:
        hint = difflib.get_close_matches(key, [*SECTIONS, *META_KEYS], n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        problems.append(
            f"{where}: {key}: unknown section{suggestion}; sections: {', '.join(sorted(SECTIONS))}; "
            f"other keys: {', '.join(sorted(META_KEYS))}"
        )
    if not isinstance(name, str):
        problems.append(f"{where}: name: want text, got {name!r}")

    sources: tuple[SourceConfig, ...] = ()
    listed = resolved.get("sources") or []
    if not isinstance(listed, list):
        problems.append(f"{where}: sources: want a list of sources, got {type(listed).__name__}")
        listed = []
    built = []
    for index, item in enumerate(listed):
        try:
            built.append(build_config(SourceConfig, item, f"{where}: sources[{index}]"))
        except RecipeError as error:
            problems.append(str(error))
    sources = tuple(built)
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        problems.append(f"{where}: sources: names must be unique, got {names}")

    configs: dict[str, Any] = {}
    for section in SECTIONS:
        try:
            configs[section] = build_config(
                section_class(section), resolved.get(section), f"{where}: {section}"
            )
            if section in SECTION_CHECKS and section in resolved:
                _call(SECTION_CHECKS[section], configs[section])
        except (RecipeError, ValueError) as error:
            message = str(error)
            if not message.startswith(where):
                # Section checks name their keys from the section down (`code_mix.targets.java`).
                message = f"{where}: {message if message.startswith(section) else f'{section}: {message}'}"
            problems.append(message)
    if problems:
        raise RecipeError("\n".join(problems))

    effective = {k: v for k, v in raw.items() if k not in ("name", "description", "extends")}
    return Recipe(
        name=name,
        path=path,
        document=resolved,
        hash=settings_hash(effective),
        configs=configs,
        sources=sources,
        chain=tuple(p for p, _ in chain),
    )
