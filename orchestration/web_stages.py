"""The web stages, each declared once (see `orchestration.stage`).

    web_pages -> recall_round_1 -> ... -> recall_round_N -> code_web_pages

The work lives in `quality.web` (HTML to documents), `quality.recall` (the rounds, the final
cleaning) and `quality.webpool` (the pool and the recipe's `web` section). `web_pages` has a
command twin, `codecook ingest-web` (registered in `orchestration.stages.COMMANDS`); the rounds
and `code_web_pages` are assets only (`assets/web.py`, which reads N from the recipe). Dagster-free.
"""

from __future__ import annotations

import argparse
from typing import Any

from orchestration.stage import (
    GROUP_WEB,
    Check,
    CheckRun,
    Json,
    Outcome,
    Plot,
    Report,
    Stage,
    StageRun,
    Table,
)
from quality.webpool import WebConfig

WEB_PAGES = "web_pages"
CODE_WEB_PAGES = "code_web_pages"


def round_stage(number: int) -> str:
    return f"recall_round_{number}"


def recall_workdir(layout) -> str:
    """Round artifacts (models, seeds, domain tables) beside the stage outputs."""
    return f"{layout.data_root}/web_recall"


# --------------------------------------------------------------------------------------------------
# web_pages


def web_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="Input name recorded in `web_input` (default: the input's base name).")
    parser.add_argument(
        "--url-base",
        help="Folder of .html pages: the public URL of the folder (a page's URL is this + its path); "
        "without it the page's canonical link is used, else a file:// URL.",
    )
    parser.add_argument(
        "--installed-docs",
        action="store_true",
        help="Also read the documentation sites installed on this machine (quality.webpool.DOC_SITES).",
    )
    parser.add_argument(
        "--max-pages-per-site", type=int, help="With --installed-docs: a hash sample per site."
    )


def check_web_input(path: str) -> None:
    from quality.web import detect_input

    detect_input(path)


def _web_inputs(run: StageRun) -> tuple[Any, ...]:
    """The recipe's web inputs (Dagster), or the command's --input (+ the installed docs)."""
    if run.recipe is not None:
        return tuple(run.config.resolved_inputs())
    from quality.web import detect_input
    from quality.webpool import installed_doc_inputs

    options = run.options
    inputs = [detect_input(options["input"], options.get("name"), options.get("url_base"))]
    if options.get("installed_docs"):
        inputs += installed_doc_inputs(options.get("max_pages_per_site"))
    return tuple(inputs)


def _web_ingest(run: StageRun) -> Outcome:
    from quality.web import ingest_web

    inputs = _web_inputs(run)
    result = ingest_web(run.spark, inputs, run.config.ingest)
    return Outcome(
        result.kept,
        result.rejected,
        rows_in=result.rows_in,
        manifest={
            "rows_in_by_input": result.rows_in_by_input,
            "files_by_input": result.files_by_input,
            "inputs": [{"name": i.name, "kind": i.kind, "path": i.path} for i in inputs],
        },
        release=result.release,
        result=result,
    )


def query_rows(connection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """A DuckDB query's rows as dicts (whole numbers as ints, except a `share` column)."""
    cursor = connection.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [
        {
            n: (int(v) if isinstance(v, int | float) and n != "share" else v)
            for n, v in zip(names, row, strict=True)
        }
        for row in cursor.fetchall()
    ]


def _web_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    parts = [f"{run.paths.data_dir}/*.parquet"]
    with run.connect() as connection:
        domains = query_rows(
            connection,
            "SELECT domain, count(*) AS pages, count(*) FILTER (WHERE label = 'code') AS code, "
            "count(*) FILTER (WHERE label = 'other') AS other, count(*) FILTER (WHERE label IS NULL) AS unlabelled, "
            "sum(code_blocks) AS code_blocks FROM read_parquet(?) GROUP BY domain ORDER BY pages DESC, domain",
            parts,
        )
        languages = query_rows(
            connection,
            "SELECT page_lang, count(*) AS pages FROM read_parquet(?) GROUP BY page_lang "
            "ORDER BY pages DESC, page_lang LIMIT 30",
            parts,
        )
    ingest, by_input = run.config.ingest, outcome.result.rows_in_by_input
    return Report(
        metadata={
            "rows_in_by_input": Json(by_input),
            "domains": Table(domains),
            "page_languages": Table(languages),
            "label_rule": (
                f"code: >= {ingest.label_min_code_blocks} fenced code blocks holding >= "
                f"{ingest.label_min_code_share:.0%} of the main text; other: no code block; else unlabelled"
            ),
        },
        artifacts={"web_pages/domains.json": {"domains": domains, "languages": languages}},
        lines=[f"{name}: {rows} units" for name, rows in by_input.items()],
    )


WEB_PAGES_STAGE = Stage(
    name=WEB_PAGES,
    description=(
        "The web pool as document rows: HTML pages from the documentation installed on this machine "
        "(each under its public URL), from the recipe's folders, JSONL and WARC inputs, or from the "
        "committed sample. Main text extracted with trafilatura (navigation dropped, code blocks kept as "
        "fenced blocks); url, domain, page language, code-block counts and the measurement label kept. "
        "Pages that cannot be used are rejected with a reason into data/rejected/web_pages."
    ),
    run=_web_ingest,
    section="web",
    config=WebConfig,
    params=lambda run: {"web_inputs": ",".join(i.name for i in _web_inputs(run))},
    report=_web_report,
    group=GROUP_WEB,
)


# --------------------------------------------------------------------------------------------------
# recall_round_N


def score_figure(histogram: list[dict[str, Any]], threshold: float, round_number: int):
    """Stacked histogram of P(code) per label class, with the threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.6))
    lows = [b["low"] for b in histogram]
    width = (histogram[0]["high"] - histogram[0]["low"]) if histogram else 0.05
    bottom = [0] * len(histogram)
    for label, colour in (("code", "#2b8a3e"), ("other", "#c92a2a"), ("unlabelled", "#adb5bd")):
        values = [b[label] for b in histogram]
        axis.bar(lows, values, width=width, bottom=bottom, align="edge", color=colour, label=label)
        bottom = [a + v for a, v in zip(bottom, values, strict=True)]
    axis.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    axis.set_xlabel("P(code) from the round's fastText classifier")
    axis.set_ylabel("pages")
    axis.set_title(f"recall round {round_number}: score distribution by measurement label")
    axis.legend(fontsize=8)
    return figure


def rounds_figure(history: list[dict[str, Any]]):
    """Held-out precision and recall, and new code-related domains, across the rounds so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    rounds = [h["round"] for h in history]
    for key, colour in (("precision", "#1c7ed6"), ("recall", "#2b8a3e"), ("f1", "#868e96")):
        left.plot(rounds, [h.get(key) or 0.0 for h in history], marker="o", color=colour, label=key)
    left.set_xticks(rounds)
    left.set_ylim(0, 1.02)
    left.set_xlabel("round")
    left.set_title("held-out labelled pages")
    left.legend(fontsize=8)
    right.bar(rounds, [h.get("new_domains") or 0 for h in history], color="#f08c00", label="new domains")
    right.plot(rounds, [h.get("seeds") or 0 for h in history], marker="s", color="#5f3dc4", label="seeds")
    right.set_xticks(rounds)
    right.set_xlabel("round")
    right.set_title("growth")
    right.legend(fontsize=8)
    figure.tight_layout()
    return figure


def round_history(workdir: str, number: int, current: dict[str, Any]) -> list[dict[str, Any]]:
    """Metrics of rounds 1..number-1 (from their state files) and of this round."""
    from quality.recall import read_round_state

    keys = ("round", "precision", "recall", "f1", "new_domains", "seeds", "pages_recalled", "stopped")
    history = [{k: read_round_state(workdir, n)["metrics"].get(k) for k in keys} for n in range(1, number)]
    return [*history, {k: current.get(k) for k in keys}]


def log_history_to_mlflow(history: list[dict[str, Any]]) -> None:
    """The rounds so far as stepped MLflow metrics (`recall.by_round.*`, step = round), so the
    run of round N charts rounds 1..N. Nothing to do outside an MLflow run (as for figures)."""
    import mlflow

    if mlflow.active_run() is None:
        return
    for entry in history:
        for key in ("precision", "recall", "f1", "new_domains", "seeds", "pages_recalled"):
            if entry.get(key) is not None:
                mlflow.log_metric(f"recall.by_round.{key}", float(entry[key]), step=int(entry["round"]))


def log_histogram_to_mlflow(histogram: list[dict[str, Any]]) -> None:
    """This round's score histogram as stepped MLflow metrics (`recall.score_histogram.<label>`,
    step = bin), so MLflow charts it beside the PNG in the asset's metadata."""
    import mlflow

    if mlflow.active_run() is None:
        return
    for entry in histogram:
        for label in ("code", "other", "unlabelled"):
            mlflow.log_metric(f"recall.score_histogram.{label}", float(entry[label]), step=int(entry["bin"]))


def _round_engine(number: int):
    def run(run: StageRun) -> Outcome:
        from quality.recall import run_round

        previous = run.read(round_stage(number - 1)) if number > 1 else None
        result = run_round(
            run.spark,
            run.read(WEB_PAGES),
            round_number=number,
            config=run.config.recall,
            workdir=recall_workdir(run.layout),
            previous_recalled=previous.select("doc_id") if previous is not None else None,
            stage=run.stage.name,
        )
        return Outcome(
            result.kept,
            result.rejected,
            rows_in=result.rows_in,
            manifest={
                "recall": result.metrics,
                "new_domains": result.new_domains,
                "artifacts": result.artifacts,
            },
            release=result.release,
            result=result,
        )

    return run


def _round_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    stage, result, config = run.stage.name, outcome.result, run.config.recall
    number, metrics = int(stage.rsplit("_", 1)[1]), result.metrics
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and v is not None}
    history = round_history(recall_workdir(run.layout), number, metrics)
    log_history_to_mlflow(history)
    log_histogram_to_mlflow(result.histogram)
    return Report(
        metadata={
            "pages_recalled": int(metrics["pages_recalled"]),
            "precision": float(metrics["precision"] or 0.0),
            "recall": float(metrics["recall"] or 0.0),
            "f1": float(metrics["f1"] or 0.0),
            "heldout_labelled_pages": int(metrics["heldout_labelled"]),
            "pages_per_second_scored": float(metrics["pages_per_second_scored"] or 0.0),
            "seeds": int(metrics["seeds"]),
            "seeds_added_for_next_round": int(metrics["seeds_added_for_next_round"]),
            "new_domains": Json(result.new_domains),
            "code_domains": Json(result.code_domains),
            "domains": Table(
                result.domains[:25], ["domain", "pages", "recalled", "share", "code_related", "new"]
            ),
            "code_url_patterns": Table([p for p in result.patterns if p["code_pattern"]][:25]),
            "score_histogram": Plot(
                lambda: score_figure(result.histogram, config.threshold, number),
                f"{stage}/score_histogram.png",
            ),
            "round_metrics": Json(metrics),
            "rounds_so_far": Table(history),
            "rounds_plot": Plot(lambda: rounds_figure(history), f"{stage}/rounds.png"),
            "stopped": bool(metrics.get("stopped")),
        },
        metrics={f"recall.{k}": v for k, v in numeric.items()},
        artifacts={
            f"{stage}/domains.json": {"domains": result.domains},
            f"{stage}/patterns.json": {"patterns": result.patterns},
            f"{stage}/score_histogram.json": {"bins": result.histogram},
        },
        lines=[
            f"{metrics['pages_recalled']} of {metrics['pool_pages']} pages recalled; held-out precision "
            f"{metrics['precision']}, recall {metrics['recall']}; new domains {result.new_domains}"
        ],
    )


def recall_round_stage(number: int) -> Stage:
    """Round `number` of the fastText recall over the web pool."""
    stage = round_stage(number)
    return Stage(
        name=stage,
        description=(
            f"Recall round {number}: fastText trained on the driver on "
            + ("the seed URL patterns' pages" if number == 1 else f"round {number - 1}'s grown seeds")
            + " vs random pool pages outside the code URL patterns found so far (mostly prose on a "
            "realistic pool), every pool page scored in Spark, pages over the threshold kept; "
            "domains with >10% of pages recalled are code-related and the high-confidence pages of "
            "their code URL patterns seed the next round, until a round adds no seed and no domain "
            "(the stopping rule). Precision/recall on held-out labelled pages, new domains, score "
            "histogram and the rounds so far (plot, MLflow `recall.by_round.*` by step) in metadata "
            f"and MLflow; pages below the threshold are reject rows `below_threshold` in data/rejected/{stage}."
        ),
        run=_round_engine(number),
        upstream=(WEB_PAGES, *((round_stage(number - 1),) if number > 1 else ())),
        section="web",
        config=WebConfig,
        params=lambda run: {
            "round": number,
            "threshold": run.config.recall.threshold,
            "domain_threshold": run.config.recall.domain_threshold,
            "seed": run.config.recall.seed,
            "seed_url_patterns": ",".join(run.config.recall.seed_url_patterns),
        },
        report=_round_report,
        group=GROUP_WEB,
        kinds=frozenset({"spark", "fasttext", "parquet"}),
    )


# --------------------------------------------------------------------------------------------------
# code_web_pages


def _unique_content(check: CheckRun) -> tuple[bool, dict[str, Any]]:
    pages, distinct = check.connection.execute(
        "SELECT count(*), count(DISTINCT sha256) FROM read_parquet(?)", [f"{check.paths.data_dir}/*.parquet"]
    ).fetchone()
    return int(pages) == int(distinct), {"pages": int(pages), "distinct_sha256": int(distinct)}


def code_web_pages_stage(rounds: int) -> Stage:
    """The last round's pages, deduplicated and judged by the `text` filter profile."""

    def run(run: StageRun) -> Outcome:
        from quality.filters import FilterConfig
        from quality.recall import clean_code_pages

        config = run.config.code_pages
        recipe = run.recipe
        written = recipe is not None and "quality_filter" in recipe.document
        result = clean_code_pages(
            run.input(),
            stage=CODE_WEB_PAGES,
            exact_dedup=config.exact_dedup,
            text_filters=config.text_filters,
            filter_config=recipe.section("quality_filter", FilterConfig) if written else None,
            near_dedup_config=config.near if config.near_dedup else None,
        )
        return Outcome(
            result.kept,
            result.rejected,
            rows_in=result.rows_in,
            manifest={
                "from_round": rounds,
                "exact_duplicates": result.duplicates,
                "near_duplicates": result.near_duplicates,
                "near_dedup": {k: v for k, v in result.near_facts.items() if isinstance(v, int | float)},
            },
            release=result.release,
            result=result,
        )

    def report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
        with run.connect() as connection:
            domains = query_rows(
                connection,
                "SELECT domain, count(*) AS pages, sum(size_bytes) AS bytes FROM read_parquet(?) "
                "GROUP BY domain ORDER BY pages DESC, domain",
                [f"{run.paths.data_dir}/*.parquet"],
            )
        return Report(
            metadata={
                "exact_duplicates": int(outcome.result.duplicates),
                "near_duplicates": int(outcome.result.near_duplicates),
                "domains": Table(domains),
            },
            lines=[f"{manifest['rows_out']} pages from {manifest['rows_in']} recalled"],
        )

    return Stage(
        name=CODE_WEB_PAGES,
        description=(
            f"The pages the last recall round (round {rounds}) recalled, one copy per content SHA-256 "
            "(highest score wins), near duplicates (mirrors, versioned copies) removed by the MinHash engine, "
            "judged by the quality filters' `text` profile; these document rows join the code mix before "
            "tokenization. Duplicates (with the kept page's doc_id) and filtered pages are reject rows with "
            "the rule's name."
        ),
        run=run,
        upstream=(round_stage(rounds),),
        section="web",
        config=WebConfig,
        params=lambda run: {
            "from_round": rounds,
            "exact_dedup": run.config.code_pages.exact_dedup,
            "near_dedup": run.config.code_pages.near_dedup,
        },
        report=report,
        group=GROUP_WEB,
        checks=(
            Check(
                name="unique_content",
                description="No two kept pages share a content SHA-256 (the exact dedup held).",
                run=_unique_content,
            ),
        ),
    )
