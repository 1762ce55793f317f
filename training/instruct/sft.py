"""Supervised fine-tuning data: chat-formatted pairs, loss on the response tokens only, two stages.

    pairs (instruction, response) -> chat template -> prompt ids + response ids
        -> one row of seq_len + 1 tokens per example (padded) + a loss mask (1 = response token)
        -> an SFT shard set per stage: the pretraining shard format plus mask-NNNNN.bin

An SFT shard set is a folder the training loop reads like pretraining shards (`ShardReader`):

    shard-00000.bin   token ids, shape (rows, seq_len + 1)
    mask-00000.bin    uint8, same shape: 1 where the token is a target the loss counts
    index.json        row_len, dtype, per shard: file, mask_file, rows, first_row
    _manifest.json    totals (examples, tokens, response tokens, by source), pad/eos ids; last

The loop sees `loss_mask: true` in the manifest and sets every target whose mask is 0 (the system
and user turns, the assistant header, the padding) to -100, so only the response is learned.

Two stages as OpenCoder: stage 1 a broad mixture, stage 2 the execution-verified pairs and other
high-quality code sets. `training.loop` trains stage 1 as its main set and switches to stage 2 for
the schedule's decay (the `anneal` shards): the learning rate anneals on the best data.

The sources a mixture may name are `SFT_SOURCES`: the self-aligned pairs, and MBPP's train, prompt
and validation splits (task ids 601-974, 1-10, 511-600) shipped in training/data. Never HumanEval,
never MBPP's test split (11-510): the tuned model is scored on those. Dagster-free.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.instruct.config import SFTConfig

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
MBPP_SPLITS = {
    "mbpp_prompt": range(1, 11),
    "mbpp_test": range(11, 511),
    "mbpp_validation": range(511, 601),
    "mbpp_train": range(601, 975),
}
"""MBPP's published split by task id (Austin et al., 2021)."""
MASKS_PREFIX = "mask-"
PAD_CANDIDATES = ("<fim_pad>", "<|endoftext|>", "<pad>", "<unk>")
"""Tokens tried, in order, as the padding of example rows (special tokens no reply contains)."""


def mbpp_pairs(split: str) -> list[dict[str, str]]:
    """MBPP problems of a split as pairs: the statement with its first test as the instruction (as
    MBPP prompts show it), the reference solution in a python block as the response."""
    if split == "mbpp_test":
        raise ValueError("the MBPP test split is what the tuned model is scored on; it is never SFT data")
    ids = MBPP_SPLITS[split]
    pairs = []
    with open(DATA_DIR / "mbpp.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if int(row["task_id"]) not in ids:
                continue
            code = row["code"].replace("\r\n", "\n").replace("\t", "    ").strip()
            tests = "\n".join(row["test_list"])
            pairs.append(
                {
                    "id": f"mbpp/{row['task_id']}",
                    "instruction": f"{row['text'].strip()}\nYour code should pass this test:\n{row['test_list'][0]}",
                    "response": f"```python\n{code}\n```",
                    "tests": tests,
                }
            )
    return pairs


def load_source(name: str, self_align_pairs: Sequence[dict[str, Any]] | None = None) -> list[dict[str, str]]:
    """The pairs (id, instruction, response) of one named SFT source."""
    if name == "self_align":
        if self_align_pairs is None:
            raise ValueError("the mixture names self_align but no self-aligned pairs were given")
        return [
            {"id": r.get("id") or r["doc_id"], "instruction": r["instruction"], "response": r["response"], "tests": r.get("tests") or ""}
            for r in self_align_pairs
        ]  # fmt: skip
    if name in MBPP_SPLITS:
        return mbpp_pairs(name)
    raise ValueError(f"unknown SFT source {name!r}")


def _unit(seed: int, *parts: object) -> float:
    digest = hashlib.sha256("\0".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def mixture(
    weights: dict[str, float], sources: dict[str, list[dict[str, str]]], seed: int
) -> list[dict[str, str]]:
    """A stage's examples: each pair of a source used floor(w) times, plus once more when a hash
    of (seed, source, id, copy) falls below the fractional part. Ordered by (source, id, copy)."""
    examples = []
    for name in sorted(weights):
        weight = weights[name]
        for pair in sources[name]:
            copies = int(weight) + (1 if _unit(seed, name, pair["id"], "extra") < weight - int(weight) else 0)
            for copy in range(copies):
                examples.append({**pair, "source": name, "copy": copy})
    return examples


def sft_tokenizer(model_dir: str | Path, target: str | Path) -> Path:
    """The model's tokenizer files in `target`, with its chat template inside tokenizer_config.json.

    transformers may save the template beside it (chat_template.jinja), which the training export
    (`training.tokenizer.copy_tokenizer_files`) does not carry; inside the config it reaches the
    tuned model's folder, so the tuned model answers chat prompts like the base model."""
    source, target = Path(model_dir), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    if not config.get("chat_template") and (source / "chat_template.jinja").is_file():
        config["chat_template"] = (source / "chat_template.jinja").read_text(encoding="utf-8")
    if not config.get("chat_template"):
        raise ValueError(f"{model_dir}: no chat template (tokenizer_config.json or chat_template.jinja)")
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return target


# --------------------------------------------------------------------------------------------------
# Chat formatting with a loss mask


class ChatFormatter:
    """Pairs as token ids through the tokenizer's chat template, with the response positions marked.

    The prompt (every turn up to and including the assistant header) and the rest (response and
    end-of-turn) are encoded separately and concatenated, so the mask boundary is exact whatever
    the tokenizer merges across it."""

    def __init__(self, tokenizer_dir: str | Path) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{tokenizer_dir}: the tokenizer has no chat template; SFT needs one")
        self.vocab_size = len(self.tokenizer)
        self.eos_id = int(self.tokenizer.eos_token_id)
        # Padding must never equal a token the loss should see (the loop drops every target equal
        # to the pad id): never the end-of-turn token, which SmolLM2 also names its pad token.
        vocabulary = self.tokenizer.get_vocab()
        usable = [vocabulary[t] for t in PAD_CANDIDATES if t in vocabulary and vocabulary[t] != self.eos_id]
        if not usable:
            raise ValueError(f"{tokenizer_dir}: none of {PAD_CANDIDATES} is a token other than end-of-turn")
        self.pad_id = int(usable[0])

    def encode(self, instruction: str, response: str) -> tuple[list[int], list[int]]:
        """(token ids, loss mask) of one example."""
        user = [{"role": "user", "content": instruction}]
        prompt = self.tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        full = self.tokenizer.apply_chat_template(
            [*user, {"role": "assistant", "content": response}], tokenize=False
        )
        if not full.startswith(prompt):
            raise ValueError("the chat template renders the prompt differently inside the full conversation")
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = self.tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
        return list(prompt_ids) + list(answer_ids), [0] * len(prompt_ids) + [1] * len(answer_ids)


@dataclass
class StageSet:
    """What was written for one stage."""

    folder: str
    examples: int
    rejected: list[dict[str, Any]]
    manifest: dict[str, Any]


def write_sft_set(
    examples: Sequence[dict[str, Any]],
    formatter: ChatFormatter,
    folder: str | Path,
    *,
    seq_len: int,
    stage: str,
    rows_per_shard: int = 4096,
) -> StageSet:
    """One SFT shard set (see the module docstring), written into a temporary folder and renamed
    into place with its manifest last. Examples longer than seq_len + 1 tokens are rejects."""
    from contracts.storage import MANIFEST, publish_folder

    row_len = seq_len + 1
    dtype = np.dtype("<u2") if formatter.vocab_size <= 2**16 else np.dtype("<u4")
    tokens_rows, mask_rows, rejected = [], [], []
    by_source: Counter[str] = Counter()
    response_tokens = 0
    for example in examples:
        ids, mask = formatter.encode(example["instruction"], example["response"])
        problem = None
        if len(ids) > row_len:
            problem = ("too_long", f"{len(ids)} tokens > seq_len + 1 = {row_len}")
        elif sum(mask[1:]) == 0:
            problem = ("empty_response", "the response encodes to no tokens")
        elif any(m and token == formatter.pad_id for token, m in zip(ids, mask, strict=True)):
            problem = ("contains_pad_token", f"the response holds the padding token id {formatter.pad_id}")
        if problem:
            rejected.append(
                {
                    "id": example["id"],
                    "source": example["source"],
                    "stage": stage,
                    "reason": problem[0],
                    "detail": problem[1],
                }
            )
            continue
        pad = row_len - len(ids)
        tokens_rows.append(np.asarray(ids + [formatter.pad_id] * pad, dtype=dtype))
        mask_rows.append(np.asarray(mask + [0] * pad, dtype=np.uint8))
        # Targets are positions 1..row_len-1: the first token is never a target.
        response_tokens += int(sum(mask[1:]))
        by_source[example["source"]] += 1
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        shards = []
        for number, start in enumerate(range(0, len(tokens_rows), rows_per_shard)):
            tokens = np.stack(tokens_rows[start : start + rows_per_shard])
            masks = np.stack(mask_rows[start : start + rows_per_shard])
            name = f"shard-{number:05d}.bin"
            mask_name = f"{MASKS_PREFIX}{number:05d}.bin"
            tokens.tofile(build / name)
            masks.tofile(build / mask_name)
            shards.append({"file": name, "mask_file": mask_name, "rows": len(tokens), "first_row": start,
                           "tokens": int(tokens.size)})  # fmt: skip
        (build / "index.json").write_text(
            json.dumps({"row_len": row_len, "dtype": dtype.str, "shards": shards}, indent=2), encoding="utf-8"
        )
        manifest = {
            "stage": stage,
            "kind": "sft",
            "loss_mask": True,
            "rows": len(tokens_rows),
            "examples": len(tokens_rows),
            "examples_by_source": dict(sorted(by_source.items())),
            "rejected": len(rejected),
            "tokens": int(len(tokens_rows) * row_len),
            "response_tokens": response_tokens,
            "seq_len": seq_len,
            "vocab_size": formatter.vocab_size,
            "pad_id": formatter.pad_id,
            "eos_id": formatter.eos_id,
            "fim_share": 0.0,
        }
        (build / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        publish_folder(str(build), str(target))
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return StageSet(str(target), len(tokens_rows), rejected, manifest)


class LossMasks:
    """The masks of an SFT shard set, row-aligned with its `ShardReader`."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        self.row_len = int(index["row_len"])
        shards = [s for s in index["shards"] if s["rows"] > 0]
        self._maps = [
            np.memmap(folder / s["mask_file"], dtype=np.uint8, mode="r", shape=(s["rows"], self.row_len))
            for s in shards
        ]
        self._starts = np.array([s["first_row"] for s in shards], dtype=np.int64)

    def rows(self, indices) -> np.ndarray:
        """A (len(indices), row_len) uint8 batch, the same rows `ShardReader.rows(indices)` gives."""
        out = []
        for index in indices:
            shard = int(np.searchsorted(self._starts, int(index), side="right") - 1)
            out.append(np.asarray(self._maps[shard][int(index) - self._starts[shard]]))
        return np.stack(out)


def open_loss_masks(folder: str | Path | None) -> LossMasks | None:
    """The loss masks of a shard set whose manifest says `loss_mask: true`; None for pretraining
    shards (every target counts there, bar padding)."""
    if folder is None:
        return None
    manifest_path = Path(folder) / "_manifest.json"
    if not manifest_path.is_file():
        return None
    if not json.loads(manifest_path.read_text(encoding="utf-8")).get("loss_mask"):
        return None
    return LossMasks(folder)


def build_sft_sets(
    config: SFTConfig,
    self_align_pairs: Sequence[dict[str, Any]],
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    *,
    matcher: Callable[[str], tuple[str, str] | None],
) -> dict[str, Any]:
    """Both stages' shard sets under out_dir/stage1 and out_dir/stage2, every pair checked by
    `matcher` (HumanEval and the MBPP test split) first. Returns a summary with every pair that
    was dropped and why (`contaminated` pairs never reach a shard)."""
    names = sorted(set(config.stage1) | set(config.stage2))
    sources: dict[str, list[dict[str, str]]] = {}
    dropped: list[dict[str, Any]] = []
    for name in names:
        clean = []
        for pair in load_source(name, self_align_pairs):
            verdict = matcher(f"{pair['instruction']}\n{pair['response']}")
            if verdict:
                dropped.append({"id": pair["id"], "source": name, "stage": "sft_data", "reason": verdict[0], "detail": verdict[1][:500]})  # fmt: skip
            else:
                clean.append(pair)
        sources[name] = clean
    formatter = ChatFormatter(tokenizer_dir)
    sets = {}
    for stage, weights in (("stage1", config.stage1), ("stage2", config.stage2)):
        if not weights:
            continue
        examples = mixture(weights, sources, config.seed)
        if not examples:
            raise ValueError(f"sft {stage}: the mixture {weights} has no examples")
        written = write_sft_set(
            examples, formatter, Path(out_dir) / stage, seq_len=config.seq_len, stage=stage
        )
        dropped.extend(written.rejected)
        sets[stage] = written.manifest
    return {
        "sets": sets,
        "sources": {name: len(pairs) for name, pairs in sources.items()},
        "dropped": dropped,
        "dropped_by_reason": dict(Counter(d["reason"] for d in dropped)),
        "vocab_size": formatter.vocab_size,
    }
