"""Jupyter notebooks as training documents, in StarCoder's two forms.

Every `.ipynb` file found under the configured folders (or inside installed packages) is one input
unit. A notebook that cannot be read is one reject row (`too_large`, `invalid_json`,
`invalid_notebook`); a readable one gives exactly two candidates, each kept or rejected:

* `jupyter_script`: the notebook as a jupytext script ("light" format, notebook header dropped) of
  the language its metadata names (`kernelspec.language`, else `language_info.name`); Markdown
  cells become comments. Rejected when the language is missing (`no_language_metadata`) or has no
  script form here (`unsupported_language`).
* `jupyter_structured`: `<jupyter_start>`, then per cell `<jupyter_text>` + Markdown or
  `<jupyter_code>` + code + `<jupyter_output>` + the cell's text output cut to `max_output_chars`
  (`<empty_output>` when it printed nothing). Python notebooks only (`not_python`), as StarCoder;
  a notebook whose outputs hold more than `max_output_bytes` (embedded images, dumped data) is
  `huge_outputs`.

Both forms: a notebook with neither code nor Markdown is `no_code_or_markdown`, and text that
already spells a marker is `format_marker_in_text`; PII is redacted as in `redacted_code`. The documents then go through the code path's
dedup and filters (`notebooks_clean`, `orchestration.source_stages`).
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from contracts.config import DEPLOYMENT
from contracts.doc_formats import (
    EMPTY_OUTPUT,
    JUPYTER_CODE,
    JUPYTER_OUTPUT,
    JUPYTER_SCRIPT,
    JUPYTER_START,
    JUPYTER_STRUCTURED,
    JUPYTER_TEXT,
)
from quality.dedup.config import DedupConfig
from quality.filters import FilterConfig
from quality.pii import PIIConfig, redact
from quality.plain import InputError
from quality.signals import SignalConfig
from quality.source_docs import (
    Rejection,
    SourceResult,
    candidates_from_units,
    check_no_markers,
    document,
    rejected,
    split_candidates,
)

STAGE = "notebooks"
STRUCTURED_LANG = "jupyter-notebook"  # the structured form is not a script: the general filter profile

# Notebook language (lower case, as metadata spells it) -> (codecook language, script extension).
SCRIPT_LANGUAGES: dict[str, tuple[str, str]] = {
    "python": ("python", ".py"),
    "python3": ("python", ".py"),
    "r": ("r", ".R"),
    "julia": ("julia", ".jl"),
    "scala": ("scala", ".scala"),
    "javascript": ("javascript", ".js"),
    "typescript": ("typescript", ".ts"),
    "bash": ("shell", ".sh"),
    "sh": ("shell", ".sh"),
    "c++": ("cpp", ".cpp"),
    "java": ("java", ".java"),
    "matlab": ("matlab", ".m"),
    "octave": ("matlab", ".m"),
    "sql": ("sql", ".sql"),
    "rust": ("rust", ".rs"),
    "go": ("go", ".go"),
    "ruby": ("ruby", ".rb"),
    "lua": ("lua", ".lua"),
    "haskell": ("haskell", ".hs"),
    "kotlin": ("kotlin", ".kt"),
    "c#": ("c-sharp", ".cs"),
}


@dataclass(frozen=True, kw_only=True)
class NotebookConfig:
    """Where notebooks come from and how they become documents (recipe section `notebooks`)."""

    paths: tuple[str, ...] = ()
    """Folders searched for `**/*.ipynb` (or single .ipynb files)."""
    packages: tuple[str, ...] = ()
    """Installed Python packages whose folders are searched too (found without importing them)."""
    max_file_bytes: int = 4 * 1024 * 1024
    """Larger notebook files are rejected as `too_large` without being read."""
    max_output_chars: int = 1000
    """Each code cell's text output is cut to this many characters in the structured form."""
    max_output_bytes: int = 500_000
    """A notebook whose outputs (text and embedded images, as JSON) exceed this is `huge_outputs`
    in the structured form."""
    units_per_partition: int = field(default=100, metadata=DEPLOYMENT)
    """Notebook files per Spark task."""
    dedup: DedupConfig = DedupConfig()
    """`notebooks_clean`: exact then near dedup of the documents, with these settings (the keys
    of the recipe's `dedup:` section)."""
    signals: SignalConfig = SignalConfig()
    """`notebooks_clean`: quality signals (the keys of `quality_signals:`)."""
    filters: FilterConfig = FilterConfig()
    """`notebooks_clean`: the filter profiles applied (the keys of `quality_filter:`); scripts
    are judged by their language's profile, the structured form by the general one."""

    def __post_init__(self) -> None:
        if self.max_output_chars < 0 or self.max_output_bytes < 0 or self.max_file_bytes <= 0:
            raise ValueError("max_output_chars and max_output_bytes must be >= 0, max_file_bytes > 0")


class NotebookInputError(InputError):
    """A configured folder or package that does not exist."""


def package_folder(name: str) -> str:
    """The folder of an installed package, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise NotebookInputError(f"notebooks.packages: package {name!r} is not installed")
    return next(iter(spec.submodule_search_locations))


def list_notebooks(config: NotebookConfig) -> list[tuple[str, str, int]]:
    """(source name, absolute path, path shown in documents) of every notebook, sorted."""
    roots = [(os.path.basename(os.path.normpath(p)) or "notebooks", p) for p in config.paths]
    roots += [(name, package_folder(name)) for name in config.packages]
    found = []
    for name, root in roots:
        if os.path.isfile(root):
            found.append((name, root, os.path.basename(root)))
            continue
        if not os.path.isdir(root):
            raise NotebookInputError(f"notebooks: {root} is neither a folder nor a file")
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".ipynb_checkpoints", ".git"))
            for file in sorted(files):
                if file.endswith(".ipynb"):
                    full = os.path.join(folder, file)
                    found.append((name, full, f"{name}/{os.path.relpath(full, root)}"))
    return sorted(found, key=lambda item: item[2])


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else (value or "")


def notebook_language(metadata: dict[str, Any]) -> str | None:
    kernel = metadata.get("kernelspec") or {}
    info = metadata.get("language_info") or {}
    language = kernel.get("language") or info.get("name")
    return str(language).strip().lower() or None if language else None


def output_text(outputs: list[dict[str, Any]]) -> str:
    """A code cell's outputs as text: streams, text/plain results, errors as `name: value`."""
    parts = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(_text(output.get("text")))
        elif kind in ("execute_result", "display_data"):
            parts.append(_text((output.get("data") or {}).get("text/plain")))
        elif kind == "error":
            parts.append(f"{output.get('ename', '')}: {output.get('evalue', '')}")
    return "".join(parts)


def structured_text(cells: list[dict[str, Any]], max_output_chars: int) -> str:
    """<jupyter_start> and the cells as StarCoder's text-code-output chain (raw cells skipped)."""
    pieces = [JUPYTER_START]
    for cell in cells:
        source = _text(cell.get("source"))
        if cell.get("cell_type") == "markdown" and source.strip():
            pieces += [JUPYTER_TEXT, source]
        elif cell.get("cell_type") == "code" and source.strip():
            output = output_text(cell.get("outputs") or [])[:max_output_chars]
            pieces += [JUPYTER_CODE, source, JUPYTER_OUTPUT, output if output.strip() else EMPTY_OUTPUT]
    return "".join(pieces)


def script_text(notebook: dict[str, Any], extension: str) -> str:
    """The notebook as a jupytext "light" script of `extension`, without the YAML header."""
    import jupytext
    import nbformat

    node = nbformat.from_dict(notebook)  # a copy: the header filter below is not the caller's
    node.metadata = nbformat.from_dict(
        {
            **node.metadata,
            "jupytext": {"notebook_metadata_filter": "-all", "cell_metadata_filter": "-all"},
        }
    )
    return jupytext.writes(node, fmt={"extension": extension, "format_name": "light"})


def parse_notebook(data: bytes) -> dict[str, Any]:
    """The notebook as nbformat 4 data; Rejection for invalid JSON or a non-notebook."""
    import nbformat

    try:
        text = data.decode("utf-8")
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Rejection("invalid_json", f"{type(error).__name__}: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        raise Rejection("invalid_notebook", "no list of cells (or worksheets)")
    try:
        # reads() joins multi-line sources and upgrades old formats to version 4.
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
    except (nbformat.ValidationError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise Rejection("invalid_notebook", f"{type(error).__name__}: {str(error)[:300]}") from None
    return notebook


def notebook_documents(
    source_name: str, shown_path: str, data: bytes, config: NotebookConfig, pii: PIIConfig | None = None
) -> list[dict]:
    """The candidates of one notebook file: one reject if unreadable, else script + structured,
    PII redacted (`quality.pii.redact`, defaults when `pii` is None) as code files are."""
    try:
        notebook = parse_notebook(data)
    except Rejection as rejection:
        return [
            rejected(
                STAGE, shown_path, rejection.reason, rejection.detail, path=shown_path, size_bytes=len(data)
            )
        ]
    cells = notebook.get("cells") or []
    language = notebook_language(notebook.get("metadata") or {})
    has_code = any(c.get("cell_type") == "code" and _text(c.get("source")).strip() for c in cells)
    has_text = any(c.get("cell_type") == "markdown" and _text(c.get("source")).strip() for c in cells)
    out = []
    for doc_format in (JUPYTER_SCRIPT, JUPYTER_STRUCTURED):
        key = f"{shown_path}#{doc_format}"
        try:
            if not (has_code or has_text):
                raise Rejection("no_code_or_markdown", f"{len(cells)} cells, none with code or Markdown")
            if doc_format == JUPYTER_SCRIPT:
                if language is None:
                    raise Rejection(
                        "no_language_metadata", "neither kernelspec.language nor language_info.name"
                    )
                if language not in SCRIPT_LANGUAGES:
                    raise Rejection("unsupported_language", f"notebook language {language!r}")
                lang, ext = SCRIPT_LANGUAGES[language]
                content = script_text(notebook, ext)
                check_no_markers({"script": content}, JUPYTER_STRUCTURED)
                path = os.path.splitext(shown_path)[0] + ext
            else:
                if language not in ("python", "python3"):
                    raise Rejection(
                        "not_python", f"notebook language {language!r}; the structured form is Python only"
                    )
                outputs = sum(
                    len(json.dumps(c.get("outputs") or [])) for c in cells if c.get("cell_type") == "code"
                )
                if outputs > config.max_output_bytes:
                    raise Rejection(
                        "huge_outputs", f"outputs hold {outputs} bytes > {config.max_output_bytes}"
                    )
                pieces = {f"cell {i}": _text(c.get("source")) for i, c in enumerate(cells)}
                pieces.update(
                    {f"output {i}": output_text(c.get("outputs") or []) for i, c in enumerate(cells)}
                )
                check_no_markers(pieces, JUPYTER_STRUCTURED)
                content = structured_text(cells, config.max_output_chars)
                lang, ext, path = STRUCTURED_LANG, ".ipynb", shown_path
            out.append(
                document(
                    STAGE,
                    key,
                    redact(content, lang, pii or PIIConfig())[0],
                    doc_format=doc_format,
                    path=path,
                    lang=lang,
                    ext=ext,
                    repo=source_name,
                )
            )
        except Rejection as rejection:
            out.append(
                rejected(
                    STAGE, key, rejection.reason, rejection.detail, path=shown_path, doc_format=doc_format
                )
            )
    return out


_UNIT_SCHEMA = T.StructType(
    [
        T.StructField("source_name", T.StringType(), False),
        T.StructField("file", T.StringType(), False),
        T.StructField("shown_path", T.StringType(), False),
    ]
)


def _notebook_file(unit: dict[str, Any], config: NotebookConfig, pii: PIIConfig) -> list[dict[str, Any]]:
    """Spark task body: the candidates of one listed notebook file."""
    shown = unit["shown_path"]
    try:
        size = os.path.getsize(unit["file"])
        if size > config.max_file_bytes:
            return [
                rejected(
                    STAGE,
                    shown,
                    "too_large",
                    f"{size} bytes > {config.max_file_bytes}",
                    path=shown,
                    size_bytes=size,
                )
            ]
        with open(unit["file"], "rb") as handle:
            data = handle.read()
    except OSError as error:
        return [rejected(STAGE, shown, "unreadable", f"{type(error).__name__}: {error}", path=shown)]
    return notebook_documents(unit["source_name"], shown, data, config, pii)


def ingest_notebooks(
    spark: SparkSession, config: NotebookConfig, pii: PIIConfig | None = None
) -> SourceResult:
    """Every configured notebook as candidates, split into documents and reject rows."""
    listed = list_notebooks(config)
    units = [{"source_name": n, "file": f, "shown_path": s} for n, f, s in listed]
    candidates = candidates_from_units(
        spark,
        units,
        _UNIT_SCHEMA,
        lambda unit: _notebook_file(unit, config, pii or PIIConfig()),
        units_per_partition=config.units_per_partition,
    )
    return split_candidates(candidates, STAGE, {"notebook_files": len(units)})


CLEAN_STAGE = "notebooks_clean"


def clean_notebooks(documents, config: NotebookConfig, rows_in: int, partitions: int, log=print):
    """The notebook documents deduplicated and filtered as the code path does it: exact dedup,
    near dedup, quality signals, filter profiles. Returns (kept, rejects of `notebooks_clean`
    with each engine's reason, release, facts)."""
    from pyspark.sql import functions as F

    from quality import filters, signals
    from quality.dedup.engine import exact_dedup, near_dedup

    exact = exact_dedup(documents, config.dedup, log=log)
    near = near_dedup(exact.kept, config.dedup, log=log)
    table = signals.compute_signals(
        near.kept, config.signals, partitions=signals.signal_partitions(rows_in, partitions)
    )
    profiles = filters.load_profiles(config.filters)
    kept, filtered = filters.apply_filters(near.kept, table, profiles)
    rejected = (
        exact.rejected.unionByName(near.rejected)
        .unionByName(filtered.select(*exact.rejected.columns))
        .withColumn("stage", F.lit(CLEAN_STAGE))
    )

    def release() -> None:
        near.release()
        exact.release()

    facts = {
        "exact_duplicate_groups": exact.facts.get("duplicate_groups"),
        "near_clusters": near.facts.get("near_clusters"),
        "profiles_fingerprint": profiles.fingerprint(),
    }
    return kept, rejected, release, facts
