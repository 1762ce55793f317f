"""GitHub issue and pull-request conversations as training documents, in StarCoder's format:

    <issue_start>Title: ...\nusername_0: first post<issue_comment>username_1: reply ...<issue_closed>

Input: JSONL files of events, one JSON object a line:

    {"repo": "owner/name", "number": 7, "event": "opened" | "comment" | "closed" | "reopened",
     "user": "login", "created_at": "2024-05-01T10:00:00Z", "title": "...", "body": "...",
     "kind": "issue" | "pull_request"}

`title` is needed on `opened`, `body` on `opened` and `comment`; `kind` defaults to `issue`.
Events are grouped into conversations by (repo, number) and ordered by time, then by file and line.

Every line is accounted for: a conversation is one candidate (kept or rejected); a line that cannot
join one is its own reject row: `invalid_json`, `missing_field` (naming the fields),
`unknown_event`, `bot_event` (StarCoder drops bot comments; bots are logins ending in `[bot]` or
listed in `bots`). Conversations are rejected as `no_opening_event`, `too_many_events`,
`too_long` or `format_marker_in_text`.

Speakers are anonymised per conversation: the n-th distinct login becomes `username_n`, and the
logins are replaced inside the text too (`@alice`, `alice`). PII (emails, IPs, keys, passwords)
is redacted with `quality.pii.redact`.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from contracts.config import DEPLOYMENT
from contracts.doc_formats import ISSUE, ISSUE_CLOSED, ISSUE_COMMENT, ISSUE_START
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

STAGE = "gh_issues"
LANG = "issue"  # not a programming language: the filters' general profile would judge it
EVENTS = ("opened", "comment", "closed", "reopened")
REQUIRED = ("repo", "number", "event", "user", "created_at")


@dataclass(frozen=True, kw_only=True)
class IssueConfig:
    """Where issue event streams come from and which conversations are kept (section `gh_issues`)."""

    paths: tuple[str, ...] = ()
    """JSONL files, folders of `*.jsonl`, or globs."""
    bots: tuple[str, ...] = ()
    """Further logins whose events are dropped as `bot_event` (besides `*[bot]`)."""
    max_events: int = 100
    """Longer conversations (after bot events are dropped) are `too_many_events`."""
    max_chars: int = 100_000
    """Longer conversation texts are `too_long`."""
    conversations_per_partition: int = field(default=500, metadata=DEPLOYMENT)
    """Conversations per Spark task."""


class IssueInputError(InputError):
    """A configured path that matches no file."""


def event_files(config: IssueConfig) -> list[str]:
    files = []
    for path in config.paths:
        if os.path.isdir(path):
            matched = sorted(glob.glob(os.path.join(path, "**", "*.jsonl"), recursive=True))
        else:
            matched = sorted(glob.glob(path))
        if not matched:
            raise IssueInputError(f"gh_issues: {path} matches no JSONL file")
        files += matched
    return files


def _is_bot(user: str, bots: tuple[str, ...]) -> bool:
    return user.endswith("[bot]") or user in bots


def read_events(files: list[str], config: IssueConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(conversation units, line rejects) of the event files."""
    conversations: dict[tuple[str, int], list[dict[str, Any]]] = {}
    bad: list[dict[str, Any]] = []
    for file in files:
        name = os.path.basename(file)
        with open(file, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                where = f"{name}:{number}"
                if not line.strip():
                    continue  # blank lines are layout, not events
                try:
                    event = json.loads(line)
                except json.JSONDecodeError as error:
                    bad.append(rejected(STAGE, where, "invalid_json", str(error), path=where))
                    continue
                if not isinstance(event, dict):
                    bad.append(rejected(STAGE, where, "invalid_json", "not a JSON object", path=where))
                    continue
                missing = [k for k in REQUIRED if event.get(k) in (None, "")]
                kind = event.get("event")
                if kind == "opened":
                    missing += [k for k in ("title", "body") if not isinstance(event.get(k), str)]
                elif kind == "comment":
                    missing += [k for k in ("body",) if not isinstance(event.get(k), str)]
                if missing:
                    bad.append(
                        rejected(STAGE, where, "missing_field", f"missing {', '.join(missing)}", path=where)
                    )
                    continue
                if kind not in EVENTS:
                    bad.append(rejected(STAGE, where, "unknown_event", f"event {kind!r}", path=where))
                    continue
                if _is_bot(str(event["user"]), config.bots):
                    bad.append(rejected(STAGE, where, "bot_event", f"{kind} by a bot account", path=where))
                    continue
                key = (str(event["repo"]), int(event["number"]))
                conversations.setdefault(key, []).append(
                    {**event, "_order": (str(event["created_at"]), file, number)}
                )
    units = []
    for (repo, number), events in sorted(conversations.items()):
        events.sort(key=lambda e: e.pop("_order"))
        units.append({"repo": repo, "number": number, "events": json.dumps(events)})
    return units, bad


def anonymise(text: str, speakers: dict[str, str]) -> str:
    """Logins written in `text` (with or without @) replaced by their speaker ids."""
    if not speakers:
        return text
    names = sorted(speakers, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w-])@?(" + "|".join(re.escape(n) for n in names) + r")(?![\w-])")
    return pattern.sub(lambda m: speakers[m.group(1)], text)


def conversation_text(events: list[dict[str, Any]], pii: PIIConfig) -> tuple[str, dict[str, int]]:
    """The conversation in StarCoder's format, speakers anonymised and PII redacted."""
    speakers: dict[str, str] = {}
    for event in events:
        speakers.setdefault(str(event["user"]), f"username_{len(speakers)}")
    pieces, found = [], {}
    check_no_markers(
        {f"event {i}": f"{e.get('title') or ''}\n{e.get('body') or ''}" for i, e in enumerate(events)}, ISSUE
    )
    for event in events:
        who = speakers[str(event["user"])]
        body, counts = redact(anonymise(event.get("body") or "", speakers), None, pii)
        for kind, n in counts.items():
            found[kind] = found.get(kind, 0) + n
        if event["event"] == "opened":
            title, counts = redact(anonymise(event["title"], speakers), None, pii)
            for kind, n in counts.items():
                found[kind] = found.get(kind, 0) + n
            pieces.append(f"{ISSUE_START}Title: {title}\n{who}: {body}")
        elif event["event"] == "comment":
            pieces.append(f"{ISSUE_COMMENT}{who}: {body}")
        elif event["event"] == "closed":
            pieces.append(ISSUE_CLOSED)
    return "".join(pieces), found


def conversation_document(unit: dict[str, Any], config: IssueConfig, pii: PIIConfig) -> dict[str, Any]:
    repo, number = unit["repo"], unit["number"]
    key = f"{repo}#{number}"
    events = json.loads(unit["events"])
    try:
        if events[0]["event"] != "opened":
            raise Rejection("no_opening_event", f"first event is {events[0]['event']!r}, not 'opened'")
        if len(events) > config.max_events:
            raise Rejection("too_many_events", f"{len(events)} events > {config.max_events}")
        content, _ = conversation_text(events, pii)
        if len(content) > config.max_chars:
            raise Rejection("too_long", f"{len(content)} characters > {config.max_chars}")
    except Rejection as rejection:
        return rejected(STAGE, key, rejection.reason, rejection.detail, path=key, doc_format=ISSUE)
    kind = events[0].get("kind") or "issue"
    url = f"https://github.com/{repo}/{'pull' if kind == 'pull_request' else 'issues'}/{number}"
    return document(
        STAGE,
        key,
        content,
        doc_format=ISSUE,
        path=key,
        lang=LANG,
        repo=repo,
        commit_date=str(events[-1]["created_at"]),
        url=url,
    )


_UNIT_SCHEMA = T.StructType(
    [
        T.StructField("repo", T.StringType(), False),
        T.StructField("number", T.LongType(), False),
        T.StructField("events", T.StringType(), False),
    ]
)


def ingest_issues(spark: SparkSession, config: IssueConfig, pii: PIIConfig) -> SourceResult:
    """Conversations as candidates (built in Spark tasks), plus the lines that joined none."""
    from quality.source_docs import CANDIDATE_SCHEMA

    files = event_files(config)
    units, bad = read_events(files, config)
    candidates = candidates_from_units(
        spark,
        units,
        _UNIT_SCHEMA,
        lambda unit: [conversation_document(unit, config, pii)],
        units_per_partition=config.conversations_per_partition,
    )
    if bad:
        candidates = candidates.unionByName(spark.createDataFrame(bad, CANDIDATE_SCHEMA))
    return split_candidates(
        candidates, STAGE, {"event_files": [os.path.basename(f) for f in files], "conversations": len(units)}
    )
