"""`codecook ingest-web --input PATH --output DIR [--config FILE]`: HTML pages to `web_pages` rows.

PATH is a WARC file, a JSONL file (`url` + `html` per line), or a folder of either or of `.html`
pages; DIR is a storage root (rows land in DIR/data/web_pages, rejects in DIR/data/rejected/web_pages).
The work is `quality.web.ingest_web`; this only parses arguments and prints the summary.
"""

from __future__ import annotations

import argparse


def ingest_web_arguments(parser: argparse.ArgumentParser) -> None:
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


def ingest_web(args: argparse.Namespace) -> int:
    """`codecook ingest-web`: one input (and optionally the installed docs) into web_pages rows."""
    from orchestration.stage_cli import cli_spark, config_hash, stage_config, write_cli_stage
    from quality.web import STAGE, WebIngestConfig, WebInputError, detect_input
    from quality.web import ingest_web as run_ingest
    from quality.webpool import installed_doc_inputs

    try:
        inputs = [detect_input(args.input, args.name, args.url_base)]
    except WebInputError as error:
        raise SystemExit(f"codecook ingest-web: {error}") from None
    if args.installed_docs:
        inputs += installed_doc_inputs(args.max_pages_per_site)
    config = stage_config(WebIngestConfig, args.config)
    spark = cli_spark()
    result = run_ingest(spark, tuple(inputs), config)
    try:
        write_cli_stage(
            result.kept,
            result.rejected,
            stage=STAGE,
            output=args.output,
            rows_in=result.rows_in,
            settings_hash=config_hash({"config": config_hash(config), "inputs": [str(i) for i in inputs]}),
            extra={"rows_in_by_input": result.rows_in_by_input},
        )
    finally:
        result.release()
    for name, rows in result.rows_in_by_input.items():
        print(f"  {name}: {rows} units")
    return 0
