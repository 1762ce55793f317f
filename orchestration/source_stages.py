"""StarCoder's other sources, each declared once (see `orchestration.stage`):

    notebooks -> notebooks_clean --+
    git_commits -------------------+--> code_mix (shares from `code_mix.sources`)
    gh_issues ---------------------+

The work lives in `quality.notebooks`, `quality.commits` and `quality.gh_issues` (documents in the
formats of `contracts.doc_formats`, tokenized with their special tokens by `training.shards`).
The Dagster assets are `assets/structured_sources.py`; the commands (`SOURCE_COMMANDS`, registered
with the others in `orchestration.stages.COMMANDS`) read `--input` themselves: a folder of
notebooks, a git repository, JSONL issue events. Dagster-free.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from orchestration.stage import Check, CheckRun, Command, Json, Outcome, Report, Stage, StageRun, Table
from quality import commits, gh_issues, notebooks
from quality.expectations import DOCUMENT_TYPES
from quality.source_docs import DOC_FORMAT, format_counts

SOURCE_COLUMNS = {**DOCUMENT_TYPES, DOC_FORMAT: "VARCHAR"}


def _pii_config(run: StageRun):
    """The recipe's `pii` section (defaults in a command): sources redact as redacted_code does."""
    from quality.pii import PIIConfig

    return run.recipe.section("pii", PIIConfig) if run.recipe is not None else PIIConfig()


def _outcome(result) -> Outcome:
    return Outcome(
        result.kept,
        result.rejected,
        rows_in=result.rows_in,
        manifest={"source": result.facts},
        release=result.release,
        result=result,
    )


def _source_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    with run.connect() as connection:
        counts = format_counts(connection, run.paths.data_dir) if manifest["rows_out"] else []
    facts = outcome.result.facts
    return Report(
        metadata={"documents_by_format": Table(counts), "source_facts": Json(facts)},
        metrics={f"{run.stage.name}.documents": float(manifest["rows_out"])},
        lines=[", ".join(f"{r['doc_format']}/{r['lang']}={r['docs']}" for r in counts[:8]) or "no documents"],
    )


# Every kept document of a structured format starts with its opening marker, and a commit has
# exactly one message between one before and one after: what the shard builder relies on.
_STRUCTURE_SQL = """
SELECT count(*) FILTER (WHERE NOT (
    CASE doc_format
      WHEN 'jupyter_structured' THEN starts_with(content, '<jupyter_start>')
      WHEN 'commit' THEN starts_with(content, '<commit_before>')
           AND len(string_split(content, '<commit_msg>')) = 2
           AND len(string_split(content, '<commit_after>')) = 2
      WHEN 'issue' THEN starts_with(content, '<issue_start>')
           AND len(string_split(content, '<issue_start>')) = 2
      ELSE doc_format IN ('jupyter_script')
    END)) AS malformed,
  count(*) AS documents
FROM read_parquet(?)
"""


def _well_formed(check: CheckRun) -> tuple[bool, dict[str, Any]]:
    malformed, documents = check.connection.execute(
        _STRUCTURE_SQL, [f"{check.paths.data_dir}/*.parquet"]
    ).fetchone()
    return int(malformed or 0) == 0, {"documents": int(documents), "malformed": int(malformed or 0)}


WELL_FORMED = Check(
    name="well_formed",
    description=(
        "Every kept document is in a known doc_format and starts with its opening marker (a commit: "
        "one <commit_msg> and one <commit_after>; an issue: one <issue_start>)."
    ),
    run=_well_formed,
)

# --------------------------------------------------------------------------------------------------
# notebooks, notebooks_clean


def _notebook_config(run: StageRun) -> notebooks.NotebookConfig:
    """The recipe's section; a command reads its --input folder (or file) instead of the section's."""
    if run.recipe is None and run.options.get("input"):
        return dataclasses.replace(run.config, paths=(run.options["input"],), packages=())
    return run.config


def _notebooks(run: StageRun) -> Outcome:
    return _outcome(notebooks.ingest_notebooks(run.spark, _notebook_config(run), _pii_config(run)))


def _notebooks_clean(run: StageRun) -> Outcome:
    rows_in = run.count(notebooks.STAGE)
    kept, rejected, release, facts = notebooks.clean_notebooks(
        run.input(), run.config, rows_in, run.parallelism(), log=run.log
    )
    return Outcome(kept, rejected, manifest={"clean": facts}, release=release, result=None)


def _clean_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    with run.connect() as connection:
        counts = format_counts(connection, run.paths.data_dir) if manifest["rows_out"] else []
    reasons = manifest.get("rejected_by_reason", {})
    return Report(
        metadata={"documents_by_format": Table(counts)},
        metrics={f"{run.stage.name}.documents": float(manifest["rows_out"])},
        lines=["rejected: " + (", ".join(f"{r}={n}" for r, n in sorted(reasons.items())) or "none")],
    )


NOTEBOOKS_STAGE = Stage(
    name=notebooks.STAGE,
    description=(
        "Jupyter notebooks (the recipe's folders and installed packages) as StarCoder's two forms: "
        "a jupytext script in the notebook's language, and for Python notebooks the structured "
        "<jupyter_start><jupyter_text>...<jupyter_code>...<jupyter_output>... chain with outputs cut "
        "short. Unreadable notebooks (invalid JSON, not a notebook, too large), notebooks with neither "
        "code nor Markdown, unknown languages and huge outputs are reject rows with the rule's name."
    ),
    run=_notebooks,
    section="notebooks",
    config=notebooks.NotebookConfig,
    params=lambda run: {"notebook_max_output_chars": run.config.max_output_chars},
    report=_source_report,
    required_columns=SOURCE_COLUMNS,
    checks=(WELL_FORMED,),
)

NOTEBOOKS_CLEAN_STAGE = Stage(
    name=notebooks.CLEAN_STAGE,
    description=(
        "The notebook documents deduplicated and filtered as code is: exact (SHA-256) and near "
        "(MinHash LSH) dedup, quality signals, the filter profiles (scripts by their language's "
        "profile, the structured form by the general one). Each reject keeps its engine's reason."
    ),
    run=_notebooks_clean,
    upstream=(notebooks.STAGE,),
    section="notebooks",
    config=notebooks.NotebookConfig,
    report=_clean_report,
    required_columns={**SOURCE_COLUMNS, "cluster_id": "VARCHAR"},
    checks=(WELL_FORMED,),
)

# --------------------------------------------------------------------------------------------------
# git_commits


def _commit_config(run: StageRun) -> commits.CommitConfig:
    if run.recipe is None and run.options.get("input"):
        repository = commits.RepositoryConfig(
            path=run.options["input"],
            name=run.options.get("name"),
            max_commits=run.options.get("max_commits") or 200,
        )
        return dataclasses.replace(run.config, repositories=(repository,))
    return run.config


def _commits(run: StageRun) -> Outcome:
    return _outcome(commits.ingest_commits(run.spark, _commit_config(run), _pii_config(run), log=run.log))


GIT_COMMITS_STAGE = Stage(
    name=commits.STAGE,
    description=(
        "Commits of local git repositories (pygit2) as <commit_before>...<commit_msg>...<commit_after> "
        "documents, one per modified file: whole files for 20% of commits, otherwise the change with "
        "0-32 lines of context, drawn from a hash of the commit id. Merges, huge, binary and vendored "
        "changes, added/deleted files and broken objects are reject rows with the rule's name."
    ),
    run=_commits,
    section="git_commits",
    config=commits.CommitConfig,
    params=lambda run: {
        "full_file_rate": run.config.full_file_rate,
        "max_window_lines": run.config.max_window_lines,
    },
    report=_source_report,
    required_columns=SOURCE_COLUMNS,
    checks=(WELL_FORMED,),
)

# --------------------------------------------------------------------------------------------------
# gh_issues


def _issue_config(run: StageRun) -> gh_issues.IssueConfig:
    if run.recipe is None and run.options.get("input"):
        return dataclasses.replace(run.config, paths=(run.options["input"],))
    return run.config


def _issues(run: StageRun) -> Outcome:
    return _outcome(gh_issues.ingest_issues(run.spark, _issue_config(run), _pii_config(run)))


GH_ISSUES_STAGE = Stage(
    name=gh_issues.STAGE,
    description=(
        "GitHub issue and pull-request event streams (JSONL) as <issue_start>Title...<issue_comment>..."
        "<issue_closed> conversations, speakers replaced by per-conversation ids (username_0, "
        "username_1...) in the text too, PII redacted. Invalid lines, events missing fields, bot events "
        "and conversations without an opening event are reject rows with the rule's name."
    ),
    run=_issues,
    section="gh_issues",
    config=gh_issues.IssueConfig,
    report=_source_report,
    required_columns=SOURCE_COLUMNS,
    checks=(WELL_FORMED,),
)

SOURCE_STAGES = (NOTEBOOKS_STAGE, NOTEBOOKS_CLEAN_STAGE, GIT_COMMITS_STAGE, GH_ISSUES_STAGE)

# --------------------------------------------------------------------------------------------------
# The command twins: --input is the source itself (a folder of notebooks, a repository, JSONL).


def _check_exists(path: str) -> None:
    from quality.plain import InputError

    if not os.path.exists(path):
        raise InputError(f"input not found: {path}")


def _commit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="Repository name recorded in documents (default: the folder's name).")
    parser.add_argument("--max-commits", type=int, help="Newest commits read from HEAD (default 200).")


SOURCE_COMMANDS = (
    Command(
        name="ingest-notebooks",
        help="Jupyter notebooks (a folder or .ipynb) as scripts and structured chains, then dedup "
        "and filters (DIR/data/notebooks, notebooks_clean).",
        stages=(NOTEBOOKS_STAGE, NOTEBOOKS_CLEAN_STAGE),
        plain_input=False,
        check_input=_check_exists,
    ),
    Command(
        name="ingest-commits",
        help="A git repository's commits as commit documents (DIR/data/git_commits).",
        stages=(GIT_COMMITS_STAGE,),
        arguments=_commit_arguments,
        plain_input=False,
        check_input=_check_exists,
    ),
    Command(
        name="ingest-issues",
        help="Issue/PR event JSONL as anonymised conversations (DIR/data/gh_issues).",
        stages=(GH_ISSUES_STAGE,),
        plain_input=False,
        check_input=_check_exists,
    ),
)
