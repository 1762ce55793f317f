"""One declaration per stage; the Dagster asset and the `codecook` command are both made from it.

A `Stage` says, once: its name (asset key and storage folder), its upstream stages, its recipe
section and typed config, the engine call, the MLflow params, the report and its extra checks.

    assets/_stage.py:stage_asset(stage)          the Dagster asset, with MLflow (+ orchestration.checks)
    orchestration/stage.py:run_command(cmd, args)  `codecook NAME --input PATH --output DIR`

Both go through `run_stage`: engine -> write_stage -> release -> report (a stage of the code
funnel also gets the funnel so far, `add_funnel`). A `Command` is one or
more stages run in a row (`dedup` = exact_dedup then near_dedup); its first stage reads `--input`
(plain JSONL/Parquet or a stage folder, see `quality.plain`), later stages read what the earlier
ones wrote under DIR, exactly as assets read their upstream stages under the storage root.

Nothing here imports Dagster or MLflow: a report is plain data (`Table`, `Markdown`, `Json`,
`Plot`, numbers, text) that the asset maker turns into metadata and MLflow calls, and the command
prints as a summary.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GROUP_DATA = "data"  # code ingest, dedup, filters, mix: refreshed weekly by the schedule
GROUP_WEB = "web"  # web pool and recall rounds: refreshed with the data
GROUP_MODEL = "model"  # tokenizer, shards, training
GROUP_EVAL = "evaluation"  # benchmarks and reports

# --------------------------------------------------------------------------------------------------
# Report values: what a stage reports, independent of where it is shown.


@dataclass(frozen=True)
class Table:
    """Rows shown as a Markdown table."""

    rows: list[dict[str, Any]]
    columns: list[str] | None = None


@dataclass(frozen=True)
class Markdown:
    text: str


@dataclass(frozen=True)
class Json:
    value: Any


@dataclass(frozen=True)
class Plot:
    """A matplotlib figure, made only where it is shown (the asset), logged under `artifact`."""

    make: Callable[[], Any]
    artifact: str


@dataclass
class Report:
    """A stage's report: metadata (name -> int/float/str/Table/Markdown/Json/Plot), MLflow metrics
    and artifacts (`name.json` -> dict, other names -> text), and lines the command prints."""

    metadata: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# The declaration and what an engine call sees.


@dataclass
class Outcome:
    """What an engine call returns: kept rows, reject rows (REJECT_COLUMNS), and
    `rows_in` when the engine counted its own input units (None: the upstream's row count)."""

    kept: Any
    rejected: Any
    rows_in: int | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    """Extra manifest keys."""
    release: Callable[[], None] = lambda: None
    """Drops cached intermediates once both outputs are written."""
    result: Any = None
    """The engine's own result object, for the report."""


@dataclass
class StageRun:
    """One run of one stage: the engine call, params, report and checks read from it."""

    stage: Stage
    spark: Any
    config: Any
    layout: Any  # quality.storage.StorageLayout
    read: Callable[[str], Any]
    """An upstream stage's rows by stage name (in a command, the first one is `--input`)."""
    count: Callable[[str], int]
    """An upstream stage's row count."""
    connect: Callable[[], Any]
    """A fresh DuckDB connection (a context manager)."""
    recipe: Any = None
    """The loaded recipe (Dagster); None in a command."""
    log: Callable[[str], None] = print
    options: dict[str, Any] = field(default_factory=dict)
    """A command's own arguments (`--name`, `--include`...); empty under Dagster."""

    @property
    def paths(self):
        return self.layout.stage(self.stage.name)

    def input(self, name: str | None = None):
        return self.read(name or self.stage.upstream[0])

    def parallelism(self) -> int:
        try:
            return int(self.spark.sparkContext.defaultParallelism)
        except AttributeError:  # Spark Connect has no SparkContext (PySparkAttributeError)
            return 8


@dataclass(frozen=True)
class CheckRun:
    """What a declared check reads: the stage's paths, DuckDB, and Spark and config if it asks."""

    paths: Any
    connection: Any
    spark: Any = None
    config: Any = None


@dataclass(frozen=True, kw_only=True)
class Check:
    """A blocking asset check beyond the standard three (orchestration.checks.stage_checks)."""

    name: str
    description: str
    run: Callable[[CheckRun], tuple[bool, dict[str, Any]]]
    spark: bool = False
    """Whether the check needs the recipe's Spark session (and config)."""


def _no_params(run: StageRun) -> dict[str, Any]:
    return {}


@dataclass(frozen=True, kw_only=True)
class Stage:
    """A stage, declared once."""

    name: str
    """Asset key, storage folder (data/<name>) and the `stage` of its reject rows."""
    description: str
    run: Callable[[StageRun], Outcome]
    """The engine call."""
    upstream: tuple[str, ...] = ()
    """Stages it reads; the first is its documents input."""
    reads: Callable[[Any], tuple[str, ...]] | None = None
    """Which of `upstream` a run reads, given the section's config; None: all of them. An upstream
    left out need not exist: it is not read, not part of the reuse key, not run by an ablation."""
    section: str | None = None
    """Recipe section holding its settings (also the keys of a command's `--config` file)."""
    config: type | None = None
    """The section's typed config class."""
    params: Callable[[StageRun], dict[str, Any]] = _no_params
    """MLflow params of a run (besides the recipe name and hash)."""
    report: Callable[[StageRun, Outcome, dict[str, Any]], Report] | None = None
    group: str = GROUP_DATA
    kinds: frozenset[str] = frozenset({"spark", "parquet"})
    required_columns: dict[str, str] | None = None
    """Schema check: the columns and DuckDB types its output must have (default: documents')."""
    expectations: bool = True
    """Whether the Great Expectations check runs (not for side tables)."""
    checks: tuple[Check, ...] = ()

    def inputs(self, config: Any) -> tuple[str, ...]:
        """The upstream stages a run with this config reads."""
        return self.upstream if self.reads is None else self.reads(config)


@dataclass(frozen=True, kw_only=True)
class Command:
    """`codecook NAME --input PATH --output DIR [--config FILE]`: stages run in a row."""

    name: str
    help: str
    stages: tuple[Stage, ...]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    """Arguments beyond --input/--output/--config/--master; passed to stages as `options`."""
    plain_input: bool = True
    """--input is rows for `quality.plain`; False: the first stage reads the path itself."""
    check_input: Callable[[str], None] | None = None
    """With `plain_input=False`: checks --input before Spark starts (raises InputError)."""


# --------------------------------------------------------------------------------------------------
# The one sequence: engine -> write -> release -> report.


def run_stage(
    run: StageRun, *, recipe_hash: str, plain: Any = None, manifest: dict[str, Any] | None = None
) -> tuple[dict[str, Any], Report]:
    """Run `run.stage`'s engine, write its output atomically, report. `plain` (a
    quality.plain.PlainInput) adds the input rows that could not be documents to its rejects;
    `manifest` adds keys to the manifest."""
    from quality.schema import with_source_ids
    from quality.storage import write_stage

    stage = run.stage
    outcome = stage.run(run)
    try:
        rows_in = outcome.rows_in if outcome.rows_in is not None else int(run.count(stage.upstream[0]))
        rejected = outcome.rejected
        if stage.upstream:
            rejected = with_source_ids(rejected, run.input())
        if plain is not None and plain.rows_rejected:
            rejected = rejected.unionByName(plain.rejected, allowMissingColumns=True)
            rows_in += plain.rows_rejected
        manifest = write_stage(
            outcome.kept,
            rejected,
            paths=run.paths,
            rows_in=rows_in,
            recipe_hash=recipe_hash,
            extra={**(manifest or {}), **outcome.manifest},
        )
    finally:
        outcome.release()
    report = stage.report(run, outcome, manifest) if stage.report else Report()
    add_funnel(run, report)
    return manifest, report


def add_funnel(run: StageRun, report: Report) -> None:
    """A stage of the code funnel (quality.funnel.CODE_STAGES) carries the funnel so far: rows and
    bytes per stage and per rejection reason, up to and including itself, as the `funnel` table and
    `funnel_plot` metadata and the funnel/ MLflow artifacts. One DuckDB query per stage that
    rejected rows; the figure is drawn only where it is shown (the asset)."""
    from quality.funnel import CODE_STAGES, build_funnel, plot_funnel

    if run.stage.name not in CODE_STAGES:
        return
    with run.connect() as connection:
        funnel = build_funnel(run.layout, connection, through=run.stage.name)
    report.metadata["funnel"] = Markdown(funnel.markdown())
    report.metadata["funnel_plot"] = Plot(lambda: plot_funnel(funnel), "funnel/funnel.png")
    report.artifacts["funnel/funnel.md"] = funnel.markdown()
    report.artifacts["funnel/funnel.json"] = {"stages": funnel.stages, "reasons": funnel.reasons}


def summary_line(manifest: dict[str, Any]) -> str:
    reasons = ", ".join(
        f"{r}={n}"
        for r, n in sorted(manifest.get("rejected_by_reason", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return (
        f"{manifest['stage']}: {manifest['rows_in']} in, {manifest['rows_out']} kept, "
        f"{manifest['rows_rejected']} rejected ({reasons or 'none'})"
    )


# --------------------------------------------------------------------------------------------------
# The command twin.


def config_file_sections(command: Command, config_file: str | None) -> dict[str, Any]:
    """Each stage section's typed config from `--config FILE`: a YAML file holding the keys of the
    command's (last) section, or a recipe (fragment) naming its sections. Defaults without a file."""
    from contracts.config import build_config, read_config_file

    data = read_config_file(config_file)
    declared = {s.section: s.config for s in command.stages if s.section}
    if not declared:
        return {}
    if any(key in declared and isinstance(value, dict) for key, value in data.items()):
        by_section = {name: data.get(name) for name in declared}
    else:
        by_section = {name: None for name in declared}
        by_section[command.stages[-1].section or next(iter(declared))] = data
    where = config_file or "defaults"
    return {name: build_config(cls, by_section[name], f"{where}: {name}") for name, cls in declared.items()}


@contextmanager
def jvm_output_to(log_path: str) -> Iterator[None]:
    """While a command runs, file descriptor 2 (which the Spark JVM and its Python workers inherit)
    points at `log_path`: the terminal gets the command's own lines, never Spark's log or a JVM
    stack trace. Restored afterwards, so the command's error line lands on the real stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log_path, "ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def command_spark(master: str | None):
    from quality.recipe import SparkConfig
    from quality.spark_session import build_spark_session

    config = SparkConfig(master=master or "local[*]", conf={"spark.ui.showConsoleProgress": "false"})
    return build_spark_session(config, app_name="codecook-cli")


def run_stages(
    command: Command,
    spark: Any,
    *,
    input_path: str,
    layout: Any,
    configs: dict[str, Any],
    options: dict[str, Any] | None = None,
    spec: Any = None,
    log: Callable[[str], None] = print,
) -> list[tuple[dict[str, Any], Report, StageRun]]:
    """A command's stages in a row on one input, into `layout`; each stage's manifest and report.
    `spec` (quality.plain.InputSpec) is located from `input_path` when the command reads plain rows."""
    from contracts.config import settings_of
    from contracts.recipe import settings_hash
    from quality.plain import locate_input, read_documents
    from quality.storage import read_manifest, read_stage

    options = {"input": input_path, **(options or {})}
    # Stands in for the recipe hash in the manifests: what the stages computed with.
    digest = settings_hash(
        {"sections": {name: settings_of(config) for name, config in configs.items()}, "options": options}
    )
    first = command.stages[0]
    if command.plain_input and spec is None:
        spec = locate_input(input_path)
    plain = read_documents(spark, spec, stage=first.name) if command.plain_input else None
    given = {first.upstream[0]: plain} if plain is not None else {}

    def read(name: str):
        return given[name].documents if name in given else read_stage(spark, layout.stage(name))

    def count(name: str) -> int:
        return (
            given[name].documents_in if name in given else int(read_manifest(layout.stage(name))["rows_out"])
        )

    def connect():
        import duckdb

        return duckdb.connect(":memory:")

    done = []
    try:
        for index, stage in enumerate(command.stages):
            run = StageRun(
                stage=stage,
                spark=spark,
                config=configs.get(stage.section) if stage.section else None,
                layout=layout,
                read=read,
                count=count,
                connect=connect,
                log=log,
                options=options,
            )
            first_plain = plain if index == 0 else None
            manifest, report = run_stage(
                run, recipe_hash=digest, plain=first_plain, manifest={"input": input_path}
            )
            done.append((manifest, report, run))
    finally:
        if plain is not None:
            plain.release()
    return done


def run_command(command: Command, args: argparse.Namespace) -> int:
    """`codecook NAME`: check --input and --config, run the command's stages into DIR, print what
    they did. Spark's own output goes to DIR/logs/NAME.log."""
    from quality.plain import InputError, locate_input
    from quality.storage import StorageLayout

    # What can be checked without Spark is checked first: a bad input costs no JVM start.
    spec = locate_input(args.input) if command.plain_input else None
    if command.check_input is not None:
        command.check_input(args.input)
    configs = config_file_sections(command, args.config)
    root = args.output if "://" in args.output else str(Path(args.output).resolve())
    log_path = f"{root}/logs/{command.name}.log" if "://" not in root else os.devnull
    try:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--output {args.output}: cannot write there ({error.strerror or error})") from None
    options = {
        k: v
        for k, v in vars(args).items()
        if k not in ("command", "func", "output", "config", "master", "stage_command")
    }
    with jvm_output_to(log_path):
        spark = command_spark(getattr(args, "master", None))
        done = run_stages(
            command,
            spark,
            input_path=args.input,
            layout=StorageLayout(root),
            configs=configs,
            options=options,
            spec=spec,
        )
    for manifest, report, run in done:
        print(summary_line(manifest))
        for line in [*report.lines, f"kept:     {run.paths.data_dir}", f"rejected: {run.paths.rejected_dir}"]:
            print(f"  {line}")
    if log_path != os.devnull:
        print(f"Spark's own log: {log_path}")
    return 0


def input_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "this input or setting cannot be used" (exit code 2, one line);
    anything else is a bug and keeps its traceback."""
    from pyspark.errors import AnalysisException

    from contracts.config import RecipeError
    from quality.dedup.engine import DedupInputError
    from quality.ingest import SourceError
    from quality.plain import InputError
    from quality.storage import StageNotMaterialized
    from quality.web import WebInputError
    from training.shards import ShardInputError

    return (
        InputError,
        SourceError,
        RecipeError,
        DedupInputError,
        StageNotMaterialized,
        WebInputError,
        ShardInputError,
        AnalysisException,
    )


def one_line(error: BaseException) -> str:
    """An error's message as one line: a recipe error's problems joined, else the first line (a
    Spark error carries its JVM trace below it)."""
    from contracts.config import RecipeError

    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return "; ".join(lines) if isinstance(error, RecipeError) else lines[0]
