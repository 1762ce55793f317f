"""Old entry points of `codecook dedup`, kept for callers of `quality.dedup.cli`.

The command is declared with the other stages in `orchestration.stages` (`COMMANDS["dedup"]`:
exact_dedup then near_dedup) and reads its input through `quality.plain`, like every stage
command: rows need only `content`; the input's own `id` and other columns are carried through;
rows that cannot be documents are reject rows of exact_dedup. New code calls those directly.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from quality.dedup.config import DedupConfig
from quality.dedup.engine import EXACT_STAGE, DedupInputError
from quality.plain import InputError


def prepare_documents(frame: DataFrame, source_name: str) -> tuple[DataFrame, DataFrame, int]:
    """(document rows, reject rows, rows in) of arbitrary rows: `quality.plain.prepare_documents`."""
    from quality.plain import prepare_documents as prepare

    try:
        prepared = prepare(frame, source_name, stage=EXACT_STAGE)
    except InputError as error:
        raise DedupInputError(str(error)) from None
    return prepared.documents, prepared.rejected, prepared.rows_in


def run_dedup(
    spark: SparkSession, input_path: str, output: str, config: DedupConfig, log=print
) -> dict[str, dict]:
    """Both dedup stages on one input into the storage root `output`; the two manifests."""
    # orchestration sits above quality; imported here only, for this old entry point.
    from pathlib import Path

    from orchestration.stage import run_stages
    from orchestration.stages import COMMANDS
    from quality.storage import StorageLayout

    root = output if "://" in output else str(Path(output).resolve())
    try:
        done = run_stages(
            COMMANDS["dedup"],
            spark,
            input_path=input_path,
            layout=StorageLayout(root),
            configs={"dedup": config},
            log=log,
        )
    except InputError as error:
        raise DedupInputError(str(error)) from None
    return {manifest["stage"]: manifest for manifest, _, _ in done}
