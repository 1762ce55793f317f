"""What the Pipes tests of the `checkpoint` asset share: a tiny recipe, the asset graph up to the
checkpoint, and the assertions that tell "reported through Dagster Pipes" apart from "read back from
the run folder's summary.json".
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tests._training_data import stdlib_documents, write_stage_output

PIPES_WARNINGS = (
    "[pipes] did not receive any messages from external process",
    "[pipes] did not receive closed message from external process",
)


def write_recipe(path: Path, name: str, *, steps: int, training_extra: str = "") -> Path:
    """The tiny preset on 80 stdlib modules: seconds per run on one core."""
    path.write_text(
        f"name: {name}\n"
        "tokenizer:\n  vocab_size: 512\n  seq_len: 64\n  docs_per_shard: 50\n  workers: 1\n"
        "  anneal: {inputs: [code_mix], optional_inputs: [], languages: [python]}\n"
        "training:\n  preset: tiny\n  model: {dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2}\n"
        f"  steps: {steps}\n  micro_batch_size: 4\n  lr: 0.005\n  warmup_steps: 2\n"
        f"  checkpoint_every: {steps // 2}\n  log_every: 4\n  cpu_threads: 1\n" + training_extra
    )
    return path


def materialize_checkpoint(home: Path, recipe: Path, *, checks: bool = True):
    """tokenizer -> token_shards -> checkpoint (+ their blocking checks unless `checks` is False)
    on an instance whose event log the test can read; returns (result, instance)."""
    import dagster as dg

    from assets import training as training_assets
    from orchestration.resources import MLflowResource, RecipeResource, StorageResource

    write_stage_output(home, "code_mix", stdlib_documents(80, max_bytes=20_000))
    definitions = [training_assets.tokenizer, training_assets.token_shards, training_assets.checkpoint]
    if checks:
        definitions += [
            training_assets.tokenizer_round_trip_check,
            training_assets.token_shards_check,
            training_assets.checkpoint_check,
        ]
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        definitions,
        resources={
            "recipe": RecipeResource(path=str(recipe)),
            "storage": StorageResource(root=str(home)),
            "mlflow": MLflowResource(),
        },
        instance=instance,
    )
    return result, instance


def assert_reported_through_pipes(result, instance, *, steps: int) -> dict:
    """The checkpoint's metadata and log lines came from the training process through Pipes.

    - `reported_by` names a process other than this one: only the entry point writes that key;
    - the values the asset's manifest was built from equal the ones Pipes delivered (`summary_source`);
    - the training loop's own lines (`step 4/N loss ...`, `checkpoint saved: ...`) are Dagster log
      events: the process's stdout is not captured into the event log, Pipes `log` messages are;
    - Dagster saw the `opened` and `closed` messages and none of its "did not receive" warnings.
    Returns the materialization's metadata as plain values.
    """
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert all(c.passed for c in checks), [(c.check_name, c.metadata) for c in checks]
    metadata = {
        key: value.value
        for key, value in result.asset_materializations_for_node("checkpoint")[0].metadata.items()
    }
    assert metadata["summary_source"] == "dagster pipes"
    reporter = metadata["reported_by"]
    assert reporter.endswith(" rank 0") and f" pid {os.getpid()} " not in reporter, reporter
    assert metadata["steps"] == steps and metadata["final_loss"] < metadata["first_loss"]
    assert metadata["mlflow_run_id"] and metadata["flops_per_token"] > 0

    logs = [e for e in instance.all_logs(result.run_id) if not e.is_dagster_event]
    messages = [e.user_message for e in logs]
    assert "[pipes] external process successfully opened dagster pipes." in messages
    for warning in PIPES_WARNINGS:
        assert not any(warning in m for m in messages), warning
    assert not [m for e, m in zip(logs, messages, strict=True) if e.level >= logging.ERROR]
    assert any(m.startswith("training ") and "new run" in m for m in messages), messages
    assert any(m.startswith(f"step 4/{steps} loss ") for m in messages), messages
    assert any(m.startswith("checkpoint saved: ") for m in messages), messages
    return metadata
