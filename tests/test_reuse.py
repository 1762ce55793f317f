"""The stage store: keys follow settings and inputs; stored outputs come back whole and independent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from contracts.reuse import StageStore, files_fingerprint, stage_key
from contracts.storage import MANIFEST, StorageLayout


def fake_output(layout: StorageLayout, stage: str, rows: str) -> None:
    paths = layout.stage(stage)
    Path(paths.data_dir).mkdir(parents=True)
    Path(paths.rejected_dir).mkdir(parents=True)
    Path(paths.data_dir, "part-00000.parquet").write_text(rows)
    Path(paths.rejected_dir, "part-00000.parquet").write_text("rejects")
    Path(paths.data_dir, MANIFEST).write_text(json.dumps({"stage": stage, "checksum": f"sha256:{rows}"}))


def test_keys_change_with_settings_and_inputs_only():
    base = stage_key("near_dedup", {"threshold": 0.7}, {"exact_dedup": "sha256:a"})
    assert base == stage_key("near_dedup", {"threshold": 0.7}, {"exact_dedup": "sha256:a"})
    assert base != stage_key("near_dedup", {"threshold": 0.8}, {"exact_dedup": "sha256:a"})
    assert base != stage_key("near_dedup", {"threshold": 0.7}, {"exact_dedup": "sha256:b"})
    assert base != stage_key("exact_dedup", {"threshold": 0.7}, {"exact_dedup": "sha256:a"})


def test_a_published_output_is_restored_into_another_root_as_hard_links(tmp_path):
    store = StageStore(tmp_path / "stages")
    first, second = StorageLayout(str(tmp_path / "a")), StorageLayout(str(tmp_path / "b"))
    fake_output(first, "exact_dedup", "rows-1")
    key = stage_key("exact_dedup", {}, {"raw_code": "sha256:x"})
    assert store.lookup("exact_dedup", key) is None
    store.publish("exact_dedup", key, first.stage("exact_dedup"), {"computed_by": "a"})
    record = store.restore("exact_dedup", key, second.stage("exact_dedup"))
    assert record["computed_by"] == "a"
    restored = Path(second.stage("exact_dedup").data_dir)
    assert (restored / MANIFEST).is_file()
    assert (restored / "part-00000.parquet").read_text() == "rows-1"
    assert Path(second.stage("exact_dedup").rejected_dir, "part-00000.parquet").read_text() == "rejects"
    original = Path(first.stage("exact_dedup").data_dir, "part-00000.parquet")
    assert os.path.samefile(original, restored / "part-00000.parquet")
    # Publishing the same key again (another variant that computed it too) keeps the first entry.
    store.publish("exact_dedup", key, second.stage("exact_dedup"), {"computed_by": "b"})
    assert store.lookup("exact_dedup", key)["computed_by"] == "a"


def test_restore_replaces_an_older_output_and_unfinished_outputs_are_refused(tmp_path):
    store = StageStore(tmp_path / "stages")
    first, second = StorageLayout(str(tmp_path / "a")), StorageLayout(str(tmp_path / "b"))
    fake_output(first, "code_mix", "new")
    fake_output(second, "code_mix", "old")
    key = stage_key("code_mix", {"seed": 1}, {})
    store.publish("code_mix", key, first.stage("code_mix"), {})
    store.restore("code_mix", key, second.stage("code_mix"))
    data = Path(second.stage("code_mix").data_dir)
    assert (data / "part-00000.parquet").read_text() == "new"
    assert (
        sorted(p.name for p in data.parent.iterdir() if p.name.startswith((".restore", "code_mix.old"))) == []
    )
    Path(first.stage("code_mix").manifest_path).unlink()
    with pytest.raises(FileNotFoundError, match="only finished outputs"):
        store.publish("code_mix", "other", first.stage("code_mix"), {})
    with pytest.raises(KeyError):
        store.restore("code_mix", "missing", second.stage("code_mix"))


def test_the_source_fingerprint_follows_file_changes(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    before = files_fingerprint([str(tmp_path / "src")])
    assert before == files_fingerprint([str(tmp_path / "src")])
    (tmp_path / "src" / "a.py").write_text("x = 22\n")
    assert files_fingerprint([str(tmp_path / "src")]) != before
