"""Git commits as StarCoder commit documents (quality.commits): the window rule, the filters,
broken objects, and a run over real repositories (a built one and the project's own history)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pygit2
import pytest

from contracts.doc_formats import COMMIT_AFTER, COMMIT_BEFORE, COMMIT_MSG
from quality.commits import (
    CommitConfig,
    CommitInputError,
    RepositoryConfig,
    commit_documents,
    ingest_commits,
    list_commits,
    view_draw,
    window,
)
from quality.pii import PIIConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=ENV
    ).stdout.strip()


def commit(repo: Path, message: str, files: dict[str, bytes | None]) -> str:
    for name, data in files.items():
        path = repo / name
        if data is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


MODULE = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(60)).encode()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A repository whose commits each exercise one rule."""
    root = tmp_path_factory.mktemp("repo")
    git(root, "init", "-q", "-b", "main")
    ids = {
        "root": commit(
            root, "start", {"app.py": MODULE, "vendor/lib.py": b"x = 1\n", "logo.bin": b"\x00\x01"}
        )
    }
    ids["edit"] = commit(
        root, "Fix f30, mail bob@corp-mail.net", {"app.py": MODULE.replace(b"x + 30", b"x * 30")}
    )
    ids["vendored"] = commit(root, "bump vendored lib", {"vendor/lib.py": b"x = 2\n"})
    ids["binary"] = commit(root, "new logo", {"logo.bin": b"\x00\x02\x03"})
    ids["added"] = commit(root, "add util", {"util.py": b"def g():\n    pass\n"})
    ids["huge"] = commit(root, "rewrite", {"app.py": MODULE.replace(b"return", b"yield")})
    ids["marker"] = commit(root, "document <commit_msg>", {"util.py": b"def g():\n    return 1\n"})
    ids["empty"] = commit(root, "nothing", {})
    ids["deleted"] = commit(root, "drop util", {"util.py": None})
    git(root, "checkout", "-q", "-b", "side", ids["edit"])
    side = commit(root, "side change", {"other.py": b"y = 1\n"})
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "merge side", side)
    ids["merge"] = git(root, "rev-parse", "HEAD")
    return root, ids


def documents_of(root: Path, commit_id: str, config: CommitConfig) -> list[dict]:
    unit = {"repo_name": "demo", "commit_id": commit_id}
    return commit_documents(pygit2.Repository(str(root)), unit, config, PIIConfig())


def test_each_rule_names_its_reason(repo):
    root, ids = repo
    config = CommitConfig(max_changed_lines=100)
    expected = {
        "root": "root_commit",
        "vendored": "vendored_path",
        "binary": "binary_change",
        "added": "file_added",
        "huge": "huge_change",
        "marker": "format_marker_in_text",
        "empty": "no_file_change",
        "deleted": "file_deleted",
        "merge": "merge_commit",
    }
    for name, reason in expected.items():
        rows = documents_of(root, ids[name], config)
        assert [r["_reason"] for r in rows] == [reason], (name, rows)


def test_a_modified_file_becomes_a_commit_document(repo):
    root, ids = repo
    (row,) = documents_of(root, ids["edit"], CommitConfig(full_file_rate=0.0, max_window_lines=3))
    assert row["_reason"] is None and row["doc_format"] == "commit" and row["lang"] == "python"
    content = row["content"]
    assert content.startswith(COMMIT_BEFORE) and content.count(COMMIT_MSG) == content.count(COMMIT_AFTER) == 1
    before, rest = content[len(COMMIT_BEFORE) :].split(COMMIT_MSG)
    message, after = rest.split(COMMIT_AFTER)
    assert "return x + 30" in before and "return x * 30" in after
    assert message == "Fix f30, mail <EMAIL>"  # PII redacted in the message
    _, context = view_draw(ids["edit"], 0.0, 3)
    # The changed line plus `context` lines on each side, never the whole 180-line file.
    assert len(before.splitlines()) == 1 + 2 * context
    (whole,) = documents_of(root, ids["edit"], CommitConfig(full_file_rate=1.0))
    assert whole["content"].split(COMMIT_MSG)[0] == COMMIT_BEFORE + MODULE.decode()


def test_view_draw_is_seeded_per_commit_and_hits_the_rate():
    draws = [view_draw(f"{i:040x}", 0.2, 32) for i in range(4000)]
    assert draws == [view_draw(f"{i:040x}", 0.2, 32) for i in range(4000)]
    share = sum(full for full, _ in draws) / len(draws)
    assert 0.18 < share < 0.22
    assert {context for _, context in draws} == set(range(33))


def test_window_takes_context_around_all_hunks():
    lines = [f"{i}\n" for i in range(1, 21)]
    assert window(lines, [(5, 1), (9, 2)], 2) == "".join(lines[2:12])
    assert window(lines, [(5, 0)], 0) == ""  # a pure insertion after line 5, no context
    assert window(lines, [(1, 1)], 40) == "".join(lines)


def test_broken_objects_are_reject_rows(tmp_path, repo):
    source, ids = repo
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(source), str(broken)], check=True)
    # The blob of app.py after the edit commit goes missing (loose objects: no pack yet).
    blob = git(broken, "rev-parse", f"{ids['edit']}:app.py")
    (broken / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    (row,) = documents_of(broken, ids["edit"], CommitConfig())
    assert row["_reason"] == "broken_object"
    # A missing commit stops the history walk: one unit says where, the newer commits stay.
    victim = ids["empty"]
    (broken / ".git" / "objects" / victim[:2] / victim[2:]).unlink()
    units = list_commits(CommitConfig(repositories=(RepositoryConfig(path=str(broken), name="b"),)))
    assert any(u["commit_id"].startswith("walk-error:") for u in units)
    rows = [
        r
        for u in units
        for r in commit_documents(pygit2.Repository(str(broken)), u, CommitConfig(), PIIConfig())
    ]
    assert "broken_object" in {r["_reason"] for r in rows}


def test_missing_repository_is_an_input_error_unless_optional(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(CommitInputError, match="does not exist"):
        list_commits(CommitConfig(repositories=(RepositoryConfig(path=missing),)))
    assert (
        list_commits(
            CommitConfig(repositories=(RepositoryConfig(path=missing, required=False),)), log=lambda _: None
        )
        == []
    )


def test_spark_run_accounts_for_every_commit(spark, repo):
    """The built repository and the project's own history through Spark: kept + rejected = in."""
    root, _ = repo
    config = CommitConfig(
        repositories=(
            RepositoryConfig(path=str(root), name="demo"),
            RepositoryConfig(path=str(PROJECT_ROOT), name="codecook", max_commits=12),
        ),
        max_changed_lines=100,
    )
    result = ingest_commits(spark, config, PIIConfig())
    try:
        kept, rejected = result.kept.count(), result.rejected.count()
        assert kept + rejected == result.rows_in
        assert kept >= 2  # the edit commit and the project's own modifications
        reasons = {r["reason"] for r in result.rejected.select("reason").distinct().collect()}
        assert {"root_commit", "merge_commit", "vendored_path", "binary_change"} <= reasons
        assert (
            result.kept.filter("doc_format != 'commit' OR NOT startswith(content, '<commit_before>')").count()
            == 0
        )
    finally:
        result.release()
