"""Declarative refresh: which assets Dagster rebuilds by itself, and the sensor that evaluates it.

    code_sources      -> raw_code -> exact_dedup -> ... -> code_mix     eager: rebuilt when an
    notebook_sources  -> notebooks -> notebooks_clean -> code_mix      input changed
    commit_sources    -> git_commits -> code_mix
    issue_sources     -> gh_issues -> code_mix
    web_sources       -> web_pages -> recall_round_1..N -> code_web_pages
    tokenizer, token_shards, checkpoint, eval_*                         no condition: never started
                                                                        by automation

The `*_sources` assets are observable source assets (`WATCHED_SOURCES`), one per stage that reads
from outside the storage root, observed every 15 min: each observation's data version is a
fingerprint of exactly the inputs that stage reads (files' paths, sizes and mtimes; a repository's
HEAD commit). The data assets (groups `data` and `web`) carry `AutomationCondition.eager()`:
requested when a dependency has a newer materialization or a new observed data version, never
while a dependency is missing or in progress, never twice for one update. A change in one input
requests that branch's data assets and what depends on them, nothing else. Training and
evaluation carry no condition on purpose: a CPU-hour (or GPU-day) run is started deliberately,
from the UI or the weekly schedule's job, not by a changed file.

`data_automation` evaluates these conditions; like the schedule it is off until switched on in the
UI (Automation tab). The asset pages show each condition and the sensor's evaluations.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from contracts.reuse import files_fingerprint
from orchestration.stage import GROUP_DATA, GROUP_WEB
from quality.ingest import SourceError, list_folder
from quality.plain import InputError

CODE_SOURCES = "code_sources"
NOTEBOOK_SOURCES = "notebook_sources"
COMMIT_SOURCES = "commit_sources"
ISSUE_SOURCES = "issue_sources"
WEB_SOURCES = "web_sources"
GROUP_SOURCES = "sources"
# How often the automation sensor asks for a new look at the source files.
OBSERVE_CRON = "*/15 * * * *"


def data_refresh_condition() -> dg.AutomationCondition:
    """The condition of every data asset: Dagster's eager (see the module docstring)."""
    return dg.AutomationCondition.eager()


def sources_observation_condition() -> dg.AutomationCondition:
    """Observe the sources on every tick of OBSERVE_CRON while the sensor runs."""
    return dg.AutomationCondition.cron_tick_passed(OBSERVE_CRON, "UTC").with_label(
        f"observe every 15 min ({OBSERVE_CRON})"
    )


@dataclass(frozen=True)
class Fingerprint:
    """One observation of a watched source: its data version and what it covers."""

    version: str
    """A digest of every input's identity (paths, sizes, mtimes; a repository's HEAD commit)."""
    by_input: dict[str, int]
    """Units per input (files; commits for a repository): an input with 0 selects nothing."""


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:24]


def _listed(name: str, listed) -> list[str]:
    return [f"{name}\0{item.relpath}\0{item.size}\0{item.mtime}" for item in listed]


def _stat(path: str) -> str:
    stat = os.stat(path)
    return f"{path}\0{stat.st_size}\0{stat.st_mtime}"


def _failure(key: str, error: object) -> dg.Failure:
    """A missing or unreadable input fails the observation (visibly), it is not a new version."""
    return dg.Failure(description=f"{key}: {error}")


def sources_fingerprint(recipe) -> tuple[str, int, dict[str, int]]:
    """A data version for the recipe's code sources, the number of files it covers, and that
    number per source.

    Folder sources: (relative path, size, mtime) of every file their globs select, so a file
    outside the globs changes nothing. File sources (JSONL, Parquet): size and mtime. A folder that
    is missing or unreadable is an error (the observation fails, visibly), not a new version.
    """
    found = code_fingerprint(recipe)
    return found.version, sum(found.by_input.values()), found.by_input


def _inputs_fingerprint(asset: str, inputs) -> Fingerprint:
    """(name, folder source or None, path) per input: a folder's listed files, else the file's
    size and mtime (`files_fingerprint`)."""
    lines, by_input = [], {}
    for name, folder, path in inputs:
        if folder is not None:
            try:
                listed = list_folder(folder)
            except SourceError as error:
                raise _failure(asset, error) from error
            lines += _listed(name, listed)
            by_input[name] = len(listed)
        else:
            lines.append(f"{name}\0{files_fingerprint([path])}")
            by_input[name] = 1
    return Fingerprint(_digest(lines), by_input)


def code_fingerprint(recipe) -> Fingerprint:
    """`sources`, read by raw_code (see `sources_fingerprint`)."""
    return _inputs_fingerprint(
        CODE_SOURCES,
        ((s.name, s if s.kind == "folder" else None, s.path) for s in recipe.sources),
    )


def notebook_fingerprint(recipe) -> Fingerprint:
    """`notebooks.paths` and `.packages`, read by notebooks: every notebook file's size and mtime."""
    from quality.notebooks import NotebookConfig, list_notebooks

    try:
        listed = list_notebooks(recipe.section("notebooks", NotebookConfig))
    except InputError as error:
        raise _failure(NOTEBOOK_SOURCES, error) from error
    by_input: dict[str, int] = {}
    for name, _, _ in listed:
        by_input[name] = by_input.get(name, 0) + 1
    return Fingerprint(_digest([f"{shown}\0{_stat(path)}" for _, path, shown in listed]), by_input)


def commit_fingerprint(recipe) -> Fingerprint:
    """`git_commits.repositories`, read by git_commits: each repository's HEAD commit (the walk
    starts there) and how many commits are taken. A commit changes HEAD; a checkout of an old
    branch does too, as it changes what the stage reads."""
    import pygit2

    from quality.commits import CommitConfig

    lines, by_input = [], {}
    for spec in recipe.section("git_commits", CommitConfig).repositories:
        if not os.path.exists(spec.path) and not spec.required:
            lines.append(f"{spec.path}\0absent")  # skipped by the stage; appearing is a change
            continue
        try:
            head = str(pygit2.Repository(spec.path).head.target)
        except (pygit2.GitError, KeyError) as error:
            raise _failure(
                COMMIT_SOURCES, f"{spec.path} is not a readable git repository ({error})"
            ) from None
        lines.append(f"{spec.path}\0{head}\0{spec.max_commits}")
        by_input[spec.name or os.path.basename(os.path.normpath(spec.path))] = spec.max_commits
    return Fingerprint(_digest(lines), by_input)


def issue_fingerprint(recipe) -> Fingerprint:
    """`gh_issues.paths`, read by gh_issues: every event file's size and mtime."""
    from quality.gh_issues import IssueConfig, event_files

    config = recipe.section("gh_issues", IssueConfig)
    try:
        files = event_files(config) if config.paths else []
    except InputError as error:
        raise _failure(ISSUE_SOURCES, error) from error
    return Fingerprint(_digest([_stat(path) for path in files]), {"event_files": len(files)} if files else {})


def web_fingerprint(recipe) -> Fingerprint:
    """`web`, read by web_pages: the inputs this machine gives (installed documentation sites, the
    recipe's inputs, else the committed sample). Folders: every file their globs select (not only
    the per-site hash sample the ingest takes: a page joining the sample is a change too). Files
    (JSONL, WARC): size and mtime."""
    from quality.webpool import WebConfig

    inputs = recipe.section("web", WebConfig).resolved_inputs()
    return _inputs_fingerprint(
        WEB_SOURCES,
        ((i.name, i.folder_source() if i.kind == "folder" else None, i.path) for i in inputs),
    )


@dataclass(frozen=True)
class WatchedSource:
    """An observable source asset: the inputs one stage reads from outside the storage root."""

    key: str
    """The source asset's key."""
    stage: str
    """The stage asset that reads these inputs (it depends on the source asset)."""
    kind: str
    """The asset's kind in the UI."""
    description: str
    fingerprint: Callable[[Any], Fingerprint]
    """Recipe -> this observation's data version (a Dagster Failure when an input is unreadable)."""


WATCHED_SOURCES = (
    WatchedSource(
        CODE_SOURCES,
        "raw_code",
        "folder",
        "The recipe's code sources (folders and files) that raw_code reads: every selected file's "
        "path, size and mtime.",
        code_fingerprint,
    ),
    WatchedSource(
        NOTEBOOK_SOURCES,
        "notebooks",
        "jupyter",
        "The notebook folders and packages (`notebooks:` section) that notebooks reads: every "
        "notebook's path, size and mtime.",
        notebook_fingerprint,
    ),
    WatchedSource(
        COMMIT_SOURCES,
        "git_commits",
        "git",
        "The git repositories (`git_commits:` section) that git_commits reads: each one's HEAD commit.",
        commit_fingerprint,
    ),
    WatchedSource(
        ISSUE_SOURCES,
        "gh_issues",
        "json",
        "The issue event files (`gh_issues:` section) that gh_issues reads: each file's size and mtime.",
        issue_fingerprint,
    ),
    WatchedSource(
        WEB_SOURCES,
        "web_pages",
        "html",
        "The web pool (`web:` section: installed documentation sites, the recipe's inputs, else the "
        "committed sample) that web_pages reads: every selected file's path, size and mtime.",
        web_fingerprint,
    ),
)
"""Every input the recipe reads from outside the storage root, by the stage that reads it. The
other stages read only stage outputs (and benchmark data shipped with the installed packages)."""

WATCHED_BY_STAGE = {watched.stage: (watched.key,) for watched in WATCHED_SOURCES}
"""Stage name -> the source assets it depends on (assets._stage adds them to the stage's deps)."""


data_automation_sensor = dg.AutomationConditionSensorDefinition(
    "data_automation",
    target=dg.AssetSelection.groups(GROUP_DATA, GROUP_WEB)
    | dg.AssetSelection.assets(*(watched.key for watched in WATCHED_SOURCES)),
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description=(
        "Declarative refresh of the data assets: observes every watched source (code, notebooks, "
        "git commits, issues, the web pool) every 15 minutes and rebuilds exactly the data assets "
        "downstream of what changed (eager). Training and evaluation are never started by it."
    ),
)
