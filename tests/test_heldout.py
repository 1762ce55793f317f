"""Held-out evaluation set: shards that leave it out, per-document bits per byte, per-example FIM."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests._training_data import stdlib_documents, write_stage_output
from training import fim
from training.config import MixConfig, TokenizerConfig
from training.evaluation.config import FimEvalConfig
from training.evaluation.fim import is_held_out
from training.evaluation.heldout import (
    _scored_nll,
    document_bits,
    fim_rows,
    lossless_tokenizer,
    plan_windows,
    select_eval_documents,
)
from training.shards import ShardReader, check_shard_set, iter_texts, resolve_inputs, write_token_shards
from training.tokenizer import load_tokenizer, save_tokenizer, train_bpe

AWKWARD = "s = '<|endoftext|><fim_middle>'  # special spellings stay text\nπ = 'naïve 漢字 😀'\n"


@pytest.fixture(scope="module")
def documents() -> list[dict]:
    return stdlib_documents(80, max_bytes=6_000)


@pytest.fixture(scope="module")
def backend(tmp_path_factory, documents):
    """A random 2-layer Llama and a BPE trained on stdlib code, loaded as the eval loads a model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.evaluation.generation import HFBackend

    folder = tmp_path_factory.mktemp("heldout-model")
    tokenizer = train_bpe([d["content"] for d in documents], vocab_size=500)
    save_tokenizer(tokenizer, folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, eos_token_id=0,
        bos_token_id=0, tie_word_embeddings=True,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    return HFBackend(str(folder), device="cpu", cpu_threads=1)


def test_select_eval_documents_is_the_hash_bucket_sorted_by_doc_id(documents):
    rows = list(reversed(documents)) + [{"doc_id": "empty", "content": ""}]
    chosen = select_eval_documents(rows, 0.3)
    expected = sorted(d["doc_id"] for d in documents if is_held_out(d["doc_id"], 0.3))
    assert [d["doc_id"] for d in chosen] == expected and 10 < len(chosen) < 40
    assert select_eval_documents(rows + rows, 0.3) == chosen  # exact repeats count once
    clash = [{**chosen[0], "content": "other"}]
    with pytest.raises(ValueError, match="twice"):
        select_eval_documents(rows + clash, 0.3)


def test_windows_score_every_target_once_with_enough_context():
    for n_targets, context, stride in [
        (5, 8, 4),
        (8, 8, 4),
        (9, 8, 4),
        (100, 16, 5),
        (100, 16, 16),
        (1, 4, 2),
    ]:
        scored = []
        for start, end, first in plan_windows(n_targets, context, stride):
            assert end - start <= context and 0 <= first < end - start
            for local in range(first, end - start):
                target = start + local + 1
                scored.append(target)
                # After the first window every scored token sees context - stride tokens or more.
                assert local + 1 >= min(context - stride + 1, target)
        assert scored == list(range(1, n_targets + 1))


def direct_bits(backend, content: str, context: int, stride: int) -> float:
    """Bits of one document, one forward pass per target: target j is predicted from the start of
    the window that scores it (Hugging Face's strided recipe, written out independently)."""
    import torch

    ids = lossless_tokenizer(backend).encode(content, add_special_tokens=False).ids
    sequence = [0, *ids, 0]
    n_targets = len(sequence) - 1
    total = 0.0
    for target in range(1, n_targets + 1):
        window = 0
        while min(window * stride + context, n_targets) < target:
            window += 1
        inputs = torch.tensor([sequence[window * stride : target]])
        with torch.inference_mode():
            logits = backend.model(input_ids=inputs).logits[0, -1].double()
        total -= float(torch.log_softmax(logits, -1)[sequence[target]]) / math.log(2)
    return total


def test_bits_per_byte_equals_a_direct_computation(backend, documents):
    docs = [documents[3], {"doc_id": "awkward", "content": AWKWARD, "path": "a.py", "lang": "python"}]
    rows = document_bits(backend, docs, context_length=256)
    for doc, row in zip(docs, rows, strict=True):
        size = len(doc["content"].encode("utf-8"))
        assert row["doc_id"] == doc["doc_id"] and row["bytes"] == size and row["lossless"]
        assert row["bits"] == pytest.approx(direct_bits(backend, doc["content"], 256, 128), rel=1e-4)
        assert row["bits_per_byte"] == pytest.approx(row["bits"] / size)
        assert 0 < row["eos_bits"] < row["bits"]
    awkward = rows[1]
    assert awkward["bytes"] > len(AWKWARD)  # bytes of UTF-8, not characters
    # Sliding windows: a short context scores each token once, from the start of its window.
    short = document_bits(backend, docs[1:], context_length=12, stride=5)[0]
    assert short["windows"] > 1
    assert short["bits"] == pytest.approx(direct_bits(backend, AWKWARD, 12, 5), rel=1e-4)


def test_batching_and_the_split_head_do_not_change_the_numbers(backend, documents):
    import torch

    docs = documents[:6]
    one_by_one = document_bits(backend, docs, context_length=64, batch_tokens=1)
    batched = document_bits(backend, docs, context_length=64, batch_tokens=100_000)
    for a, b in zip(one_by_one, batched, strict=True):
        assert a["bits"] == pytest.approx(b["bits"], rel=1e-5) and a["windows"] == b["windows"]
    assert max(r["windows"] for r in batched) > 1
    assert document_bits(backend, docs, context_length=64) == document_bits(backend, docs, context_length=64)
    inputs = torch.tensor([[0, 30, 40, 50, 60], [0, 70, 80, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    rows, positions, targets = torch.tensor([0, 0, 1]), torch.tensor([1, 3, 1]), torch.tensor([40, 99, 80])
    with torch.inference_mode():
        split = _scored_nll(backend.model, inputs, mask, rows, positions, targets, 2, split_head=True)
        full = _scored_nll(backend.model, inputs, mask, rows, positions, targets, 2, split_head=False)
    assert torch.allclose(split, full, atol=1e-5)


def test_empty_documents_are_refused(backend):
    with pytest.raises(ValueError, match="empty"):
        document_bits(backend, [{"doc_id": "x", "content": ""}], context_length=32)


def test_fim_rows_are_keyed_by_document_and_mode(backend, documents):
    docs = select_eval_documents(documents, 0.3)[:3]
    config = FimEvalConfig(max_new_tokens=4, max_context_chars=200, max_examples=10)
    rows = fim_rows(backend, docs, config, context_length=256, batch_size=4)
    assert len(rows) == 6 and len({r["item_id"] for r in rows}) == 6
    assert {r["doc_id"] for r in rows} == {d["doc_id"] for d in docs}
    assert all(r["exact_match"] in (0.0, 1.0) and 0.0 <= r["edit_similarity"] <= 1.0 for r in rows)
    assert not any(r["prompt_truncated"] for r in rows)
    # A context too small for the prompt cuts it, and says so.
    cut = fim_rows(backend, docs[:1], config, context_length=40)
    assert all(r["prompt_truncated"] for r in cut)


# --------------------------------------------------------------------------------------------------
# Shards that leave the evaluation set out


def test_shards_built_with_a_holdout_contain_no_held_out_document(tmp_path, documents):
    write_stage_output(tmp_path, "code_mix", documents)
    dirs = {"code_mix": str(tmp_path / "data/code_mix"), "code_web_pages": str(tmp_path / "nowhere")}
    config = TokenizerConfig(
        vocab_size=400, seq_len=64, docs_per_shard=30, workers=1, holdout_fraction=0.3,
        anneal=MixConfig(inputs=("code_mix",), optional_inputs=(), weights={"code_mix": 2.0}),
    )  # fmt: skip
    stages, _ = resolve_inputs(config.main_mix, dirs, warn=lambda _: None)
    save_tokenizer(train_bpe(iter_texts(stages, 1_000_000), vocab_size=400), tmp_path / "tokenizer")
    summary = write_token_shards(config=config, stage_dirs=dirs, tokenizer_dir=str(tmp_path / "tokenizer"),
                                 output_dir=str(tmp_path / "shards"), log=lambda _: None)  # fmt: skip
    held_out = select_eval_documents(documents, 0.3)
    held_out_texts = {d["content"] for d in held_out}
    kept_texts = {d["content"] for d in documents} - held_out_texts
    tokenizer = load_tokenizer(tmp_path / "tokenizer")

    def decode(token_ids: list[int]) -> str:
        return tokenizer.decode(token_ids, skip_special_tokens=False)

    assert summary["held_out_docs"] == len(held_out) > 0
    for name, repeats in (("main", 1), ("anneal", 2)):
        manifest = summary["mixes"][name]
        assert manifest["held_out_docs"] == len(held_out) and manifest["documents_conserved"]
        assert manifest["documents_used"] == len(documents) - len(held_out)
        assert manifest["settings"]["holdout_fraction"] == 0.3
        # Every sample in the shards, un-permuted, is a kept document: none is held out.
        reader = ShardReader(tmp_path / "shards" / name)
        stream = reader.tokens()
        stream = stream[stream != reader.pad_id]
        ids = fim.SpecialIds.from_mapping(manifest["special_ids"])
        samples = np.split(stream, np.flatnonzero(stream == reader.eos_id) + 1)[:-1]
        contents = [fim.unpermute(s[:-1].tolist(), decode, ids).content for s in samples]
        assert len(contents) == repeats * (len(documents) - len(held_out))
        assert set(contents) == kept_texts and not set(contents) & held_out_texts
        problems, _ = check_shard_set(
            str(tmp_path / "shards" / name), tokenizer_dir=str(tmp_path / "tokenizer")
        )
        assert problems == []


def test_holdout_fraction_is_validated():
    with pytest.raises(ValueError, match="holdout_fraction"):
        TokenizerConfig(holdout_fraction=1.0)
    assert TokenizerConfig().holdout_fraction == 0.0


# --------------------------------------------------------------------------------------------------
# End to end: held-out shards -> a few training steps -> bits per byte falls on unseen files


@pytest.mark.slow
def test_training_lowers_bits_per_byte_on_held_out_files(tmp_path, documents):
    import torch
    from transformers import LlamaForCausalLM

    from training.config import DataPaths, RunConfig, TrackingConfig, TrainConfig
    from training.evaluation.generation import HFBackend
    from training.loop import train

    write_stage_output(tmp_path, "code_mix", documents)
    dirs = {"code_mix": str(tmp_path / "data/code_mix"), "code_web_pages": str(tmp_path / "nowhere")}
    config = TokenizerConfig(vocab_size=400, seq_len=64, docs_per_shard=40, workers=1, holdout_fraction=0.2)
    stages, _ = resolve_inputs(config.main_mix, dirs, warn=lambda _: None)
    save_tokenizer(train_bpe(iter_texts(stages, 1_000_000), vocab_size=400), tmp_path / "tokenizer")
    write_token_shards(config=config, stage_dirs=dirs, tokenizer_dir=str(tmp_path / "tokenizer"),
                       output_dir=str(tmp_path / "shards"), log=lambda _: None)  # fmt: skip
    run = RunConfig(
        training=TrainConfig(
            steps=30, micro_batch_size=8, lr=3e-3, min_lr=3e-4, warmup_steps=3, anneal=False, cpu_threads=1,
            model={"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2}, checkpoint_every=30,
            log_every=10, log_checkpoint_artifacts=False,
        ),
        data=DataPaths(train_shards=str(tmp_path / "shards/main"), tokenizer_dir=str(tmp_path / "tokenizer")),
        output_dir=str(tmp_path / "run"),
        tracking=TrackingConfig(tracking_uri=None),
    )  # fmt: skip
    summary = train(run)
    trained = HFBackend(summary["hf_model_dir"], device="cpu", cpu_threads=1)
    # The same architecture, untrained (seeded init), exported beside it for comparison.
    torch.manual_seed(0)
    untrained_dir = tmp_path / "untrained"
    LlamaForCausalLM(trained.model.config).save_pretrained(untrained_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (untrained_dir / name).write_bytes((Path(summary["tokenizer_dir"]) / name).read_bytes())
    untrained = HFBackend(str(untrained_dir), device="cpu", cpu_threads=1)
    eval_docs = select_eval_documents(documents, 0.2)
    after = document_bits(trained, eval_docs, context_length=64)
    before = document_bits(untrained, eval_docs, context_length=64)
    mean = lambda rows: float(np.mean([r["bits_per_byte"] for r in rows]))  # noqa: E731
    # 30 steps on 64 files: about 5.1 -> 4.2 bits per byte on files no shard holds.
    assert mean(after) < 0.9 * mean(before)
    lower = sum(a["bits_per_byte"] < b["bits_per_byte"] for a, b in zip(after, before, strict=True))
    assert lower >= 0.9 * len(after)
