"""Git commits as training documents, in StarCoder's format:

    <commit_before>code before<commit_msg>message<commit_after>code after

read with pygit2 from local repositories. A commit is one input unit; every file it modifies is
one candidate document (kept or rejected), and a commit that gives no file candidate is one reject
row itself, so every commit walked is accounted for.

Which code a document shows is drawn per commit from a hash of the commit id (the same on every
run and machine): with probability `full_file_rate` (StarCoder: 20%) the whole file before and
after; otherwise a window of the changed lines plus k lines of context on each side, k drawn
uniformly from 0..`max_window_lines` (StarCoder: 32).

Rules, each a reject reason: `merge_commit`, `empty_message`, `huge_commit` (more files than
`max_files_changed`), `broken_object` (a commit, tree or blob the repository cannot give back),
`root_commit`, and per file `file_added`, `file_deleted`, `binary_change`, `vendored_path`, `unknown_language`,
`undecodable`, `huge_change` (a side over `max_file_bytes` or more than `max_changed_lines` lines
changed) and `format_marker_in_text`. Messages and code pass through PII redaction
(`quality.pii.redact`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from contracts.config import DEPLOYMENT
from contracts.doc_formats import COMMIT, COMMIT_AFTER, COMMIT_BEFORE, COMMIT_MSG
from quality.ingest import glob_to_regex
from quality.languages import language_of
from quality.pii import PIIConfig, redact
from quality.plain import InputError
from quality.source_docs import (
    Rejection,
    SourceResult,
    candidates_from_units,
    check_no_markers,
    document,
    rejected,
    split_candidates,
)

STAGE = "git_commits"

DEFAULT_VENDORED = (
    "vendor/**",
    "**/vendor/**",
    "**/_vendor/**",
    "third_party/**",
    "**/third_party/**",
    "**/node_modules/**",
    "**/*.min.js",
    "**/*.min.css",
    "**/package-lock.json",
    "**/yarn.lock",
    "**/poetry.lock",
    "**/Cargo.lock",
)


@dataclass(frozen=True, kw_only=True)
class RepositoryConfig:
    """One local git repository."""

    path: str
    """The work tree or the .git folder."""
    name: str | None = None
    """Repository name recorded in documents and doc_ids (default: the folder's name)."""
    max_commits: int = 200
    """Newest commits reachable from HEAD taken (by commit time)."""
    required: bool = True
    """False: a repository missing on this machine is skipped with a warning (optional extras)."""


@dataclass(frozen=True, kw_only=True)
class CommitConfig:
    """Which repositories and how commits become documents (recipe section `git_commits`)."""

    repositories: tuple[RepositoryConfig, ...] = ()
    """Local repositories read from HEAD backwards."""
    full_file_rate: float = 0.2
    """Share of commits shown with whole files (StarCoder: 20%); the rest show a window."""
    max_window_lines: int = 32
    """Context lines on each side of the change are drawn from 0..this (StarCoder: 0-32)."""
    max_files_changed: int = 50
    """Commits touching more files are `huge_commit` (mass renames, reformatting, imports)."""
    max_changed_lines: int = 2000
    """A file with more lines added + removed is `huge_change`."""
    max_file_bytes: int = 1024 * 1024
    """A file side larger than this is `huge_change` (never decoded)."""
    vendored: tuple[str, ...] = DEFAULT_VENDORED
    """Globs of vendored or generated paths (`vendored_path`)."""
    commits_per_partition: int = field(default=50, metadata=DEPLOYMENT)
    """Commits per Spark task (each task opens the repository once)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.full_file_rate <= 1.0:
            raise ValueError(f"full_file_rate must lie in [0, 1], got {self.full_file_rate}")
        if self.max_window_lines < 0:
            raise ValueError(f"max_window_lines must be >= 0, got {self.max_window_lines}")


class CommitInputError(InputError):
    """A required repository that is missing or is not a git repository."""


def view_draw(commit_id: str, full_file_rate: float, max_window_lines: int) -> tuple[bool, int]:
    """(whole files?, context lines) of a commit: SHA-256 of its id, the same everywhere."""
    digest = hashlib.sha256(f"{STAGE}:{commit_id}".encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64
    return unit < full_file_rate, int.from_bytes(digest[8:12], "big") % (max_window_lines + 1)


def window(lines: list[str], hunks: list[tuple[int, int]], context: int) -> str:
    """The lines from the first change to the last, with `context` lines on each side.

    `hunks` are (start, count) in 1-based line numbers as git reports them for one side; a count
    of 0 (a pure insertion or deletion) means the change sits just after line `start`."""
    if not hunks:
        return "".join(lines)
    first = min(start if count else start + 1 for start, count in hunks)
    last = max(start + count - 1 if count else start for start, count in hunks)
    low = max(0, first - 1 - context)
    high = min(len(lines), last + context)
    return "".join(lines[low:high])


def _decode(data: bytes, side: str) -> str:
    if b"\x00" in data:
        raise Rejection("binary_change", f"{side} holds NUL bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Rejection("undecodable", f"{side}: {error}") from None


def _redacted(text: str, lang: str | None, pii: PIIConfig) -> str:
    return redact(text, lang, pii)[0]


def commit_documents(repository, unit: dict[str, Any], config: CommitConfig, pii: PIIConfig) -> list[dict]:
    """The candidates of one commit (pygit2 objects; broken ones become `broken_object`)."""
    import pygit2

    repo_name, commit_id = unit["repo_name"], unit["commit_id"]
    commit_key = f"{repo_name}@{commit_id}"
    if commit_id.startswith("walk-error:"):
        return [rejected(STAGE, commit_key, "broken_object", commit_id.split(":", 2)[2], path=commit_key)]
    try:
        commit = repository[commit_id]
        parents = commit.parents
        if len(parents) != 1:
            reason = "merge_commit" if len(parents) > 1 else "root_commit"
            detail = f"{len(parents)} parents" if len(parents) > 1 else "root commit: every file is new"
            return [rejected(STAGE, commit_key, reason, detail, path=commit_key)]
        message = commit.message.strip()
        if not message:
            return [rejected(STAGE, commit_key, "empty_message", "no commit message", path=commit_key)]
        diff = repository.diff(parents[0], commit, context_lines=0)
        diff.find_similar()
        patches = list(diff)
        if len(patches) > config.max_files_changed:
            return [
                rejected(
                    STAGE,
                    commit_key,
                    "huge_commit",
                    f"{len(patches)} files changed > {config.max_files_changed}",
                    path=commit_key,
                )
            ]
        if not patches:
            return [
                rejected(STAGE, commit_key, "no_file_change", "the commit changes no file", path=commit_key)
            ]
        date = datetime.fromtimestamp(commit.commit_time, UTC).isoformat(timespec="seconds")
        vendored = [glob_to_regex(g) for g in config.vendored]
        full, context = view_draw(commit_id, config.full_file_rate, config.max_window_lines)
        out = []
        for patch in patches:
            delta = patch.delta
            path = delta.new_file.path or delta.old_file.path
            key = f"{commit_key}:{path}"
            lang, ext = language_of(path)
            try:
                status = delta.status_char()
                if status == "A":
                    raise Rejection("file_added", "the file is new in this commit")
                if status == "D":
                    raise Rejection("file_deleted", "the file is deleted in this commit")
                if any(rule.fullmatch(path) for rule in vendored):
                    raise Rejection("vendored_path", f"{path} matches a vendored/generated glob")
                if delta.is_binary:
                    raise Rejection("binary_change", "git marks the change binary")
                if lang is None:
                    raise Rejection("unknown_language", f"no language for {path!r}")
                before_blob, after_blob = repository[delta.old_file.id], repository[delta.new_file.id]
                sizes = (before_blob.size, after_blob.size)
                if max(sizes) > config.max_file_bytes:
                    raise Rejection("huge_change", f"file sides of {sizes} bytes > {config.max_file_bytes}")
                changed = sum(h.old_lines + h.new_lines for h in patch.hunks)
                if changed > config.max_changed_lines:
                    raise Rejection("huge_change", f"{changed} lines changed > {config.max_changed_lines}")
                before = _decode(before_blob.data, "before")
                after = _decode(after_blob.data, "after")
                if not full:
                    before = window(
                        before.splitlines(keepends=True),
                        [(h.old_start, h.old_lines) for h in patch.hunks],
                        context,
                    )
                    after = window(
                        after.splitlines(keepends=True),
                        [(h.new_start, h.new_lines) for h in patch.hunks],
                        context,
                    )
                check_no_markers({"before": before, "message": message, "after": after}, COMMIT)
                content = (
                    f"{COMMIT_BEFORE}{_redacted(before, lang, pii)}{COMMIT_MSG}{_redacted(message, None, pii)}"
                    f"{COMMIT_AFTER}{_redacted(after, lang, pii)}"
                )
                out.append(
                    document(
                        STAGE,
                        key,
                        content,
                        doc_format=COMMIT,
                        path=path,
                        lang=lang,
                        ext=ext,
                        repo=repo_name,
                        commit_date=date,
                    )
                )
            except Rejection as rejection:
                out.append(
                    rejected(
                        STAGE,
                        key,
                        rejection.reason,
                        rejection.detail,
                        path=path,
                        lang=lang,
                        doc_format=COMMIT,
                    )
                )
        return out
    except (pygit2.GitError, KeyError, ValueError) as error:
        # A missing or corrupt commit, tree or blob: the commit is one reject row, the run goes on.
        return [
            rejected(STAGE, commit_key, "broken_object", f"{type(error).__name__}: {error}", path=commit_key)
        ]


def list_commits(config: CommitConfig, log=print) -> list[dict[str, Any]]:
    """The commits to read: per repository the newest `max_commits` from HEAD, by commit time.
    A walk that hits a broken object ends there with one `broken_object` unit."""
    import pygit2
    from pygit2.enums import SortMode

    units = []
    for spec in config.repositories:
        if not os.path.exists(spec.path):
            if spec.required:
                raise CommitInputError(f"git_commits: repository {spec.path} does not exist")
            log(f"git_commits: optional repository {spec.path} is not on this machine; skipped")
            continue
        try:
            repository = pygit2.Repository(spec.path)
        except pygit2.GitError as error:
            raise CommitInputError(f"git_commits: {spec.path} is not a git repository ({error})") from None
        name = spec.name or os.path.basename(
            os.path.normpath(repository.workdir or repository.path.rstrip("/").removesuffix("/.git"))
        )
        listed = 0
        try:
            for commit in repository.walk(repository.head.target, SortMode.TIME):
                if listed >= spec.max_commits:
                    break
                units.append({"repo_path": spec.path, "repo_name": name, "commit_id": str(commit.id)})
                listed += 1
        except (pygit2.GitError, KeyError) as error:
            # The history below a missing commit cannot be walked: one reject unit says where it broke.
            reason = f"history walk stopped after {listed} commits: {type(error).__name__}: {error}"
            units.append(
                {"repo_path": spec.path, "repo_name": name, "commit_id": f"walk-error:{listed}:{reason}"}
            )
    return units


_UNIT_SCHEMA = T.StructType(
    [
        T.StructField("repo_path", T.StringType(), False),
        T.StructField("repo_name", T.StringType(), False),
        T.StructField("commit_id", T.StringType(), False),
    ]
)


def ingest_commits(spark: SparkSession, config: CommitConfig, pii: PIIConfig, log=print) -> SourceResult:
    """Every listed commit as candidates, split into documents and reject rows."""
    units = list_commits(config, log)
    opened: dict[str, Any] = {}

    def make(unit: dict[str, Any]) -> list[dict[str, Any]]:
        import pygit2

        # One repository object per task and path (the closure is a fresh copy in every task).
        if unit["repo_path"] not in opened:
            opened[unit["repo_path"]] = pygit2.Repository(unit["repo_path"])
        return commit_documents(opened[unit["repo_path"]], unit, config, pii)

    candidates = candidates_from_units(
        spark, units, _UNIT_SCHEMA, make, units_per_partition=config.commits_per_partition
    )
    repos = sorted({u["repo_name"] for u in units})
    return split_candidates(candidates, STAGE, {"commits": len(units), "repositories": repos})
