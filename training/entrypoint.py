"""`python -m training.entrypoint --config FILE`: one training run, resumable, with or without Dagster.

Launched by the `checkpoint` asset through Dagster Pipes (a local subprocess, or a Kubernetes pod
where `accelerate launch` starts one process per GPU), or by hand. Under Pipes the main process
streams its log lines to Dagster and reports the materialization (final loss, tokens, MFU, MLflow
run); without Pipes it just prints. Rerunning the same command after a kill resumes from the last
checkpoint in the config's `output_dir`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from training.config import load_run_config
from training.loop import train


def _pipes_session():
    """Dagster Pipes context when this process was launched by Pipes, on the main rank only."""
    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext(None)
    try:
        from dagster_pipes import is_dagster_pipes_process, open_dagster_pipes
    except ImportError:  # a slim image without dagster-pipes still trains
        return contextlib.nullcontext(None)
    if not is_dagster_pipes_process():
        return contextlib.nullcontext(None)
    return open_dagster_pipes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.entrypoint", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--config", required=True, help="Run config YAML (training, data, output_dir, tracking)."
    )
    parser.add_argument(
        "--stop-after-steps",
        type=int,
        default=None,
        help="End this invocation after N more steps (with a checkpoint), as a preemption would.",
    )
    args = parser.parse_args(argv)
    config = load_run_config(args.config)
    with _pipes_session() as pipes:
        summary = train(config, pipes=pipes, stop_after_steps=args.stop_after_steps)
        if pipes is not None and summary["finished"]:
            metadata = {
                "final_loss": {"raw_value": summary["final_loss"], "type": "float"},
                "first_loss": {"raw_value": summary["first_loss"], "type": "float"},
                "steps": {"raw_value": summary["steps"], "type": "int"},
                "tokens": {"raw_value": summary["tokens"], "type": "int"},
                "mfu": {"raw_value": summary["mfu"], "type": "float"},
                "mfu_formula": {"raw_value": summary["mfu_formula"], "type": "text"},
                "params": {"raw_value": summary["params"], "type": "int"},
                "mlflow_run_id": {"raw_value": summary["mlflow_run_id"] or "", "type": "text"},
                "hf_model_dir": {"raw_value": summary.get("hf_model_dir", ""), "type": "text"},
            }
            pipes.report_asset_materialization(metadata=metadata)
    return 0 if summary["finished"] or args.stop_after_steps else 1


if __name__ == "__main__":
    sys.exit(main())
