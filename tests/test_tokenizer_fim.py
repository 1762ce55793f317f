"""Tokenizer, FIM and shards on real code (the standard library) plus deliberately awkward documents."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests._training_data import stdlib_documents, write_stage_output
from training import fim
from training.config import MixConfig, TokenizerConfig
from training.shards import (
    SampleEncoder,
    SampleSettings,
    ShardInputError,
    ShardReader,
    ShardStats,
    check_shard_set,
    iter_texts,
    resolve_inputs,
    write_token_shards,
)
from training.tokenizer import (
    SPECIAL_TOKENS,
    load_tokenizer,
    round_trip_failures,
    save_tokenizer,
    special_ids,
    train_bpe,
)

AWKWARD = [
    # Text spelling the sentinels must stay text: only the pipeline places special tokens.
    "x = '<fim_prefix>' + \"<|endoftext|>\" + '<fim_middle><fim_suffix><fim_pad>'\n",
    "emoji 😀 and combining e\u0301 and CJK 漢字 and a lone \u00a0 nbsp\n",
    "windows\r\nline endings\r\n\ttabs   and trailing spaces   \n",
    "",
    " leading space and no newline at end",
    "1234567890 3.14159 0xDEADBEEF",
]


def awkward_documents() -> list[dict]:
    rows = []
    for index, text in enumerate(AWKWARD):
        rows.append(
            {
                "doc_id": f"awkward{index:04d}",
                "content": text,
                "path": "dir/with\nnewline.py" if index == 0 else (None if index == 1 else f"w/{index}.txt"),
                "repo": None if index == 2 else "web",
                "lang": "text",
                "ext": "txt",
                "size_bytes": len(text.encode()),
                "sha256": "0" * 64,
                "stars": None if index % 2 else 0,
                "licence": None,
                "commit_date": None,
                "source": "web",
                "url": f"https://example.org/{index}",
            }
        )
    return rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("tok")
    code = stdlib_documents(160, max_bytes=20_000)
    web = awkward_documents()
    write_stage_output(root, "code_mix", code, files=2)
    write_stage_output(root, "code_web_pages", web, files=1)
    dirs = {"code_mix": str(root / "data/code_mix"), "code_web_pages": str(root / "data/code_web_pages")}
    config = TokenizerConfig(vocab_size=1024, seq_len=128, docs_per_shard=60, workers=1, batch_docs=25)
    stages, _ = resolve_inputs(config.main_mix, dirs)
    bpe = train_bpe(iter_texts(stages, 3_000_000), vocab_size=config.vocab_size)
    save_tokenizer(bpe, root / "tokenizer")
    return {"root": root, "code": code, "web": web, "dirs": dirs, "config": config}


def test_special_tokens_have_fixed_ids_and_the_vocab_its_size(corpus):
    bpe = load_tokenizer(corpus["root"] / "tokenizer")
    assert bpe.get_vocab_size() == 1024
    assert [bpe.token_to_id(token) for token in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    config = json.loads((corpus["root"] / "tokenizer" / "tokenizer_config.json").read_text())
    assert config["eos_token"] == "<|endoftext|>" and "<fim_middle>" in config["additional_special_tokens"]


def test_round_trip_is_exact_on_real_and_awkward_text(corpus):
    bpe = load_tokenizer(corpus["root"] / "tokenizer")
    texts = [d["content"] for d in corpus["code"]] + AWKWARD
    assert round_trip_failures(bpe, texts) == []
    # Digits are split one by one (StarCoder), so no token holds two digits.
    pieces = bpe.encode("x = 1234567", add_special_tokens=False).tokens
    assert all(sum(ch.isdigit() for ch in piece) <= 1 for piece in pieces)


def test_fim_and_metadata_rates_over_many_documents():
    draws = [
        fim.draw(
            seed=7, doc_id=f"doc-{i}", repeat=0, length=1000, fim_rate=0.5, spm_rate=0.5, metadata_rate=0.2
        )
        for i in range(20_000)
    ]
    modes = Counter(d.mode for d in draws)
    fim_share = (modes["psm"] + modes["spm"]) / len(draws)
    assert abs(fim_share - 0.5) <= 0.02
    assert abs(modes["spm"] / (modes["psm"] + modes["spm"]) - 0.5) <= 0.02
    for field in ("reponame", "filename", "stars"):
        assert abs(sum(getattr(d, field) for d in draws) / len(draws) - 0.2) <= 0.02
    # Cuts are ordered, inside the document, and spread over it.
    assert all(0 <= d.cut_start <= d.cut_end <= 1000 for d in draws)
    assert 450 < np.mean([d.cut_start + d.cut_end for d in draws]) / 2 < 550
    # The same document always gets the same draw; another repeat gets its own.
    again = fim.draw(
        seed=7, doc_id="doc-3", repeat=0, length=1000, fim_rate=0.5, spm_rate=0.5, metadata_rate=0.2
    )
    assert again == draws[3]
    others = [
        fim.draw(seed=7, doc_id="doc-3", repeat=r, length=1000, fim_rate=0.5, spm_rate=0.5, metadata_rate=0.2)
        for r in range(1, 6)
    ]
    assert any(o != draws[3] for o in others)


@pytest.mark.parametrize("fim_rate", [1.0, 0.5])
def test_fim_samples_unpermute_to_the_exact_document(corpus, fim_rate):
    bpe = load_tokenizer(corpus["root"] / "tokenizer")
    settings = SampleSettings(
        seed=3, fim_rate=fim_rate, spm_rate=0.5, metadata_rate=0.5, seq_len=128, batch_docs=64
    )
    encoder = SampleEncoder(bpe, settings)
    documents = corpus["code"][:100] + corpus["web"]
    seen_modes = Counter()
    for doc in documents:
        rows = {k: [doc.get(k)] for k in ("doc_id", "content", "repo", "path", "stars", "lang", "size_bytes")}
        stream = encoder.encode_rows(rows, 1.0, "x", ShardStats())
        assert stream[-1] == encoder.eos and encoder.eos not in stream[:-1]
        back = fim.unpermute(stream[:-1], lambda t: bpe.decode(t, skip_special_tokens=False), encoder.ids)
        assert back.content == doc["content"], doc["path"]
        choice = fim.draw(seed=3, doc_id=doc["doc_id"], repeat=0, length=len(doc["content"]),
                          fim_rate=fim_rate, spm_rate=0.5, metadata_rate=0.5)  # fmt: skip
        seen_modes[choice.mode] += 1
        assert back.fim == (choice.mode != "plain")
        if choice.filename and doc["path"]:
            assert back.metadata["filename"] == doc["path"].replace("\n", " ")
        if choice.stars and doc["stars"] is not None:
            assert back.metadata["gh_stars"] == str(doc["stars"])
    assert seen_modes["spm"] > 10 and seen_modes["psm"] > 10


def test_spm_and_psm_layouts_follow_starcoder():
    ids = fim.SpecialIds(fim_prefix=1, fim_middle=2, fim_suffix=3, reponame=18, filename=5, gh_stars=6)
    text = "abcdefgh"
    psm = fim.sample_pieces(text, repo=None, path=None, stars=None, ids=ids,
                            choice=fim.Draw(reponame=False, filename=False, stars=False, mode="psm", cut_start=2, cut_end=5))  # fmt: skip
    spm = fim.sample_pieces(text, repo="r", path=None, stars=None, ids=ids,
                            choice=fim.Draw(reponame=True, filename=False, stars=False, mode="spm", cut_start=2, cut_end=5))  # fmt: skip
    assert psm == [1, "ab", 3, "fgh", 2, "cde"]
    assert spm == [18, "r\n", 1, 3, "fgh", 2, "abcde"]


def test_shards_hold_exactly_what_the_writer_wrote_for_any_worker_count(corpus, tmp_path):
    config = corpus["config"]
    tokenizer_dir = str(corpus["root"] / "tokenizer")
    one = write_token_shards(config=config, stage_dirs=corpus["dirs"], tokenizer_dir=tokenizer_dir,
                             output_dir=str(tmp_path / "one"), log=lambda _: None)  # fmt: skip
    from dataclasses import replace

    two = write_token_shards(config=replace(config, workers=2), stage_dirs=corpus["dirs"], tokenizer_dir=tokenizer_dir,
                             output_dir=str(tmp_path / "two"), log=lambda _: None)  # fmt: skip
    assert one["checksum"] == two["checksum"]  # byte-identical shards whatever the parallelism
    main = one["mixes"]["main"]
    documents = corpus["code"] + corpus["web"]
    assert main["documents_in"] == main["documents_used"] == len(documents)
    assert main["documents_conserved"] and main["shards"] == 3 and main["dtype"] == "<u2"

    # The reader gives back the stream the encoder makes, in input order, cut into rows.
    bpe = load_tokenizer(tokenizer_dir)
    encoder = SampleEncoder(bpe, SampleSettings.from_config(config, config.main_mix))
    ordered = sorted(corpus["code"], key=lambda r: r["doc_id"]) + sorted(
        corpus["web"], key=lambda r: r["doc_id"]
    )
    expected = []
    for doc in ordered:
        rows = {k: [doc.get(k)] for k in ("doc_id", "content", "repo", "path", "stars", "lang", "size_bytes")}
        expected.extend(encoder.encode_rows(rows, 1.0, "x", ShardStats()))
    reader = ShardReader(tmp_path / "one" / "main")
    tokens = reader.tokens()
    assert len(reader) == main["rows"] and reader.row_len == 129
    assert tokens[tokens != reader.pad_id].tolist() == expected
    assert main["tokens"] == len(expected)
    assert reader.rows([0, len(reader) - 1]).shape == (2, 129)
    # Every row but the last of each shard is full of real tokens.
    assert main["padding_tokens"] < main["shards"] * reader.row_len
    # The shares the manifest reports are the ones in the data.
    fim_samples = int((tokens == encoder.ids.fim_prefix).sum())
    assert main["fim_samples"] == fim_samples and main["samples"] == len(documents)
    assert abs(main["fim_share"] - 0.5) < 0.1

    problems, facts = check_shard_set(str(tmp_path / "one" / "main"), tokenizer_dir=tokenizer_dir)
    assert problems == [] and facts["samples_compared"] >= 40


def test_shard_check_catches_a_truncated_file(corpus, tmp_path):
    tokenizer_dir = str(corpus["root"] / "tokenizer")
    write_token_shards(config=corpus["config"], stage_dirs=corpus["dirs"], tokenizer_dir=tokenizer_dir,
                       output_dir=str(tmp_path / "s"), log=lambda _: None)  # fmt: skip
    shard = tmp_path / "s" / "main" / "shard-00001.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    problems, _ = check_shard_set(str(tmp_path / "s" / "main"), tokenizer_dir=tokenizer_dir)
    assert any("shard-00001.bin" in p for p in problems)


def test_anneal_mix_filters_languages_and_repeats_documents(corpus, tmp_path):
    from dataclasses import replace

    config = replace(
        corpus["config"],
        anneal=MixConfig(
            inputs=("code_mix", "code_web_pages"), languages=("Python",), weights={"code_mix": 2.0}
        ),
    )
    summary = write_token_shards(config=config, stage_dirs=corpus["dirs"], tokenizer_dir=str(corpus["root"] / "tokenizer"),
                                 output_dir=str(tmp_path / "mixes"), log=lambda _: None)  # fmt: skip
    anneal = summary["mixes"]["anneal"]
    python_docs = sum(d["lang"] == "python" for d in corpus["code"])
    assert anneal["documents_used"] == python_docs
    assert anneal["documents_excluded_language"] == len(corpus["code"]) - python_docs + len(corpus["web"])
    assert anneal["samples"] == 2 * python_docs  # each kept document twice, with its own FIM draws
    assert anneal["documents_conserved"]
    assert summary["anneal_tokens"] == anneal["tokens"] > 0
    assert json.loads((tmp_path / "mixes" / "_manifest.json").read_text())["sets"].keys() == {
        "main",
        "anneal",
    }


def test_fractional_weight_keeps_a_doc_id_seeded_share(corpus, tmp_path):
    mix = MixConfig(inputs=("code_mix",), optional_inputs=(), weights={"code_mix": 0.5})
    from dataclasses import replace

    config = replace(corpus["config"], inputs=("code_mix",), optional_inputs=(), anneal=mix)
    summary = write_token_shards(config=config, stage_dirs=corpus["dirs"], tokenizer_dir=str(corpus["root"] / "tokenizer"),
                                 output_dir=str(tmp_path / "half"), log=lambda _: None)  # fmt: skip
    anneal = summary["mixes"]["anneal"]
    assert anneal["documents_used"] + anneal["documents_dropped_by_weight"] == len(corpus["code"])
    assert 0.38 < anneal["documents_used"] / len(corpus["code"]) < 0.62


def test_missing_inputs_fail_unless_optional(corpus, tmp_path):
    dirs = {"code_mix": str(tmp_path / "nowhere"), "code_web_pages": corpus["dirs"]["code_web_pages"]}
    with pytest.raises(ShardInputError, match="not materialized"):
        resolve_inputs(MixConfig(), dirs)
    warnings = []
    stages, missing = resolve_inputs(
        MixConfig(), {**corpus["dirs"], "code_web_pages": str(tmp_path / "x")}, warn=warnings.append
    )
    assert [s.name for s in stages] == ["code_mix"] and missing == ["code_web_pages"] and warnings


def test_codecook_tokenize_command(corpus, tmp_path):
    from orchestration.cli import main

    config = tmp_path / "tok.yaml"
    config.write_text("vocab_size: 512\nseq_len: 64\ndocs_per_shard: 200\nworkers: 1\n")
    out = tmp_path / "out"
    assert (
        main(
            ["tokenize", "--input", corpus["dirs"]["code_mix"], "--output", str(out), "--config", str(config)]
        )
        == 0
    )
    manifest = json.loads((out / "data/token_shards/_manifest.json").read_text())
    assert manifest["documents"] == len(corpus["code"]) and manifest["vocab_size"] == 512
    assert special_ids(load_tokenizer(out / "data/tokenizer"))["<fim_pad>"] == 4
    assert ShardReader(Path(out / "data/token_shards/main")).row_len == 65
