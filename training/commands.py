"""`codecook tokenize` and `codecook train`: the model stages from the command line, without Dagster.

    codecook tokenize --input DIR/data/code_mix --output DIR [--config tokenizer.yaml] [--tokenizer TOK]
        trains the BPE (or takes TOK), then writes DIR/data/tokenizer and DIR/data/token_shards
    codecook train --config run.yaml [--stop-after-steps N]
        python -m training.entrypoint, in this process

`--config` of tokenize holds the keys of the recipe's `tokenizer` section; the input stands in for
every stage the section names. It reads document Parquet (`doc_id`, `content`), a stage folder;
`codecook tokenize` (orchestration.stages.tokenize_command) turns plain JSONL or Parquet rows into
such a folder first. Like every stage command, a bad input or setting raises an error `codecook`
prints as one line (exit code 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

from contracts.config import read_config_file
from training.config import MixConfig, TokenizerConfig, from_dict


def tokenize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokenizer", help="Folder with tokenizer.json to use instead of training one.")


def _single_input(config: TokenizerConfig, name: str) -> TokenizerConfig:
    """The config with every input (main and anneal mix) replaced by the one command-line input."""
    anneal = config.anneal
    if anneal is not None:
        first = anneal.weights.get(anneal.inputs[0]) if anneal.inputs else None
        weight = {name: first} if first is not None else {}
        anneal = MixConfig(inputs=(name,), optional_inputs=(), languages=anneal.languages, weights=weight)
    return dataclasses.replace(config, inputs=(name,), optional_inputs=(), anneal=anneal)


def _check_input(path: str) -> None:
    """Before any work: the input is document Parquet (a stage folder or Parquet files)."""
    from training.shards import ShardInputError

    if "://" in path:
        return
    target = Path(path)
    if not target.exists():
        raise ShardInputError(f"input not found: {path}")
    if target.is_file() and not path.endswith((".parquet", ".pq")):
        raise ShardInputError(
            f"{path}: tokenize reads document Parquet (doc_id, content), such as DIR/data/code_mix; "
            f"turn plain rows into documents first: codecook ingest --input {path} --output DIR"
        )


def tokenize(args: argparse.Namespace) -> int:
    from training.shards import iter_texts, resolve_inputs, write_json_atomic, write_token_shards
    from training.tokenizer import pretrained_chat_template, pretrained_tokenizer, save_tokenizer, train_bpe

    _check_input(args.input)
    data = read_config_file(args.config)
    config = _single_input(from_dict(TokenizerConfig, data, args.config or "defaults"), "input")
    source = args.input if "://" in args.input else str(Path(args.input).resolve())
    require_manifest = "://" not in source and (Path(source) / "_manifest.json").exists()
    stage_dirs = {"input": source}
    root = args.output if "://" in args.output else str(Path(args.output).resolve())
    tokenizer_dir = f"{root}/data/tokenizer"
    if args.tokenizer:
        if Path(args.tokenizer).resolve() != Path(tokenizer_dir):
            shutil.rmtree(tokenizer_dir, ignore_errors=True)
            shutil.copytree(args.tokenizer, tokenizer_dir)
        print(f"tokenizer: {args.tokenizer} (copied to {tokenizer_dir})")
    else:
        stages, _ = resolve_inputs(config.main_mix, stage_dirs, require_manifest=require_manifest)
        if config.from_pretrained:
            bpe = pretrained_tokenizer(config.from_pretrained)
        else:
            bpe = train_bpe(
                iter_texts(stages, config.train_sample_bytes),
                vocab_size=config.vocab_size,
                min_frequency=config.min_frequency,
            )
        template = pretrained_chat_template(config.from_pretrained) if config.from_pretrained else None
        facts = save_tokenizer(bpe, tokenizer_dir, chat_template=template)
        write_json_atomic(f"{tokenizer_dir}/_manifest.json", {"stage": "tokenizer", **facts})
        print(f"tokenizer: {facts['vocab_size']} entries -> {tokenizer_dir}")
    summary = write_token_shards(
        config=config,
        stage_dirs=stage_dirs,
        tokenizer_dir=tokenizer_dir,
        output_dir=f"{root}/data/token_shards",
        require_manifest=require_manifest,
    )
    print(
        json.dumps(
            {k: summary[k] for k in ("tokens", "documents", "rows", "fim_share", "spm_share", "dtype")}
        )
    )
    print(
        f"  shards: {root}/data/token_shards/main"
        + (" and .../anneal" if "anneal" in summary["sets"] else "")
    )
    return 0


def train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="Run config YAML (see training/presets/run-example.yaml)."
    )
    parser.add_argument(
        "--stop-after-steps", type=int, default=None, help="Stop after N more steps (resumable)."
    )


def train(args: argparse.Namespace) -> int:
    from training.entrypoint import main

    argv = ["--config", args.config]
    if args.stop_after_steps is not None:
        argv += ["--stop-after-steps", str(args.stop_after_steps)]
    return main(argv)
