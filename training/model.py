"""A Llama-style decoder: RMSNorm, rotary positions (configurable base), SwiGLU, grouped-query
attention through PyTorch's scaled_dot_product_attention, optional tied embeddings.

Parameter names and layouts match Hugging Face's `LlamaForCausalLM` (`model.layers.N.self_attn.q_proj`,
rotate-half RoPE, ...), so a state dict moves between the two without renaming or permuting:
that is what `training.hf_export` relies on in both directions.

Shapes in comments: B batch, T time, D model dim, H query heads, K kv heads, E head dim.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalize in fp32 even under bf16 autocast: the mean of squares underflows otherwise.
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape (max_len, head_dim) for rotate-half RoPE."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq)  # (T, E/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, E): both halves rotate by the same angle
    return angles.cos().float(), angles.sin().float()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, heads, T, E); cos/sin: (T, E) broadcast over batch and heads.
    return x * cos + rotate_half(x) * sin


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = config.n_heads, config.kv_heads, config.head_dim
        self.q_proj = nn.Linear(config.dim, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.dim, self.n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.dim, self.n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, time, _ = x.shape
        q = self.q_proj(x).view(batch, time, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, E)
        k = self.k_proj(x).view(batch, time, self.n_kv, self.head_dim).transpose(1, 2)  # (B, K, T, E)
        v = self.v_proj(x).view(batch, time, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.n_kv != self.n_heads:
            # Each kv head serves H/K query heads. Expanding is what SDPA's enable_gqa does too, but
            # done here it works with every SDPA backend and torch.compile.
            repeat = self.n_heads // self.n_kv
            k = k.repeat_interleave(repeat, dim=1)
            v = v.repeat_interleave(repeat, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, E)
        return self.o_proj(out.transpose(1, 2).reshape(batch, time, self.n_heads * self.head_dim))


class SwiGLU(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.dim, config.ffn_dim, bias=False)
        self.up_proj = nn.Linear(config.dim, config.ffn_dim, bias=False)
        self.down_proj = nn.Linear(config.ffn_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.dim, config.norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.dim, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    """The `model.` part of LlamaForCausalLM: embeddings, blocks, final norm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)


class LlamaLM(nn.Module):
    """Decoder-only LM. `forward(ids, targets)` returns (logits, loss); loss ignores `ignore_index`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.model = Backbone(config)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        # Buffers, not parameters; not saved (rebuilt from the config), so checkpoints stay portable.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        # Scaled init of the projections that write into the residual stream (GPT-2 style), so the
        # residual's variance does not grow with depth.
        for name, parameter in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(parameter, mean=0.0, std=config.init_std / math.sqrt(2 * config.n_layers))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)

    def forward(
        self, ids: torch.Tensor, targets: torch.Tensor | None = None, ignore_index: int = -100
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        time = ids.shape[1]
        if time > self.config.max_seq_len:
            raise ValueError(f"sequence of {time} tokens exceeds max_seq_len {self.config.max_seq_len}")
        cos, sin = self.rope_cos[:time], self.rope_sin[:time]
        x = self.model.embed_tokens(ids)  # (B, T, D)
        for block in self.model.layers:
            x = block(x, cos, sin)
        logits = self.lm_head(self.model.norm(x))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(
            logits.float().view(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=ignore_index
        )
        return logits, loss

    @classmethod
    def from_state_dict(cls, config: ModelConfig, state: dict[str, torch.Tensor]) -> LlamaLM:
        """A model holding `state`'s tensors, built without the random init (which costs seconds
        for a real-sized model only to be overwritten)."""
        with torch.device("meta"):
            model = cls(config)
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        missing = [m for m in missing if not (config.tie_embeddings and m == "lm_head.weight")]
        if missing or unexpected:
            raise RuntimeError(f"weights do not match the model: missing {missing}, unexpected {unexpected}")
        if config.tie_embeddings:
            model.lm_head.weight = model.model.embed_tokens.weight
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        device = model.model.embed_tokens.weight.device
        model.register_buffer("rope_cos", cos.to(device), persistent=False)
        model.register_buffer("rope_sin", sin.to(device), persistent=False)
        return model

    def resize_vocab(self, vocab_size: int) -> None:
        """Grow the embedding (and head) to `vocab_size`; new rows start at the mean embedding so
        the added special tokens begin as an average token rather than noise."""
        old = self.model.embed_tokens.weight.data
        if vocab_size == old.shape[0]:
            return
        if vocab_size < old.shape[0]:
            raise ValueError(f"cannot shrink the vocabulary from {old.shape[0]} to {vocab_size}")
        grown = old.mean(0, keepdim=True).repeat(vocab_size - old.shape[0], 1)
        self.model.embed_tokens = nn.Embedding(vocab_size, old.shape[1]).to(old.device, old.dtype)
        self.model.embed_tokens.weight.data.copy_(torch.cat([old, grown]))
        old_head = self.lm_head.weight.data
        self.lm_head = nn.Linear(old.shape[1], vocab_size, bias=False).to(old.device, old.dtype)
        if self.config.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        else:
            head_grown = old_head.mean(0, keepdim=True).repeat(vocab_size - old_head.shape[0], 1)
            self.lm_head.weight.data.copy_(torch.cat([old_head, head_grown]))
        from dataclasses import replace

        self.config = replace(self.config, vocab_size=vocab_size)


def parameter_counts(model: LlamaLM) -> dict[str, int]:
    """Total (tied weights once), input embedding, and the weights used in matmuls per token."""
    config = model.config
    total = sum(p.numel() for p in model.parameters())
    embedding = model.model.embed_tokens.weight.numel()
    # The output projection is a matmul even when tied to the embedding; the embedding lookup is not.
    matmul = total - embedding + config.vocab_size * config.dim
    norms = sum(p.numel() for n, p in model.named_parameters() if "norm" in n)
    return {"total": total, "embedding": embedding, "matmul": matmul - norms, "norms": norms}


def flops_per_token(config: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token, forward + backward (the PaLM paper's appendix B estimate):

        6 * N  +  12 * L * D * T

    N: weights taking part in a matmul per token (every linear layer, the output head included,
    the embedding lookup and norms excluded); 6 = 2 FLOPs per multiply-add x (1 forward + 2
    backward). The second term is attention's QK^T and AV products: per layer 2 * 2 * T * D in the
    forward pass (T keys per query, D = H * E), times 3 for the backward; no discount for the
    causal mask, as in PaLM, so MFU is comparable across code bases.
    """
    per_layer = (
        config.dim * config.n_heads * config.head_dim  # q_proj
        + 2 * config.dim * config.kv_heads * config.head_dim  # k_proj, v_proj
        + config.n_heads * config.head_dim * config.dim  # o_proj
        + 3 * config.dim * config.ffn_dim  # gate, up, down
    )
    matmul_params = config.n_layers * per_layer + config.vocab_size * config.dim  # + lm_head
    return 6.0 * matmul_params + 12.0 * config.n_layers * config.dim * seq_len
