"""`python -m training.entrypoint --config FILE`: one training run, resumable, with or without Dagster.

Launched by the `checkpoint` asset through Dagster Pipes (a local subprocess, or a Kubernetes pod
where `accelerate launch` starts one process per GPU), or by hand. Under Pipes the main process
streams its log lines to Dagster and reports the materialization (final loss, tokens, MFU, MLflow
run); without Pipes it just prints. Rerunning the same command after a kill resumes from the last
checkpoint in the config's `output_dir`.

How the Pipes side works: the launcher sets `DAGSTER_PIPES_CONTEXT` (the asset, run id, extras) and
`DAGSTER_PIPES_MESSAGES` (where to write messages) in the environment. `open_dagster_pipes` with its
default loaders reads both, so the same code serves every launcher: the subprocess client asks for
a temporary file, dagster-k8s' `PipesK8sClient` asks for `{"stdio": "stderr"}`, i.e. one JSON line
per message on stderr, which it reads back from the pod's log (no shared filesystem needed).
`dagster-pipes` is a hard dependency (it is in the training image): a missing or broken install is
an ImportError, never a silent run without Dagster.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from dagster_pipes import PipesContext, PipesMappingParamsLoader, open_dagster_pipes

from training.config import load_run_config
from training.loop import train

# What the materialization reports, with its Pipes metadata type: the summary of `train` (the
# `checkpoint` asset builds its manifest from these, so on a pod nothing has to be read back from
# the run folder).
REPORTED = {
    "final_loss": "float",
    "first_loss": "float",
    "steps": "int",
    "tokens": "int",
    "mfu": "float",
    "mfu_formula": "text",
    "peak_flops": "float",
    "peak_source": "text",
    "flops_per_token": "float",
    "params": "int",
    "preset": "text",
    "mlflow_run_id": "text",
    "hf_model_dir": "text",
    "tokenizer_dir": "text",
    "output_dir": "text",
}


def is_main_rank(environ: Mapping[str, str] = os.environ) -> bool:
    """RANK is set per process by `accelerate launch` (torchrun); a single process has none."""
    return int(environ.get("RANK", "0")) == 0


def launched_by_pipes(environ: Mapping[str, str] = os.environ) -> bool:
    """True when a Dagster Pipes client started this process (it set DAGSTER_PIPES_CONTEXT)."""
    return PipesMappingParamsLoader(environ).is_dagster_pipes_process()


@contextlib.contextmanager
def pipes_session(environ: Mapping[str, str] = os.environ) -> Iterator[PipesContext | None]:
    """The Pipes context on the main rank of a Pipes-launched process, else None.

    Other ranks inherit the same environment but stay silent: one process reports, once. Closing
    the context (also on an exception, which it forwards to Dagster) writes the `closed` message.
    """
    if not (is_main_rank(environ) and launched_by_pipes(environ)):
        yield None
        return
    with open_dagster_pipes(params_loader=PipesMappingParamsLoader(environ)) as pipes:
        yield pipes


def materialization_metadata(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The summary of a finished run as typed Pipes metadata, plus who reported it."""
    metadata: dict[str, dict[str, Any]] = {}
    for key, kind in REPORTED.items():
        value = summary.get(key)
        if value is None:
            metadata[key] = {"raw_value": None, "type": "null"}
        else:
            cast = {"float": float, "int": int, "text": str}[kind]
            metadata[key] = {"raw_value": cast(value), "type": kind}
    # The pod name on Kubernetes: which process (and where) trained this checkpoint.
    metadata["reported_by"] = {
        "raw_value": f"{socket.gethostname()} pid {os.getpid()} rank {os.environ.get('RANK', '0')}",
        "type": "text",
    }
    return metadata


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
    with pipes_session() as pipes:
        summary = train(config, pipes=pipes, stop_after_steps=args.stop_after_steps)
        if pipes is not None and summary["finished"]:
            pipes.report_asset_materialization(metadata=materialization_metadata(summary))
    return 0 if summary["finished"] or args.stop_after_steps else 1


if __name__ == "__main__":
    sys.exit(main())
