"""The code funnel as each stage leaves it: `build_funnel(through=...)` stops at a stage, and every
stage of the code path carries the funnel so far in its report (orchestration.stage.add_funnel)."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import duckdb
import pytest

from quality.funnel import CODE_STAGES, build_funnel
from quality.storage import MANIFEST, StorageLayout

STDLIB = Path(sysconfig.get_paths()["stdlib"])
DOCUMENT_COLUMNS = ["doc_id", "content", "size_bytes"]


def write_stage(layout: StorageLayout, stage: str, rows_in: int, rejected: list[tuple[str, int]], **extra):
    """A finished stage as the storage contract has it: `_manifest.json` beside the kept rows'
    folder, and the reject rows (reason, size) as Parquet, written with DuckDB."""
    paths = layout.stage(stage)
    Path(paths.data_dir).mkdir(parents=True)
    manifest = {
        "stage": stage,
        "rows_in": rows_in,
        "rows_out": rows_in - len(rejected),
        "rows_rejected": len(rejected),
        "bytes_out": 1000 * (rows_in - len(rejected)),
        "columns": DOCUMENT_COLUMNS,
        "written_at": "2026-11-30T00:00:00",
        **extra,
    }
    (Path(paths.data_dir) / MANIFEST).write_text(json.dumps(manifest))
    if rejected:
        Path(paths.rejected_dir).mkdir(parents=True)
        values = ", ".join(f"('{reason}', {size})" for reason, size in rejected)
        duckdb.sql(
            f"COPY (SELECT * FROM (VALUES {values}) AS t(reason, size_bytes)) "
            f"TO '{paths.rejected_dir}/part-0.parquet' (FORMAT parquet)"
        )


@pytest.fixture()
def written(tmp_path) -> StorageLayout:
    """The code path written up to code_mix, a mixed-in source, and a side table."""
    layout = StorageLayout(str(tmp_path / "root"))
    write_stage(layout, "raw_code", 10, [("binary", 50)])
    write_stage(layout, "exact_dedup", 9, [("exact_duplicate", 300), ("exact_duplicate", 200)])
    write_stage(layout, "near_dedup", 7, [("near_duplicate", 70)])
    write_stage(layout, "code_mix", 8, [("mix_downsample", 10)])
    write_stage(layout, "gh_issues", 3, [])
    write_stage(layout, "quality_signals", 6, [], columns=["doc_id", "signals"])
    return layout


def test_the_funnel_stops_at_the_stage_asked_for(written):
    cut = build_funnel(written, through="exact_dedup")
    assert [s["stage"] for s in cut.stages] == ["raw_code", "exact_dedup"]
    assert cut.stages[1] == {
        "stage": "exact_dedup",
        "rows_in": 9,
        "rows_out": 7,
        "rows_rejected": 2,
        "bytes_in": 7000 + 500,
        "bytes_out": 7000,
        "bytes_rejected": 500,
    }
    assert cut.reasons == [
        {"stage": "raw_code", "reason": "binary", "rows": 1, "bytes": 50},
        {"stage": "exact_dedup", "reason": "exact_duplicate", "rows": 2, "bytes": 500},
    ]
    assert "near_dedup" not in cut.markdown() and "| exact_dedup | exact_duplicate | 2 |" in cut.markdown()
    # At the path's end the funnel is the whole one: the code path, then the mixed-in sources; a
    # side table (no content column) never.
    whole = build_funnel(written)
    assert [s["stage"] for s in whole.stages] == [
        "raw_code",
        "exact_dedup",
        "near_dedup",
        "code_mix",
        "gh_issues",
    ]
    assert build_funnel(written, through=CODE_STAGES[-1]) == whole
    with pytest.raises(ValueError, match="not a stage of the code funnel: 'quality_signals'"):
        build_funnel(written, through="quality_signals")


def test_each_stage_of_a_command_reports_the_funnel_so_far(spark, tmp_path):
    """`codecook dedup` run in process: exact_dedup's report shows itself, near_dedup's both
    stages; the figures are the manifests' and the reject rows', and the plot draws."""
    import matplotlib.pyplot as plt

    from orchestration.stage import Markdown, Plot, config_file_sections, run_stages
    from orchestration.stages import COMMANDS

    rows = [
        {"id": i, "path": f"json/{p.name}", "content": p.read_text()}
        for i, p in enumerate(sorted((STDLIB / "json").glob("*.py")))
    ]
    rows.append({"id": 99, "path": "copy.py", "content": (STDLIB / "json" / "decoder.py").read_text()})
    rows.append({"id": 100, "path": "blank.py", "content": " \n"})
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    command = COMMANDS["dedup"]
    layout = StorageLayout(str(tmp_path / "out"))
    (exact, exact_report, _), (near, near_report, _) = run_stages(
        command,
        spark,
        input_path=str(docs),
        layout=layout,
        configs=config_file_sections(command, None),
        log=lambda _: None,
    )
    assert exact_report.artifacts["funnel/funnel.json"]["stages"] == [
        {
            "stage": "exact_dedup",
            "rows_in": exact["rows_in"],
            "rows_out": exact["rows_out"],
            "rows_rejected": exact["rows_rejected"],
            "bytes_in": exact["bytes_out"]
            + exact_report.artifacts["funnel/funnel.json"]["stages"][0]["bytes_rejected"],
            "bytes_out": exact["bytes_out"],
            "bytes_rejected": exact_report.artifacts["funnel/funnel.json"]["stages"][0]["bytes_rejected"],
        }
    ]
    reasons = {
        (r["stage"], r["reason"]): r["rows"] for r in exact_report.artifacts["funnel/funnel.json"]["reasons"]
    }
    assert reasons == {("exact_dedup", r): n for r, n in exact["rejected_by_reason"].items()}
    assert reasons[("exact_dedup", "exact_duplicate")] == 1 and reasons[("exact_dedup", "empty_content")] == 1
    near_funnel = near_report.artifacts["funnel/funnel.json"]
    assert [s["stage"] for s in near_funnel["stages"]] == ["exact_dedup", "near_dedup"]
    assert near_funnel["stages"][1]["rows_in"] == near["rows_in"] == exact["rows_out"]
    markdown = near_report.metadata["funnel"]
    assert isinstance(markdown, Markdown) and markdown.text == near_report.artifacts["funnel/funnel.md"]
    assert "| exact_dedup | exact_duplicate | 1 |" in markdown.text
    plot = near_report.metadata["funnel_plot"]
    assert isinstance(plot, Plot) and plot.artifact == "funnel/funnel.png"
    figure = plot.make()
    left, right = figure.axes
    assert [t.get_text() for t in left.get_yticklabels()] == ["exact_dedup", "near_dedup"]
    assert any("exact_dedup: exact_duplicate" == t.get_text() for t in right.get_yticklabels())
    plt.close(figure)
    # Asked after both were written, exact_dedup's funnel is still what it left.
    assert [s["stage"] for s in build_funnel(layout, through="exact_dedup").stages] == ["exact_dedup"]


def test_a_side_table_carries_no_funnel(spark, tmp_path):
    """quality_signals (`codecook filter`'s first stage) is not on the funnel; filtered_code is."""
    from orchestration.stage import config_file_sections, run_stages
    from orchestration.stages import COMMANDS

    rows = [
        {"id": i, "path": f"json/{p.name}", "content": p.read_text()}
        for i, p in enumerate(sorted((STDLIB / "json").glob("*.py")))
    ]
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    command = COMMANDS["filter"]
    (_, signals_report, _), (_, filter_report, _) = run_stages(
        command,
        spark,
        input_path=str(docs),
        layout=StorageLayout(str(tmp_path / "out")),
        configs=config_file_sections(command, None),
        log=lambda _: None,
    )
    assert "funnel" not in signals_report.metadata and "funnel/funnel.json" not in signals_report.artifacts
    assert [s["stage"] for s in filter_report.artifacts["funnel/funnel.json"]["stages"]] == ["filtered_code"]
