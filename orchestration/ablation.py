"""`codecook ablate`: run variants of a recipe end to end and say which makes the better model.

    codecook ablate --recipe A.yaml --recipe B.yaml [--recipe C.yaml ...] --out DIR

The first recipe is the baseline; the others are usually `extends:` of it with one change. In DIR:

    recipes/<variant>--seed<S>.yaml   what each run materializes: the variant, one training seed,
                                      the held-out fraction, the shared MLflow store and experiment
    runs/<variant>/seed<S>/           each run's own storage root (data, rejected rows, Dagster)
    stages/                           the stage store: outputs keyed by settings + input checksums,
                                      shared by the runs (`contracts.reuse`), so a stage a variant
                                      does not change is computed once
    eval_set.parquet                  the evaluation documents, the same for every variant
    mlflow.db, mlflow-artifacts/      one experiment: a parent run for the ablation, a child run per
                                      variant, the training runs of its seeds below it
    comparison.json, comparison.png   per variant and metric: mean with CI, seed spread; each variant
                                      minus the baseline: paired difference, CI, `significant`

Phases, so that the evaluation set is fixed before any model trains: (1) every variant's data
stages, tokenizer and shards, in its first seed's run (they are seed-independent); (2) the
evaluation set from the baseline's `ablation.eval_stage`: documents held out of every variant's
shards by doc_id (`tokenizer.holdout_fraction`), minus any whose content reaches a variant's
training input under another doc_id; (3) per variant and seed, training and the proxy metrics on
the evaluation set; a later seed's run takes the data stages from the store in the same process
that trains it (`data+train`: one process, Dagster and Spark start less per seed); (4) the
comparison.

A variant that fails is marked failed in comparison.json with its error; the others go on. Each
run is a `python -m orchestration.ablation run ...` subprocess with its own Dagster instance.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from contracts.config import settings_of
from contracts.recipe import AblationConfig, Recipe, RecipeError, load_recipe
from contracts.storage import StorageLayout, atomic_write, write_json_atomic

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The asset of phase 3; everything upstream of it is phase 1.
TRAIN_ASSETS = ("checkpoint",)


class AblationError(RuntimeError):
    """An ablation that cannot start as asked; the message says why."""


@dataclass(frozen=True)
class Variant:
    """One recipe of the ablation."""

    name: str
    recipe: Recipe

    def run_name(self, seed: int) -> str:
        return f"{self.name}--seed{seed}"


@dataclass(frozen=True)
class Plan:
    out: Path
    variants: tuple[Variant, ...]
    config: AblationConfig
    experiment: str
    reuse: bool = True
    """Share unchanged stages through the stage store (off only to measure what reuse saves)."""

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.out / 'mlflow.db'}"

    def root(self, variant: Variant, seed: int) -> Path:
        return self.out / "runs" / variant.name / f"seed{seed}"

    def recipe_file(self, variant: Variant, seed: int) -> Path:
        return self.out / "recipes" / f"{variant.run_name(seed)}.yaml"


def plan_ablation(recipe_paths: list[str], out: str, *, reuse: bool = True) -> Plan:
    """Load and check every variant before any work: bad recipes, duplicates, disagreeing protocols."""
    if len(recipe_paths) < 2:
        raise AblationError("an ablation compares at least two recipes (--recipe A.yaml --recipe B.yaml)")
    problems: list[str] = []
    variants: list[Variant] = []
    for path in recipe_paths:
        try:
            recipe = load_recipe(path)
        except RecipeError as error:
            problems.append(str(error))
            continue
        variants.append(Variant(name=recipe.name, recipe=recipe))
    if problems:
        raise AblationError("\n".join(problems))
    seen: dict[str, Variant] = {}
    for variant in variants:
        if variant.name in seen:
            problems.append(
                f"two variants are named {variant.name!r} ({seen[variant.name].recipe.path} and "
                f"{variant.recipe.path}); give each a distinct `name:`"
            )
        seen[variant.name] = variant
        if not variant.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            problems.append(f"variant name {variant.name!r}: letters, digits, '-', '_' and '.' only")
    by_hash: dict[str, Variant] = {}
    for variant in variants:
        twin = by_hash.get(variant.recipe.hash)
        if twin is not None:
            problems.append(
                f"variants {twin.name!r} and {variant.name!r} have identical effective settings "
                f"(recipe hash {variant.recipe.hash}): the second would measure nothing"
            )
        by_hash[variant.recipe.hash] = variant
    protocol = settings_of(variants[0].recipe.section("ablation"))
    for variant in variants[1:]:
        if settings_of(variant.recipe.section("ablation")) != protocol:
            problems.append(
                f"variant {variant.name!r} changes the `ablation` section; every variant must be "
                "measured the same way (change it in the baseline instead)"
            )
    if problems:
        raise AblationError("\n".join(problems))
    out_path = Path(out).resolve()
    return Plan(
        out=out_path,
        variants=tuple(variants),
        config=variants[0].recipe.section("ablation"),
        experiment=f"codecook-ablation-{out_path.name}",
        reuse=reuse,
    )


def write_run_recipes(plan: Plan) -> None:
    """One recipe file per variant and seed: the variant plus what the protocol fixes."""
    folder = plan.out / "recipes"
    folder.mkdir(parents=True, exist_ok=True)
    for variant in plan.variants:
        for seed in plan.config.seeds:
            document = {
                "extends": str(variant.recipe.path),
                "name": variant.name,
                "training.seed": seed,
                # Held-out documents never reach a shard: the evaluation set is drawn from them.
                "tokenizer.holdout_fraction": plan.config.holdout_fraction,
                "mlflow.tracking_uri": plan.tracking_uri,
                "mlflow.experiment": plan.experiment,
            }
            path = plan.recipe_file(variant, seed)
            path.write_text(
                "# Written by codecook ablate: one variant, one training seed.\n"
                + yaml.safe_dump(document, sort_keys=False),
                encoding="utf-8",
            )
            load_recipe(path)  # the written file must load like any recipe


# ------------------------------------------------------------------------------------------------
# One run: a subprocess with its own Dagster instance


def read_by(targets, candidates, graph, recipe: Recipe) -> set:
    """The assets among `candidates` that `targets` read, transitively. A declared stage with
    `Stage.reads` leads only to the upstream stages its config reads (code_mix: no source of share
    0), any other asset to all its parents; so a branch nothing reads is not run."""
    import dagster as dg

    from orchestration.stages import CODE_STAGES

    declared = {stage.name: stage for stage in CODE_STAGES if stage.reads is not None}
    needed: set = set()
    frontier = list(targets)
    while frontier:
        key = frontier.pop()
        stage = declared.get(key.to_user_string())
        if stage is not None:
            parents = {
                dg.AssetKey(name) for name in stage.inputs(recipe.section(stage.section, stage.config))
            }
        else:
            parents = dg.AssetSelection.assets(key).upstream(depth=1, include_self=False).resolve(graph)
        for parent in (parents & candidates) - needed:
            needed.add(parent)
            frontier.append(parent)
    return needed


def phase_selection(graph, recipe: Recipe, phase: str) -> set:
    """The assets one phase of a run materializes (`data`: what the training assets read, `train`:
    them and the pass@k evaluations, `data+train`: both in one Dagster run)."""
    import dagster as dg

    train = {dg.AssetKey(name) for name in TRAIN_ASSETS}
    if phase == "train":
        return train | {dg.AssetKey(f"eval_{name}") for name in recipe.section("ablation").passk}
    if phase == "data+train":
        return phase_selection(graph, recipe, "data") | phase_selection(graph, recipe, "train")
    if phase != "data":
        raise AblationError(f"unknown phase {phase!r}")
    upstream = dg.AssetSelection.assets(*train).upstream(include_self=False).resolve(graph)
    tokenizer = recipe.section("tokenizer")
    # The web recall branch runs only when the shards cannot do without it.
    web_pages = dg.AssetKey("code_web_pages")
    web_branch = (
        dg.AssetSelection.assets(web_pages).upstream().resolve(graph) if web_pages in upstream else set()
    )
    needs_web = "code_web_pages" in set(tokenizer.inputs) - set(tokenizer.optional_inputs)
    return read_by(train, upstream if needs_web else upstream - web_branch, graph, recipe)


def materialize(recipe_file: str, home: str, phase: str) -> int:
    """Materialize one phase of one run in this process (the `run` subcommand)."""
    import dagster as dg

    os.environ["CODECOOK_RECIPE"] = recipe_file
    os.environ["CODECOOK_HOME"] = home
    from orchestration.resources import ensure_dagster_home

    ensure_dagster_home(StorageLayout(home))
    from orchestration.definitions import defs

    job = defs.resolve_job_def("demo")
    selection = phase_selection(defs.resolve_asset_graph(), load_recipe(recipe_file), phase)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, asset_selection=sorted(selection, key=str), raise_on_error=False
        )
    failed = [event.step_key for event in result.all_events if event.is_step_failure]
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)
    return 0 if result.success else 1


def run_phase(plan: Plan, variant: Variant, seed: int, phase: str, log: Path, parent_run: str | None) -> None:
    """One run's phase as a subprocess; raises with the log's tail when it fails."""
    root = plan.root(variant, seed)
    root.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if k != "CODECOOK_STAGE_STORE"},
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    }
    if plan.reuse:
        env["CODECOOK_STAGE_STORE"] = str(plan.out / "stages")
    if parent_run:
        env["CODECOOK_MLFLOW_PARENT_RUN"] = parent_run
    command = [
        sys.executable, "-m", "orchestration.ablation", "run",
        "--recipe", str(plan.recipe_file(variant, seed)), "--home", str(root), "--phase", phase,
    ]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"\n== {variant.run_name(seed)}: phase {phase}\n")
        handle.flush()
        code = subprocess.run(
            command, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False
        ).returncode
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise RuntimeError(
            f"{variant.run_name(seed)} phase {phase} exited {code}; log {log}:\n" + "\n".join(tail)
        )


# ------------------------------------------------------------------------------------------------
# The evaluation set


def _read_stage(root: Path, stage: str, columns: list[str]) -> list[dict[str, Any]]:
    import duckdb

    paths = StorageLayout(str(root)).stage(stage)
    if not Path(paths.manifest_path).exists():
        raise AblationError(f"{root}: stage {stage} has no output (no manifest)")
    with duckdb.connect() as connection:
        available = {
            row[0]
            for row in connection.execute(
                "DESCRIBE SELECT * FROM read_parquet(?)", [f"{paths.data_dir}/*.parquet"]
            ).fetchall()
        }
        chosen = [c for c in columns if c in available]
        relation = connection.execute(
            f"SELECT {', '.join(chosen)} FROM read_parquet(?) ORDER BY doc_id",
            [f"{paths.data_dir}/*.parquet"],
        )
        names = [d[0] for d in relation.description]
        return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters, ending at a line break when there is one to end at."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    return head[: head.rfind("\n") + 1] or head


def build_eval_set(plan: Plan) -> dict[str, Any]:
    """The evaluation documents, the same for every variant; writes eval_set.jsonl and its facts."""
    from training.evaluation.fim import holdout_score

    config = plan.config
    baseline = plan.variants[0]
    rows = _read_stage(
        plan.root(baseline, config.seeds[0]),
        config.eval_stage,
        ["doc_id", "content", "path", "lang", "sha256"],
    )
    languages = {lang.lower() for lang in config.languages}
    held = [
        row
        for row in rows
        if holdout_score(row["doc_id"]) < config.holdout_fraction
        and (not languages or str(row.get("lang") or "").lower() in languages)
        and str(row.get("content") or "").strip()
    ]
    # Decontamination against every variant's training input: a held-out document whose content
    # reaches a variant's shards under another doc_id (a copy at another path) is dropped.
    contaminated: dict[str, int] = {}
    training_hashes: set[str] = set()
    for variant in plan.variants:
        tokenizer = variant.recipe.section("tokenizer")
        root = plan.root(variant, config.seeds[0])
        found = 0
        for stage in dict.fromkeys(tokenizer.inputs):
            if not Path(StorageLayout(str(root)).stage(stage).manifest_path).exists():
                continue
            for row in _read_stage(root, stage, ["doc_id", "sha256"]):
                if holdout_score(row["doc_id"]) >= config.holdout_fraction and row.get("sha256"):
                    if row["sha256"] not in training_hashes:
                        training_hashes.add(row["sha256"])
                        found += 1
        contaminated[variant.name] = found
    clean = [row for row in held if row.get("sha256") not in training_hashes]
    clean.sort(key=lambda row: holdout_score(row["doc_id"]))
    chosen = clean[: config.max_eval_docs]
    documents = [
        {
            "doc_id": row["doc_id"],
            "path": row.get("path") or "",
            "lang": row.get("lang") or "",
            "content": _cut(row["content"], config.max_doc_chars),
        }
        for row in sorted(chosen, key=lambda row: row["doc_id"])
    ]
    with atomic_write(plan.out / "eval_set.jsonl", "w") as handle:
        for document in documents:
            handle.write(json.dumps(document, ensure_ascii=False) + "\n")
    facts = {
        "source": f"{baseline.name}:{config.eval_stage}",
        "held_out_candidates": len(held),
        "dropped_as_training_copies": len(held) - len(clean),
        "documents": len(documents),
        "characters": sum(len(d["content"]) for d in documents),
        "rule": (
            f"doc_id hash < {config.holdout_fraction} (never tokenized by any variant), "
            f"lang in {sorted(languages) or 'any'}, content not equal (sha256) to any variant's "
            f"training document, first {config.max_eval_docs} by hash, cut to {config.max_doc_chars} chars"
        ),
    }
    write_json_atomic(str(plan.out / "eval_set.json"), facts)
    return {"facts": facts, "documents": documents}


# ------------------------------------------------------------------------------------------------
# Scoring, comparing, reporting


PROXY_METRICS = {
    # metric -> (rows, column, item key, weight column): bits per byte pools bits over bytes, so a
    # long file weighs by its length; a FIM example is one masked line, each weighing the same.
    "bits_per_byte": ("documents", "bits_per_byte", "doc_id", "bytes"),
    "fim_exact_match": ("fim", "exact_match", "item_id", None),
    "fim_edit_similarity": ("fim", "edit_similarity", "item_id", None),
}


def proxy_metrics(plan: Plan) -> dict[str, tuple[str, str, str, str | None]]:
    """PROXY_METRICS plus the per-task pass@1 of the protocol's benchmarks."""
    extra = {f"{b}_pass_at_1": (f"eval_{b}", "pass_at_1", "task_id", None) for b in plan.config.passk}
    return {**PROXY_METRICS, **extra}


def pass_at_1_by_task(root: Path, stage: str) -> list[dict[str, Any]]:
    """One row per task of an eval asset's results: the share of its samples that passed."""
    import duckdb

    results = f"{StorageLayout(str(root)).stage(stage).data_dir}/results.parquet"
    with duckdb.connect() as connection:
        found = connection.execute(
            "SELECT task_id, avg(passed::INT) FROM read_parquet(?) GROUP BY task_id ORDER BY task_id",
            [results],
        ).fetchall()
    return [{"task_id": task, "pass_at_1": float(rate)} for task, rate in found]


def score_run(plan: Plan, variant: Variant, seed: int, documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Proxy metrics of one trained run on the evaluation set, per document and per FIM example.

    The rows are written beside the run (`proxy_eval.json`); their means go to the run's MLflow run.
    """
    import mlflow

    from training.evaluation.config import FimEvalConfig
    from training.evaluation.generation import HFBackend
    from training.evaluation.heldout import document_bits, fim_rows

    root = plan.root(variant, seed)
    manifest = json.loads(Path(StorageLayout(str(root)).stage("checkpoint").manifest_path).read_text())
    seq_len = variant.recipe.section("tokenizer").seq_len
    backend = HFBackend(manifest["hf_model_dir"], device="cpu", cpu_threads=1)
    rows = {
        "documents": document_bits(backend, documents, context_length=seq_len),
        "fim": fim_rows(
            backend,
            documents,
            FimEvalConfig(
                max_examples=len(documents), max_new_tokens=16, max_context_chars=400, languages=()
            ),
            context_length=seq_len,
        ),
    }
    for benchmark in plan.config.passk:
        rows[f"eval_{benchmark}"] = pass_at_1_by_task(root, f"eval_{benchmark}")
    means = {}
    for metric, (table, column, _, weight) in proxy_metrics(plan).items():
        weights = [float(r[weight]) if weight else 1.0 for r in rows[table]]
        total = sum(weights) or 1.0
        means[f"proxy.{metric}"] = (
            sum(float(r[column]) * w for r, w in zip(rows[table], weights, strict=True)) / total
        )
    write_json_atomic(str(root / "proxy_eval.json"), {"means": means, **rows})
    with mlflow.start_run(run_id=manifest["mlflow_run_id"]):
        mlflow.log_metrics(means)
    return {"manifest": manifest, "rows": rows, "means": means}


def funnel(root: Path) -> dict[str, dict[str, int]]:
    """rows in / kept / rejected of every stage of one run, from its manifests."""
    return {
        m["stage"]: {k: m[k] for k in ("rows_in", "rows_out", "rows_rejected") if k in m}
        for m in StorageLayout(str(root)).manifests()
    }


def ablate(plan: Plan, log=print) -> dict[str, Any]:
    """Run every phase; returns the comparison (also written to DIR/comparison.json)."""
    import mlflow

    from training.evaluation.ablation_stats import summarize

    plan.out.mkdir(parents=True, exist_ok=True)
    lock = (plan.out / ".lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise AblationError(f"another ablation is running in {plan.out}") from None
    write_run_recipes(plan)
    logs = plan.out / "logs"
    mlflow.set_tracking_uri(plan.tracking_uri)
    experiment = mlflow.get_experiment_by_name(plan.experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else mlflow.create_experiment(
            plan.experiment, artifact_location=(plan.out / "mlflow-artifacts").as_uri()
        )
    )
    client = mlflow.MlflowClient(plan.tracking_uri)
    parent = client.create_run(
        experiment_id, run_name=f"ablation {plan.out.name}", tags={"codecook.ablation": "parent"}
    )
    children = {
        v.name: client.create_run(
            experiment_id,
            run_name=v.name,
            tags={
                "mlflow.parentRunId": parent.info.run_id,
                "codecook.ablation": "variant",
                "codecook.recipe_hash": v.recipe.hash,
            },
        ).info.run_id
        for v in plan.variants
    }
    status: dict[str, dict[str, Any]] = {v.name: {"status": "running"} for v in plan.variants}
    started = time.monotonic()
    timings: dict[str, float] = {}

    def fail(variant: Variant, error: Exception) -> None:
        status[variant.name] = {"status": "failed", "error": str(error)}
        log(f"variant {variant.name} FAILED: {error}")

    # Phase 1: data, tokenizer and shards once per variant, in its first seed's run; the other
    # seeds' runs take them from the store when they train (phase 3).
    first_seed = plan.config.seeds[0]
    for variant in plan.variants:
        clock = time.monotonic()
        try:
            run_phase(plan, variant, first_seed, "data", logs / f"{variant.name}.log", children[variant.name])
        except RuntimeError as error:
            fail(variant, error)
            if variant is plan.variants[0]:
                # Nothing can be compared without the baseline: stop before spending more.
                raise AblationError(f"the baseline {variant.name!r} failed: {error}") from None
        timings[f"data {variant.run_name(first_seed)}"] = round(time.monotonic() - clock, 1)
        log(
            f"{variant.run_name(first_seed)}: data stages in {timings[f'data {variant.run_name(first_seed)}']}s"
        )
    # Phase 2: the evaluation set (needs the baseline).
    if status[plan.variants[0].name]["status"] == "failed":
        raise AblationError(
            f"the baseline {plan.variants[0].name!r} failed: {status[plan.variants[0].name]['error']}"
        )
    evaluation = build_eval_set(plan)
    log(f"evaluation set: {evaluation['facts']['documents']} documents ({evaluation['facts']['rule']})")
    # Phase 3: train every seed, score it.
    per_variant: dict[str, dict[str, Any]] = {}
    for variant in plan.variants:
        if status[variant.name]["status"] == "failed":
            continue
        runs = []
        try:
            for seed in plan.config.seeds:
                clock = time.monotonic()
                phase = "train" if seed == first_seed else "data+train"
                run_phase(plan, variant, seed, phase, logs / f"{variant.name}.log", children[variant.name])
                scored = score_run(plan, variant, seed, evaluation["documents"])
                timings[f"train+score {variant.run_name(seed)}"] = round(time.monotonic() - clock, 1)
                runs.append({"seed": seed, **scored})
                log(
                    f"{variant.run_name(seed)}: trained and scored in {timings[f'train+score {variant.run_name(seed)}']}s"
                )
        except (RuntimeError, FileNotFoundError, KeyError) as error:
            fail(variant, error)
            continue
        per_variant[variant.name] = {"runs": runs}
        status[variant.name] = {"status": "finished"}
    # Phase 4: the comparison over the variants that finished (the baseline among them).
    finished = [v for v in plan.variants if status[v.name]["status"] == "finished"]
    if plan.variants[0] not in finished:
        raise AblationError(
            f"the baseline {plan.variants[0].name!r} failed: {status[plan.variants[0].name]['error']}"
        )
    from training.evaluation.ablation_stats import metric_matrix

    measurements = {
        v.name: {
            metric: metric_matrix(
                [run["rows"][table] for run in per_variant[v.name]["runs"]],
                column,
                item=item,
                seeds=[run["seed"] for run in per_variant[v.name]["runs"]],
                weight=weight,
            )
            for metric, (table, column, item, weight) in proxy_metrics(plan).items()
        }
        for v in finished
    }
    summary = summarize(
        measurements, confidence=plan.config.confidence, resamples=plan.config.bootstrap_samples, seed=0
    )
    comparison = {
        "ablation": plan.out.name,
        "baseline": plan.variants[0].name,
        "protocol": settings_of(plan.config),
        "evaluation_set": evaluation["facts"],
        "statistics": {
            k: summary[k]
            for k in ("confidence", "resamples", "interval", "method", "metrics")
            if k in summary
        },
        "verdicts": summary.get("verdicts", []),
        "variants": [
            {
                "name": v.name,
                "recipe": str(v.recipe.path),
                "recipe_hash": v.recipe.hash,
                **status[v.name],
                **(
                    {
                        "funnel": funnel(plan.root(v, plan.config.seeds[0])),
                        "tokens_trained": [
                            run["manifest"].get("tokens") for run in per_variant[v.name]["runs"]
                        ],
                        "final_loss": [
                            run["manifest"].get("final_loss") for run in per_variant[v.name]["runs"]
                        ],
                        "mlflow_runs": [
                            run["manifest"].get("mlflow_run_id") for run in per_variant[v.name]["runs"]
                        ],
                        "metrics": summary["variants"][v.name],
                        "seed_means": {run["seed"]: run["means"] for run in per_variant[v.name]["runs"]},
                        "difference_vs_baseline": summary["differences"].get(v.name),
                    }
                    if v in finished
                    else {}
                ),
            }
            for v in plan.variants
        ],
        "stage_reuse": plan.reuse,
        "wall_seconds": round(time.monotonic() - started, 1),
        "timings": timings,
    }
    path = write_comparison(plan, comparison)
    plot = plot_comparison(comparison, plan.out / "comparison.png")
    log_to_mlflow(client, parent.info.run_id, children, comparison, [path, plot])
    return comparison


def plot_comparison(comparison: dict[str, Any], path: Path) -> Path:
    """Per metric: each variant's difference from the baseline with its interval (0 = no change)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [v for v in comparison["variants"] if v.get("difference_vs_baseline")]
    metrics = list(comparison.get("statistics", {}).get("metrics") or PROXY_METRICS)
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.6 + 0.55 * max(len(rows), 1)))
    for axis, metric in zip(axes, metrics, strict=True):
        for index, variant in enumerate(rows):
            found = variant["difference_vs_baseline"].get(metric) or {}
            if not found.get("ci"):
                continue
            low, high = found["ci"]
            colour = (
                "tab:green"
                if found.get("winner") == variant["name"] and found.get("significant")
                else ("tab:red" if found.get("significant") else "tab:grey")
            )
            axis.errorbar(
                found["difference"], index, xerr=[[found["difference"] - low], [high - found["difference"]]],
                fmt="o", color=colour, capsize=3,
            )  # fmt: skip
        if not any((v["difference_vs_baseline"].get(metric) or {}).get("ci") for v in rows):
            axis.text(
                0.5, 0.5, "not measurable (all zero)", ha="center", va="center", transform=axis.transAxes
            )
        axis.axvline(0.0, color="black", linewidth=0.8)
        axis.set_yticks(range(len(rows)), [v["name"] for v in rows])
        better = comparison.get("statistics", {}).get("metrics", {}).get(metric, {}).get("better", "")
        axis.set_title(f"{metric}\n(variant - {comparison['baseline']}; {better} is better)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def log_to_mlflow(
    client, parent: str, children: dict[str, str], comparison: dict[str, Any], files: list[Path]
) -> None:
    """The comparison on the parent run; each variant's metrics and differences on its child run."""
    for path in files:
        client.log_artifact(parent, str(path))
    client.log_param(parent, "baseline", comparison["baseline"])
    client.log_param(parent, "variants", ",".join(v["name"] for v in comparison["variants"]))
    client.log_metric(parent, "wall_seconds", float(comparison["wall_seconds"]))
    for variant in comparison["variants"]:
        run = children[variant["name"]]
        client.log_param(run, "recipe", variant["recipe"])
        client.log_param(run, "recipe_hash", variant["recipe_hash"])
        client.set_tag(run, "codecook.status", variant["status"])
        for metric, values in (variant.get("metrics") or {}).items():
            client.log_metric(run, f"proxy.{metric}", float(values["mean"]))
            if values.get("ci"):
                client.log_metric(run, f"proxy.{metric}.ci_low", float(values["ci"][0]))
                client.log_metric(run, f"proxy.{metric}.ci_high", float(values["ci"][1]))
            if values.get("seed_std") is not None:
                client.log_metric(run, f"proxy.{metric}.seed_std", float(values["seed_std"]))
        for metric, diff in (variant.get("difference_vs_baseline") or {}).items():
            if diff.get("difference") is not None:
                client.log_metric(run, f"diff.{metric}", float(diff["difference"]))
                client.log_metric(run, f"diff.{metric}.significant", float(bool(diff.get("significant"))))
        client.set_terminated(run, "FINISHED" if variant["status"] == "finished" else "FAILED")
    client.set_terminated(parent, "FINISHED")


def write_comparison(plan: Plan, payload: dict[str, Any]) -> Path:
    path = plan.out / "comparison.json"
    write_json_atomic(str(path), json.loads(json.dumps(payload, default=str)))
    return path


def ablate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recipe",
        action="append",
        required=True,
        help="A variant's recipe (repeat; the first is the baseline).",
    )
    parser.add_argument(
        "--out", required=True, help="Folder of the ablation (runs, stage store, comparison)."
    )


def ablate_command(args: argparse.Namespace) -> int:
    """`codecook ablate`: exit 2 on a bad plan (nothing ran), 1 when a variant failed, else 0."""
    try:
        plan = plan_ablation(args.recipe, args.out)
    except AblationError as error:
        print(f"codecook ablate: {error}", file=sys.stderr)
        return 2
    print(f"ablation of {len(plan.variants)} variants x {len(plan.config.seeds)} seeds into {plan.out}")
    try:
        comparison = ablate(plan)
    except AblationError as error:
        print(f"codecook ablate: {error}", file=sys.stderr)
        return 1
    print(
        f"\n{len(comparison['variants'])} variants in {comparison['wall_seconds']:.0f}s; baseline {comparison['baseline']}"
    )
    for line in comparison["verdicts"]:
        print(f"  {line}")
    for variant in comparison["variants"]:
        if variant["status"] != "finished":
            print(f"  {variant['name']}: {variant['status']}: {variant.get('error', '')}")
    print(f"comparison: {plan.out / 'comparison.json'}\nplot:       {plan.out / 'comparison.png'}")
    print(f"MLflow:     {plan.tracking_uri} (experiment {plan.experiment})")
    return 0 if all(v["status"] == "finished" for v in comparison["variants"]) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.ablation")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="Materialize one phase of one variant run (used by codecook ablate).")
    run.add_argument("--recipe", required=True)
    run.add_argument("--home", required=True)
    run.add_argument("--phase", choices=["data", "train", "data+train"], required=True)
    args = parser.parse_args(argv)
    started = time.monotonic()
    code = materialize(args.recipe, args.home, args.phase)
    print(f"phase {args.phase} finished with {code} in {time.monotonic() - started:.0f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
