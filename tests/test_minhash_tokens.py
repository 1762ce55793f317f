"""The byte-level tokenizer under the MinHash shingles: boundaries, non-ASCII text, slices, nulls."""

from __future__ import annotations

import re
import sysconfig
from pathlib import Path

import pyarrow as pa

from quality.dedup import minhash


def tokens_of(texts, start=0, length=None):
    array = pa.array(texts, pa.large_string())
    if length is not None:
        array = array.slice(start, length)
    tokens, owner = minhash._tokens(array)
    return list(zip(owner.tolist(), tokens.to_pylist(), strict=True))


def test_tokens_never_run_across_documents_and_skip_empty_ones():
    assert tokens_of(["ab", "cd", None, "", "  ", "e_1 f"]) == [(0, "ab"), (1, "cd"), (5, "e_1"), (5, "f")]


def test_non_ascii_letters_stay_whole_and_punctuation_separates_ascii():
    assert tokens_of(["héllo wörld=日本語;x"]) == [(0, "héllo"), (0, "wörld"), (0, "日本語"), (0, "x")]


def test_a_sliced_batch_numbers_its_own_documents():
    assert tokens_of(["skip me", "a b", "c"], start=1, length=2) == [(0, "a"), (0, "b"), (1, "c")]


def test_on_ascii_code_the_tokens_are_the_regex_word_runs():
    """On real ASCII source (the standard library), the tokens are exactly `[A-Za-z0-9_]+`."""
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:80]
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    texts = [t for t in texts if t.isascii()]
    expected = [(i, word) for i, text in enumerate(texts) for word in re.findall(r"[A-Za-z0-9_]+", text)]
    assert len(texts) > 50 and tokens_of(texts) == expected


def test_shingle_counts_follow_the_tokens():
    shingles = minhash.shingle_batch(pa.array(["a b c d e f", "x y", None], pa.large_string()), 5)
    assert shingles.tokens_per_doc.tolist() == [6, 2, 0]
    # two 5-grams for the first document, one short shingle for the second
    assert shingles.doc_index.tolist() == [0, 0, 1]
