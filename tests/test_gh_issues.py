"""Issue/PR event streams as anonymised StarCoder conversations (quality.gh_issues) on the committed
sample; the sources mixed into code_mix by share; their markers tokenized as special tokens."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from contracts.doc_formats import (
    ALL_MARKERS,
    COMMIT_MSG,
    ISSUE,
    ISSUE_CLOSED,
    ISSUE_COMMENT,
    ISSUE_START,
    split_markers,
)
from quality.gh_issues import (
    IssueConfig,
    IssueInputError,
    anonymise,
    conversation_document,
    event_files,
    read_events,
)
from quality.pii import PIIConfig

SAMPLE = Path(__file__).resolve().parent.parent / "recipes" / "data" / "issues_sample.jsonl"
CONFIG = IssueConfig(paths=(str(SAMPLE),))
LOGINS = ("mira-k", "tobiasw", "ana.r", "lukas-b", "quentin", "hana_s")


@pytest.fixture(scope="module")
def conversations() -> tuple[dict[int, dict], list[dict]]:
    units, bad = read_events(event_files(CONFIG), CONFIG)
    return {u["number"]: conversation_document(u, CONFIG, PIIConfig()) for u in units}, bad


def test_lines_that_join_no_conversation_are_rejected_with_reasons(conversations):
    _, bad = conversations
    assert sorted((row["path"], row["_reason"]) for row in bad) == [
        ("issues_sample.jsonl:24", "bot_event"),
        ("issues_sample.jsonl:27", "missing_field"),
        ("issues_sample.jsonl:28", "missing_field"),
        ("issues_sample.jsonl:29", "invalid_json"),
        ("issues_sample.jsonl:3", "bot_event"),
        ("issues_sample.jsonl:30", "unknown_event"),
    ]
    assert {row["_detail"] for row in bad if row["_reason"] == "missing_field"} == {
        "missing user",
        "missing body",
    }


def test_conversations_are_in_starcoder_format_with_anonymous_speakers(conversations):
    documents, _ = conversations
    assert documents[6]["_reason"] == "no_opening_event"
    assert documents[10]["_reason"] == "format_marker_in_text"
    kept = {n: d for n, d in documents.items() if d["_reason"] is None}
    assert sorted(kept) == [1, 2, 3, 4, 5, 8]
    first = kept[1]["content"]
    assert first.startswith(f"{ISSUE_START}Title: near_dedup keeps the older copy of a file\nusername_0: ")
    assert f"{ISSUE_COMMENT}username_1: Confirmed on main. username_0 the comparator" in first
    assert first.endswith(ISSUE_CLOSED) and "Bumps pyspark" not in first  # the bot's comment is gone
    for document in kept.values():
        text = document["content"]
        assert not any(re.search(rf"(?<![\w-]){re.escape(login)}(?![\w-])", text) for login in LOGINS)
        assert text.count(ISSUE_START) == 1 and document["doc_format"] == ISSUE
    # Speaker ids are per conversation: each one starts again at username_0.
    assert all(d["content"].split("\n", 1)[1].startswith("username_0: ") for d in kept.values())
    assert "<EMAIL>" in kept[2]["content"] and "ana.rodrigues@" not in kept[2]["content"]
    assert "wJalrXUtnFEMI" not in kept[4]["content"]  # the key in the comment is redacted
    assert kept[3]["url"] == "https://github.com/codecook/codecook/pull/3"


def test_anonymise_replaces_whole_logins_only():
    speakers = {"bob": "username_0", "bob-smith": "username_1"}
    assert anonymise("@bob and bob-smith, not bobby", speakers) == "username_0 and username_1, not bobby"


def test_missing_input_is_an_input_error(tmp_path):
    with pytest.raises(IssueInputError, match="matches no JSONL"):
        event_files(IssueConfig(paths=(str(tmp_path / "none.jsonl"),)))


def test_command_twin_writes_a_conserved_stage_and_mix_takes_source_shares(spark, tmp_path):
    """`codecook ingest-issues` (its declaration, run in process): a stage whose checks pass; then
    code_mix's engine mixes a share of the conversations into code files, seeded by doc_id."""
    import duckdb

    from orchestration.source_stages import SOURCE_COMMANDS, WELL_FORMED
    from orchestration.stage import CheckRun, config_file_sections, run_stages
    from quality.expectations import conservation
    from quality.mix import MixConfig, mix_documents
    from quality.schema import DOCUMENT_COLUMNS
    from quality.source_docs import CANDIDATE_SCHEMA, document
    from quality.storage import StorageLayout, read_stage

    command = next(c for c in SOURCE_COMMANDS if c.name == "ingest-issues")
    layout = StorageLayout(str(tmp_path / "out"))
    ((manifest, _, _),) = run_stages(
        command,
        spark,
        input_path=str(SAMPLE),
        layout=layout,
        configs=config_file_sections(command, None),
        log=lambda _: None,
    )
    assert (manifest["rows_in"], manifest["rows_out"], manifest["rows_rejected"]) == (14, 6, 8)
    paths = layout.stage("gh_issues")
    with duckdb.connect() as connection:
        assert conservation(connection, paths)[0]
        assert WELL_FORMED.run(CheckRun(paths=paths, connection=connection)) == (
            True,
            {"documents": 6, "malformed": 0},
        )
    issues = read_stage(spark, paths)
    files = [
        document("t", f"f{i}.py", f"x = {i}\n", doc_format="x", path=f"f{i}.py", lang="python")
        for i in range(5)
    ]
    code = spark.createDataFrame(files, CANDIDATE_SCHEMA).select(*DOCUMENT_COLUMNS)
    config = MixConfig(targets={}, sources={"gh_issues": 0.5})
    mixed = mix_documents(code, config, sources={"gh_issues": issues})
    kept = sorted(r.doc_id for r in mixed.kept.collect())
    left_out = mixed.rejected.filter("reason = 'mix_source_share'").count()
    assert len(kept) + mixed.rejected.count() == 5 + 6 and 0 < left_out < 6
    assert mixed.kept.filter("doc_format = 'issue'").count() == 6 - left_out
    again = mix_documents(code, config, sources={"gh_issues": issues})
    assert sorted(r.doc_id for r in again.kept.collect()) == kept


def test_structured_documents_are_tokenized_with_their_special_tokens(conversations):
    from training.shards import SampleEncoder, SampleSettings, ShardStats
    from training.tokenizer import SPECIAL_TOKENS, train_bpe

    assert set(ALL_MARKERS) <= set(SPECIAL_TOKENS)
    documents, _ = conversations
    texts = [d["content"] for d in documents.values() if d["_reason"] is None]
    tokenizer = train_bpe(texts * 4, vocab_size=400)
    settings = SampleSettings(seed=0, fim_rate=1.0, spm_rate=0.5, metadata_rate=1.0, seq_len=64, batch_docs=8)
    encoder = SampleEncoder(tokenizer, settings)
    issue = texts[0]
    literal = "print('<issue_start> and <commit_msg> are text here')"
    rows = {
        "doc_id": ["a" * 32, "b" * 32],
        "content": [issue, literal],
        "repo": [None, "r"],
        "path": [None, "x.py"],
        "stars": [None, None],
        "lang": ["issue", "python"],
        "size_bytes": [None, None],
        "doc_format": [ISSUE, None],
    }
    stats = ShardStats()
    stream = encoder.encode_rows(rows, 1.0, "code_mix", stats)
    eos = tokenizer.token_to_id("<|endoftext|>")
    first, second = stream[: stream.index(eos)], stream[stream.index(eos) + 1 : -1]
    marker_ids = {tokenizer.token_to_id(m): m for m in ALL_MARKERS}
    # The issue: one id per marker, exactly where the text has them, and no FIM or metadata.
    assert [marker_ids[t] for t in first if t in marker_ids] == [
        p for p in split_markers(issue, ISSUE) if p in ALL_MARKERS
    ]
    assert tokenizer.decode(first, skip_special_tokens=False) == issue
    assert stats.structured_samples == 1 and stats.samples == 2
    # A plain file that spells markers keeps them as text.
    assert not any(t in marker_ids for t in second)
    assert COMMIT_MSG not in json.dumps(second)
