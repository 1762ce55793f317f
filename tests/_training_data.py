"""Stage outputs for the training tests, built from the Python standard library without Spark.

The rows carry the Document schema's columns, are sorted by doc_id and end with a `_manifest.json`,
exactly as `quality.storage.write_stage` leaves a stage, so the tokenizer and shard code read them
as they read the real `code_mix` / `code_web_pages`.
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from quality.schema import DOCUMENT_COLUMNS, content_sha256, make_doc_id

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def stdlib_documents(
    limit: int, *, pattern: str = "*.py", max_bytes: int = 60_000, skip: int = 0
) -> list[dict]:
    """Up to `limit` stdlib files as document rows, in a fixed order."""
    rows = []
    files = sorted(
        p for p in STDLIB.rglob(pattern) if "site-packages" not in p.parts and "__pycache__" not in p.parts
    )
    for path in files[skip:]:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text or len(text.encode()) > max_bytes:
            continue
        relative = str(path.relative_to(STDLIB))
        rows.append(
            {
                "doc_id": make_doc_id("stdlib", relative),
                "content": text,
                "path": relative,
                "repo": "cpython",
                "lang": "python" if path.suffix == ".py" else path.suffix.lstrip(".") or "text",
                "ext": path.suffix.lstrip("."),
                "size_bytes": len(text.encode()),
                "sha256": content_sha256(text),
                "stars": 60000,
                "licence": "PSF-2.0",
                "commit_date": None,
                "source": "code",
                "url": None,
            }
        )
        if len(rows) == limit:
            break
    return rows


def write_stage_output(root: Path, stage: str, rows: list[dict], files: int = 2) -> Path:
    """Write `rows` as a complete stage output under `root/data/<stage>` (parts + manifest)."""
    folder = Path(root) / "data" / stage
    folder.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: r["doc_id"])
    schema = pa.schema(
        [(c, pa.int64() if c in ("size_bytes", "stars") else pa.string()) for c in DOCUMENT_COLUMNS]
    )
    per_file = -(-len(rows) // files) if rows else 0
    names = []
    for index in range(files):
        chunk = rows[index * per_file : (index + 1) * per_file]
        table = pa.Table.from_pylist(chunk, schema=schema)
        name = f"part-{index:05d}.parquet"
        pq.write_table(table, folder / name)
        names.append(name)
    manifest = {
        "stage": stage,
        "rows_in": len(rows),
        "rows_out": len(rows),
        "rows_rejected": 0,
        "files": names,
    }
    (folder / "_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder
