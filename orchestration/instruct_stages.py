"""The instruction-tuning data stages, each declared once (see `orchestration.stage`).

    decontaminated_code -> seed_functions -> instructions -> responses   (Self-OSS-Instruct)

The work lives in `quality.seed_functions` (Spark, mypy, the decontamination and near-dedup
engines) and `training.instruct.self_align` (generation and the sandbox, plain Python); these
declarations say which engine call a stage is, what it reports and logs, and make both the Dagster
assets (`assets/instruct.py`) and `codecook self-align --input SEEDS --output DIR`. Dagster-free.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from orchestration.stage import Command, Json, Outcome, Report, Stage, StageRun, Table, run_command
from quality.seed_functions import STAGE as SEEDS
from quality.seed_functions import SeedFunctionsConfig
from training.instruct.config import SelfAlignConfig
from training.instruct.self_align import INSTRUCTIONS_STAGE, RESPONSES_STAGE

GROUP_INSTRUCT = "instruct"
MODEL_CACHE = "models"
"""Folder under the storage root holding de-quantized base models (made once, then loaded fast)."""


# --------------------------------------------------------------------------------------------------
# Benchmark matchers (the decontamination engine, reused)


def benchmark_matcher(*, mbpp_test_only: bool = False):
    """`text -> (reason, detail) | None` over HumanEval and MBPP by `quality.decontaminate`.

    `mbpp_test_only`: MBPP items outside the test split (task ids 11-510) are not searched for, so
    MBPP's train/prompt/validation splits can be SFT data while its test split never is."""
    from quality.decontaminate import DecontaminationConfig, Decontaminator, load_benchmarks

    config = DecontaminationConfig()
    texts = load_benchmarks(config)
    if mbpp_test_only:
        texts = [t for t in texts if t.benchmark != "mbpp" or 11 <= int(t.item_id) <= 510]
    return Decontaminator(texts, config).check


def _model_cache(run: StageRun) -> Path | None:
    root = str(run.layout.root)
    return None if "://" in root else Path(root) / MODEL_CACHE


def _rows_frame(spark, rows: list[dict[str, Any]], columns: dict[str, str]):
    from pyspark.sql import types as T

    kinds = {"string": T.StringType(), "long": T.LongType(), "double": T.DoubleType()}
    schema = T.StructType([T.StructField(name, kinds[kind], True) for name, kind in columns.items()])
    return spark.createDataFrame([{name: row.get(name) for name in columns} for row in rows], schema)


def _rejects_frame(spark, rows: list[dict[str, Any]]):
    from quality.schema import REJECT_SCHEMA

    return spark.createDataFrame(rows, REJECT_SCHEMA)


# --------------------------------------------------------------------------------------------------
# seed_functions


def _seeds(run: StageRun) -> Outcome:
    from quality.seed_functions import seed_functions_frame

    result = seed_functions_frame(run.input(), run.config, log=run.log)
    return Outcome(
        result.kept,
        result.rejected,
        rows_in=result.rows_in,
        manifest={"seed_functions": result.facts},
        release=result.release,
        result=result,
    )


def _seeds_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    facts = outcome.result.facts
    reasons = manifest.get("rejected_by_reason", {})
    return Report(
        metadata={"seed_facts": Json(facts), "seeds": manifest["rows_out"]},
        metrics={"seeds.kept": manifest["rows_out"], **{f"seeds.{k}": v for k, v in facts.items()}},
        artifacts={"seed_functions/facts.json": {"facts": facts, "rejected_by_reason": reasons}},
        lines=[
            f"{facts['candidates']} documented functions, {manifest['rows_out']} seeds kept; "
            f"type errors {reasons.get('type_error', 0)}, near duplicates {facts['near_duplicates']}"
        ],
    )


SEED_FUNCTIONS_STAGE = Stage(
    name=SEEDS,
    description=(
        "Seed functions for Self-OSS-Instruct from decontaminated_code: top-level Python functions "
        "with a docstring, with the import lines they use from their file, that pass the docstring "
        "rule, are self-contained, type-check under mypy (--check-untyped-defs), match no HumanEval "
        "or MBPP item (the decontamination engine) and are near-deduplicated at MinHash Jaccard 0.5 "
        "(the dedup engine). One row per seed (content = the snippet); every other function, and "
        "every document without one, is a reject row with its rule."
    ),
    run=_seeds,
    upstream=("decontaminated_code",),
    section="seed_functions",
    config=SeedFunctionsConfig,
    params=lambda run: {
        "seeds.dedup_threshold": run.config.dedup_threshold,
        "seeds.document_fraction": run.config.document_fraction,
        "seeds.type_check": run.config.type_check,
    },
    report=_seeds_report,
    group=GROUP_INSTRUCT,
    kinds=frozenset({"spark", "parquet", "python"}),
    required_columns={
        "doc_id": "VARCHAR",
        "content": "VARCHAR",
        "source_doc_id": "VARCHAR",
        "function_name": "VARCHAR",
        "docstring": "VARCHAR",
        "cluster_id": "VARCHAR",
    },
    expectations=False,
)

# --------------------------------------------------------------------------------------------------
# instructions

INSTRUCTION_COLUMNS = {
    "doc_id": "string",
    "seed_doc_id": "string",
    "seed": "string",
    "path": "string",
    "concepts": "string",
    "instruction": "string",
    "generator": "string",
}


def _instructions(run: StageRun) -> Outcome:
    from training.instruct.self_align import make_backend, write_instructions

    config: SelfAlignConfig = run.config
    seeds = [row.asDict() for row in run.input().select("doc_id", "content", "path").collect()]
    # No seeds, no model: loading one costs a minute on CPU.
    backend = make_backend(config.generator, _model_cache(run)) if seeds else None
    result = write_instructions(seeds, backend, config, matcher=benchmark_matcher(), echo=run.log)
    return Outcome(
        _rows_frame(run.spark, result.kept, INSTRUCTION_COLUMNS),
        _rejects_frame(run.spark, result.rejected),
        rows_in=len(seeds),
        manifest={
            "generator": backend.name if backend else config.generator.kind,
            "generation_seconds": round(result.timing.generation_s, 2),
        },
        result=result,
    )


def _instructions_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    kept = outcome.result.kept
    examples = [{"seed": r["path"], "instruction": r["instruction"][:300]} for r in kept[:10]]
    return Report(
        metadata={"examples": Table(examples), "generation_seconds": manifest["generation_seconds"]},
        metrics={
            "instructions.kept": len(kept),
            "instructions.generation_seconds": manifest["generation_seconds"],
        },
        lines=[f"{len(kept)} instructions from {manifest['rows_in']} seeds ({manifest['generator']})"],
    )


INSTRUCTIONS = Stage(
    name=INSTRUCTIONS_STAGE,
    description=(
        "Self-OSS-Instruct step 1: each seed function -> the concepts it demonstrates -> a new, "
        "self-contained task, by few-shot prompting the recipe's generator (SmolLM2 locally, an "
        "OpenAI-compatible endpoint at scale), batched and seeded. Replies without the asked-for "
        "sections, failed requests, too short/long or benchmark-matching instructions are reject rows."
    ),
    run=_instructions,
    upstream=(SEEDS,),
    section="self_align",
    config=SelfAlignConfig,
    params=lambda run: {
        "generator": run.config.generator.kind,
        "instructions.temperature": run.config.instructions.temperature,
        "self_align.seed": run.config.seed,
    },
    report=_instructions_report,
    group=GROUP_INSTRUCT,
    kinds=frozenset({"python", "parquet"}),
    required_columns={"doc_id": "VARCHAR", "instruction": "VARCHAR", "concepts": "VARCHAR"},
    expectations=False,
)

# --------------------------------------------------------------------------------------------------
# responses

RESPONSE_COLUMNS = {
    "doc_id": "string",
    "instruction_id": "string",
    "seed_doc_id": "string",
    "path": "string",
    "instruction": "string",
    "response": "string",
    "solution": "string",
    "tests": "string",
    "sample": "long",
    "sandbox_seconds": "double",
    "generator": "string",
}


def _responses(run: StageRun) -> Outcome:
    from training.instruct.self_align import make_backend, write_responses
    from training.sandbox import Sandbox, SandboxConfig

    config: SelfAlignConfig = run.config
    instructions = [
        row.asDict() for row in run.input().select("doc_id", "seed_doc_id", "path", "instruction").collect()
    ]
    backend = make_backend(config.generator, _model_cache(run)) if instructions else None
    step = config.responses
    with Sandbox(SandboxConfig(timeout_s=step.timeout_s, workers=step.sandbox_workers)) as sandbox:
        result = write_responses(
            instructions, backend, sandbox, config, matcher=benchmark_matcher(), echo=run.log
        )
        isolation_missing = list(sandbox.isolation.get("missing", []))
    timing = result.timing
    return Outcome(
        _rows_frame(run.spark, result.kept, RESPONSE_COLUMNS),
        _rejects_frame(run.spark, result.rejected),
        rows_in=len(instructions) * step.samples,
        manifest={
            "self_align": result.facts,
            "generator": backend.name if backend else config.generator.kind,
            "generation_seconds": round(timing.generation_s, 2),
            "sandbox_seconds": round(timing.sandbox_s, 2),
            "sandbox_missing_isolation": isolation_missing,
        },
        result=result,
    )


def self_align_funnel(run: StageRun, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """seeds -> instructions -> responses -> passed -> kept, from the manifests and the facts."""
    from quality.storage import read_manifest
    from training.instruct.self_align import funnel

    instructions = read_manifest(run.layout.stage(INSTRUCTIONS_STAGE))
    facts = manifest["self_align"]
    return funnel(
        instructions["rows_in"], instructions["rows_out"], facts["responses"], facts["passed"], facts["kept"]
    )


def _responses_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    rows = self_align_funnel(run, manifest)
    reasons = manifest.get("rejected_by_reason", {})
    generation, sandbox = manifest["generation_seconds"], manifest["sandbox_seconds"]
    facts = manifest["self_align"]
    pass_rate = facts["passed"] / facts["executed"] if facts["executed"] else 0.0
    return Report(
        metadata={
            "funnel": Table(rows),
            "pass_rate_of_executed": round(pass_rate, 4),
            "rejected_reasons": Json(reasons),
            "sandbox_share_of_time": round(sandbox / max(generation + sandbox, 1e-9), 4),
        },
        metrics={
            **{f"funnel.{r['stage']}": r["rows"] for r in rows},
            "responses.pass_rate": pass_rate,
            "responses.generation_seconds": generation,
            "responses.sandbox_seconds": sandbox,
        },
        artifacts={"self_align/funnel.json": {"funnel": rows, "rejected_by_reason": reasons, "facts": facts}},
        lines=["funnel: " + " -> ".join(f"{r['stage']} {r['rows']}" for r in rows)],
    )


RESPONSES = Stage(
    name=RESPONSES_STAGE,
    description=(
        "Self-OSS-Instruct step 2: per instruction, `self_align.responses.samples` responses, each "
        "with its own tests, run in the sandbox (namespaces, rlimits, wall-clock kill of the whole "
        "process tree). Failing, hanging, test-less and unparseable responses are reject rows with "
        "reasons; of the passing ones one per instruction is kept, chosen by a seeded hash. Carries "
        "the funnel seeds -> instructions -> responses -> passed -> kept (also an MLflow artifact)."
    ),
    run=_responses,
    upstream=(INSTRUCTIONS_STAGE,),
    section="self_align",
    config=SelfAlignConfig,
    params=lambda run: {
        "responses.samples": run.config.responses.samples,
        "responses.temperature": run.config.responses.temperature,
        "responses.timeout_s": run.config.responses.timeout_s,
    },
    report=_responses_report,
    group=GROUP_INSTRUCT,
    kinds=frozenset({"python", "parquet"}),
    required_columns={
        "doc_id": "VARCHAR",
        "instruction": "VARCHAR",
        "response": "VARCHAR",
        "tests": "VARCHAR",
    },
    expectations=False,
)

INSTRUCT_STAGES = (SEED_FUNCTIONS_STAGE, INSTRUCTIONS, RESPONSES)

# --------------------------------------------------------------------------------------------------
# `codecook self-align --input SEEDS --output DIR [--config FILE]`

SELF_ALIGN_COMMAND = Command(
    name="self-align",
    help="Seed functions (JSONL/Parquet rows with `content`, or a seed_functions folder) to "
    "execution-verified instruction pairs (DIR/data/instructions, responses; DIR/pairs.jsonl).",
    stages=(INSTRUCTIONS, RESPONSES),
)


def export_pairs(root: str | Path) -> tuple[Path, int]:
    """DIR/pairs.jsonl: the kept responses as `instruction` / `response` / `tests` lines (and `id`),
    written atomically from DIR/data/responses."""
    import pyarrow.parquet as pq

    from contracts.storage import atomic_write
    from quality.storage import StorageLayout, read_manifest
    from training.instruct.self_align import pairs_jsonl_rows

    paths = StorageLayout(str(root)).stage(RESPONSES_STAGE)
    read_manifest(paths)
    rows: list[dict[str, Any]] = []
    for part in sorted(Path(paths.data_dir).glob("*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    target = Path(root) / "pairs.jsonl"
    with atomic_write(str(target), "w") as handle:
        for row in pairs_jsonl_rows(rows):
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return target, len(rows)


def self_align_command(args: argparse.Namespace) -> int:
    """`codecook self-align`: the instructions and responses stages on --input, then pairs.jsonl."""
    status = run_command(SELF_ALIGN_COMMAND, args)
    if status == 0:
        root = args.output if "://" in args.output else str(Path(args.output).resolve())
        target, count = export_pairs(root)
        print(f"pairs:    {target} ({count} execution-verified pairs)")
    return status
