"""SFT data and training: chat formatting, loss on response tokens only, two-stage mixtures.

A small BPE is trained on the standard library (real code) and given a ChatML-style template, so
the formatter, the shard writer and the training loop run for real in seconds; SmolLM2's own
tokenizer takes over a minute to read from its GGUF on this machine and is exercised by the demo.
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from training.instruct.config import SFTConfig
from training.instruct.sft import (
    ChatFormatter,
    LossMasks,
    build_sft_sets,
    load_source,
    mbpp_pairs,
    mixture,
    open_loss_masks,
)

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
RESPONSE = "```python\ndef add(a, b):\n    return a + b\n```"


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    from training.tokenizer import save_tokenizer, train_bpe

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(stdlib.glob("[a-f]*.py"))[:40]]
    folder = tmp_path_factory.mktemp("tokenizer")
    save_tokenizer(train_bpe(texts, vocab_size=600), folder, chat_template=CHAT_TEMPLATE)
    return folder


def test_loss_mask_marks_exactly_the_response(tokenizer_dir):
    formatter = ChatFormatter(tokenizer_dir)
    ids, mask = formatter.encode("Add two numbers.", RESPONSE)
    decode = formatter.tokenizer.decode
    assert decode([t for t, m in zip(ids, mask, strict=True) if m]) == RESPONSE + "<|im_end|>\n"
    assert decode([t for t, m in zip(ids, mask, strict=True) if not m]) == (
        "<|im_start|>user\nAdd two numbers.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert formatter.pad_id != formatter.eos_id


def test_mbpp_test_split_is_never_sft_data():
    train = mbpp_pairs("mbpp_train")
    assert len(train) == 374 and all(601 <= int(p["id"].split("/")[1]) <= 974 for p in train)
    assert len(load_source("mbpp_prompt")) == 10
    with pytest.raises(ValueError, match="test split"):
        mbpp_pairs("mbpp_test")
    with pytest.raises(ValueError, match="unknown SFT source"):
        SFTConfig(stage1={"mbpp_test": 1.0})


def test_mixture_weights_are_seeded_and_fractional():
    pairs = {"mbpp_train": mbpp_pairs("mbpp_train")}
    half = mixture({"mbpp_train": 0.5}, pairs, seed=1)
    assert 150 < len(half) < 225
    assert half == mixture({"mbpp_train": 0.5}, pairs, seed=1)
    assert half != mixture({"mbpp_train": 0.5}, pairs, seed=2)
    assert len(mixture({"mbpp_train": 2.0}, pairs, seed=1)) == 2 * 374


def test_contaminated_and_overlong_pairs_never_reach_a_shard(tokenizer_dir, tmp_path):
    from orchestration.instruct_stages import benchmark_matcher
    from training.evaluation.problems import load_humaneval

    humaneval = load_humaneval()["HumanEval/0"]
    pairs = [
        {"doc_id": "clean", "instruction": "Add two numbers a and b.", "response": RESPONSE, "tests": "assert add(1, 2) == 3"},
        {"doc_id": "leak", "instruction": humaneval.prompt, "response": humaneval.prompt + "    return True\n", "tests": "x"},
        {"doc_id": "long", "instruction": "Explain. " * 400, "response": RESPONSE, "tests": "x"},
    ]  # fmt: skip
    config = SFTConfig(stage1={"mbpp_prompt": 1.0}, stage2={"self_align": 1.0}, seq_len=256)
    summary = build_sft_sets(
        config, pairs, tokenizer_dir, tmp_path, matcher=benchmark_matcher(mbpp_test_only=True)
    )
    reasons = {d["id"]: d["reason"] for d in summary["dropped"]}
    # MBPP prompt-split items that look like test-split items (mbpp/4 ~ 232, mbpp/10 ~ 496) go too.
    mbpp_dropped = [
        d for d in summary["dropped"] if d["source"] == "mbpp_prompt" and d["stage"] == "sft_data"
    ]
    assert (
        summary["sources"]["mbpp_prompt"] + len(mbpp_dropped) == 10 and summary["sources"]["self_align"] == 2
    )
    assert reasons["leak"] == "benchmark_exact" and reasons["long"] == "too_long"
    stage2 = summary["sets"]["stage2"]
    assert stage2["examples"] == 1 and stage2["examples_by_source"] == {"self_align": 1}
    masks = open_loss_masks(tmp_path / "stage2")
    assert isinstance(masks, LossMasks)
    tokens = np.fromfile(
        tmp_path / "stage2" / "shard-00000.bin",
        dtype=np.dtype(json.loads((tmp_path / "stage2" / "index.json").read_text())["dtype"]),
    )
    assert int(masks.rows([0]).sum()) == stage2["response_tokens"] + int(masks.rows([0])[0, 0])
    assert tokens.size == 257
    assert open_loss_masks(tmp_path / "missing") is None


def test_two_stage_sft_trains_on_response_tokens_and_switches_stage(tokenizer_dir, tmp_path):
    from training.config import DataPaths, RunConfig, TrainConfig
    from training.loop import train

    pairs = [{"doc_id": "p1", "instruction": "Add two numbers a and b.", "response": RESPONSE, "tests": ""}]
    config = SFTConfig(stage1={"mbpp_prompt": 1.0}, stage2={"self_align": 3.0}, seq_len=256)
    build_sft_sets(config, pairs, tokenizer_dir, tmp_path / "sets", matcher=lambda text: None)
    run = RunConfig(
        training=TrainConfig(
            preset="tiny", steps=2, micro_batch_size=2, warmup_steps=1, decay_fraction=0.5,
            checkpoint_every=1, log_every=1, log_checkpoint_artifacts=False, cpu_threads=1,
        ),
        data=DataPaths(
            train_shards=str(tmp_path / "sets" / "stage1"),
            anneal_shards=str(tmp_path / "sets" / "stage2"),
            tokenizer_dir=str(tokenizer_dir),
        ),
        output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    first = train(run, stop_after_steps=1, echo=lambda line: None)
    assert not first["finished"]
    summary = train(run, echo=lambda line: None)  # resumes at step 1
    assert summary["finished"] and summary["steps"] == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["mix"] for r in records] == ["main", "anneal"]
    assert all(np.isfinite(r["loss"]) for r in records)
    assert (tmp_path / "run" / "hf" / "tokenizer_config.json").is_file()


def test_chat_template_saved_beside_the_config_moves_inside_it(tokenizer_dir, tmp_path):
    import shutil

    from training.instruct.sft import sft_tokenizer

    model = tmp_path / "model"
    shutil.copytree(tokenizer_dir, model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    (model / "chat_template.jinja").write_text(config.pop("chat_template"))
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    target = sft_tokenizer(model, tmp_path / "sft")
    assert json.loads((target / "tokenizer_config.json").read_text())["chat_template"] == CHAT_TEMPLATE
    assert ChatFormatter(target).encode("Hi.", "Hello.")[1][-1] == 1
    (model / "chat_template.jinja").unlink()
    with pytest.raises(ValueError, match="no chat template"):
        sft_tokenizer(model, tmp_path / "other")
