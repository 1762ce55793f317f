"""The data funnel: rows and bytes per stage and per rejection reason, from what the stages wrote.

Everything comes from files a user can query too: each stage's `_manifest.json` (rows in, out,
rejected) and the rejected Parquet rows (reason and size of every dropped file), read with
DuckDB, no Spark. Stages are the document stages of the code path in graph order; a stage that
has not been written is simply absent. `through` cuts it at a stage: the funnel as that stage
left it (what a stage's own report shows), without later stages an earlier run left on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import fsspec

from quality.storage import MANIFEST, StorageLayout

# The code path in graph order; other document stages found on disk follow, oldest first.
CODE_STAGES = (
    "raw_code",
    "exact_dedup",
    "near_dedup",
    "filtered_code",
    "redacted_code",
    "decontaminated_code",
    "code_mix",
)


@dataclass
class Funnel:
    stages: list[dict[str, Any]]
    """Per stage: rows_in, rows_out, rows_rejected, bytes_in, bytes_out, bytes_rejected."""
    reasons: list[dict[str, Any]]
    """Per stage and reason: rows and bytes rejected."""

    def markdown(self) -> str:
        lines = [
            "| stage | rows in | rows kept | rows rejected | MB in | MB kept | MB rejected |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for s in self.stages:
            lines.append(
                f"| {s['stage']} | {s['rows_in']} | {s['rows_out']} | {s['rows_rejected']} | "
                f"{s['bytes_in'] / 1e6:.2f} | {s['bytes_out'] / 1e6:.2f} | {s['bytes_rejected'] / 1e6:.2f} |"
            )
        lines += ["", "| stage | reason | rows | MB |", "|---|---|---:|---:|"]
        for r in self.reasons:
            lines.append(f"| {r['stage']} | {r['reason']} | {r['rows']} | {r['bytes'] / 1e6:.3f} |")
        return "\n".join(lines)


def _manifests(layout: StorageLayout, through: str | None = None) -> list[dict[str, Any]]:
    fs = fsspec.core.url_to_fs(layout.root)[0]
    found = []
    for path in sorted(fs.glob(f"{layout.data_root}/*/{MANIFEST}")):
        with fs.open(path, "r") as handle:
            manifest = json.load(handle)
        # Document stages only: side tables (quality_signals) and web stages are not on the code path.
        if "content" in manifest.get("columns", []) and manifest.get("stage", "").find("web") < 0:
            found.append(manifest)
    order = {name: i for i, name in enumerate(CODE_STAGES)}
    if through is not None and through != CODE_STAGES[-1]:
        # Cut before the path's end: its stages up to `through`. At the end (code_mix, which mixes
        # in the other sources) or uncut, the other document stages stay, after the code path.
        last = order[through]
        found = [m for m in found if order.get(m["stage"], last + 1) <= last]
    return sorted(found, key=lambda m: (order.get(m["stage"], len(order)), m.get("written_at", "")))


def build_funnel(layout: StorageLayout, connection=None, through: str | None = None) -> Funnel:
    """The funnel of every code stage written under `layout` (DuckDB over the rejected Parquet);
    with `through` (a stage of CODE_STAGES), only the code path up to and including that stage."""
    import duckdb

    if through is not None and through not in CODE_STAGES:
        raise ValueError(f"not a stage of the code funnel: {through!r} (one of {', '.join(CODE_STAGES)})")

    own = connection is None
    connection = connection or duckdb.connect(":memory:")
    try:
        stages, reasons = [], []
        for manifest in _manifests(layout, through):
            stage = manifest["stage"]
            paths = layout.stage(stage)
            by_reason: list[tuple[str, int, int]] = []
            if manifest.get("rows_rejected"):
                by_reason = connection.execute(
                    "SELECT reason, count(*), coalesce(sum(size_bytes), 0) FROM read_parquet(?) "
                    "GROUP BY reason ORDER BY count(*) DESC, reason",
                    [f"{paths.rejected_dir}/*.parquet"],
                ).fetchall()
            bytes_rejected = sum(int(b) for _, _, b in by_reason)
            bytes_out = int(manifest.get("bytes_out", 0))
            stages.append(
                {
                    "stage": stage,
                    "rows_in": int(manifest["rows_in"]),
                    "rows_out": int(manifest["rows_out"]),
                    "rows_rejected": int(manifest["rows_rejected"]),
                    "bytes_in": bytes_out + bytes_rejected,
                    "bytes_out": bytes_out,
                    "bytes_rejected": bytes_rejected,
                }
            )
            reasons += [
                {"stage": stage, "reason": r, "rows": int(n), "bytes": int(b)} for r, n, b in by_reason
            ]
        return Funnel(stages, reasons)
    finally:
        if own:
            connection.close()


def plot_funnel(funnel: Funnel, top_reasons: int = 15):
    """Two panels: rows kept per stage (the funnel), and the largest rejection reasons in rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    names = [s["stage"] for s in funnel.stages]
    left.barh(names, [s["rows_in"] for s in funnel.stages], color="#d7dde4", label="rows in")
    left.barh(names, [s["rows_out"] for s in funnel.stages], color="#2f6fdf", label="rows kept")
    for index, s in enumerate(funnel.stages):
        left.text(
            s["rows_out"], index, f" {s['rows_out']} ({s['bytes_out'] / 1e6:.1f} MB)", va="center", fontsize=8
        )
    left.invert_yaxis()
    left.set_title("rows per stage")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    top = sorted(funnel.reasons, key=lambda r: -r["rows"])[:top_reasons]
    labels = [f"{r['stage']}: {r['reason']}" for r in top]
    right.barh(labels, [r["rows"] for r in top], color="#e07b39")
    for index, r in enumerate(top):
        right.text(r["rows"], index, f" {r['rows']} ({r['bytes'] / 1e6:.2f} MB)", va="center", fontsize=8)
    right.invert_yaxis()
    right.set_title(f"largest rejection reasons (top {len(top)})")
    figure.tight_layout()
    return figure
