"""Per-document held-out measurements of one model: bits per byte and single-line FIM.

The evaluation set is the documents whose doc_id hashes into the held-out bucket
(`fim.is_held_out(doc_id, fraction)`, a hash of the doc_id alone). Training built with
`tokenizer.holdout_fraction` set to the same fraction never tokenizes them, so no variant trains on
them, whatever its filters or mix: the bucket is fixed before any recipe decision.
`select_eval_documents` picks them from any stage's rows; pick them from a stage every variant
shares (e.g. the raw input) so every variant is scored on the same documents.

Bits per byte of a document (tokenizer-independent, so variants with different tokenizers compare):

    bits = sum over the document's tokens t_1..t_n, and one closing EOS, of -log2 p(t_k | EOS, t_<k)
    bits_per_byte = bits / (UTF-8 bytes of the content)

The context starts with one EOS, the token that precedes every document in the packed training
stream. The closing EOS is scored (the same event, "the file ends here", whatever the tokenizer;
`eos_bits` in the row lets a reader leave it out). The denominator is bytes of the original text,
never tokens. The tokenizer must be lossless (decode(encode(text)) == text, true of byte-level BPE);
each row says whether it was (`lossless`), since a lossy one would score less text than the bytes
counted. Text that spells a special token ("<|endoftext|>" in a string literal) is encoded as
ordinary text, as the shard pipeline does.

Documents longer than the context are scored in strided windows (Hugging Face's perplexity
recipe): a window holds up to `context_length` tokens and moves by `stride`; each token is scored
once, in the first window where it is among the new tokens, so every token after the first window
sees at least `context_length - stride` tokens of context. Pass the training `seq_len` as
`context_length`: an exported config's `max_position_embeddings` can exceed the rows the model was
trained on, and positions it never saw are not a fair test.

FIM reuses `fim.select_examples` (one masked line per file, seeded by doc_id) and
`fim.evaluate_fim` (greedy, stop at newline, exact match and edit similarity), one row per example
and mode. Prompts are first cut to fit the context (`fim.fit_to_context`); a row records whether
its prompt was cut, which depends on the tokenizer, so keep `max_context_chars` small enough that
no variant needs cutting if the comparison must hold the prompt text fixed.

Deterministic on a given machine: documents are batched in a fixed order, inference runs under
`torch.inference_mode`, and torch's thread count is the caller's (`HFBackend(cpu_threads=...)`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from training.evaluation.config import FimEvalConfig
from training.evaluation.fim import evaluate_fim, fim_prompt, fit_to_context, is_held_out, select_examples
from training.tokenizer import EOS

LN2 = math.log(2.0)


def select_eval_documents(rows: Iterable[dict[str, Any]], fraction: float) -> list[dict[str, Any]]:
    """The rows in the held-out bucket (`is_held_out(doc_id, fraction)`), sorted by doc_id.

    Rows with empty content are left out (no bytes to score). The same doc_id twice with different
    content is an error (the set would depend on row order); with the same content it is kept once.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    chosen: dict[str, dict[str, Any]] = {}
    for row in rows:
        doc_id = row["doc_id"]
        if not row.get("content") or not is_held_out(doc_id, fraction):
            continue
        seen = chosen.get(doc_id)
        if seen is not None and seen["content"] != row["content"]:
            raise ValueError(f"doc_id {doc_id!r} appears twice with different content")
        chosen[doc_id] = row
    return [chosen[doc_id] for doc_id in sorted(chosen)]


# --------------------------------------------------------------------------------------------------
# Bits per byte


def lossless_tokenizer(backend: Any):
    """A copy of the backend's `tokenizers.Tokenizer` that encodes special-token spellings as text
    (the backend's own tokenizer must keep parsing sentinels for FIM prompts)."""
    from tokenizers import Tokenizer

    fast = getattr(backend.tokenizer, "backend_tokenizer", None)
    if fast is None:
        raise TypeError("bits per byte needs a fast (Rust `tokenizers`) tokenizer")
    tokenizer = Tokenizer.from_str(fast.to_str())
    tokenizer.encode_special_tokens = True
    return tokenizer


def document_eos_id(backend: Any) -> int:
    """The document separator: `<|endoftext|>` when the vocabulary has it (our BPE, SmolLM2), else
    the tokenizer's EOS."""
    token_id = backend.tokenizer.convert_tokens_to_ids(EOS)
    if token_id is not None and token_id != backend.tokenizer.unk_token_id:
        return int(token_id)
    if backend.tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token to open and close documents with")
    return int(backend.tokenizer.eos_token_id)


def plan_windows(n_targets: int, context_length: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows over a sequence s of n_targets + 1 tokens (targets are s[1:]).

    Each window is (start, end, first): inputs s[start:end] predict s[start + 1 : end + 1], and
    the predictions at local positions >= first are the window's scored ones. Every target is
    scored exactly once.
    """
    if context_length < 2 or not 1 <= stride <= context_length:
        raise ValueError(
            f"need context_length >= 2 and 1 <= stride <= context_length, got {context_length}, {stride}"
        )
    windows = []
    scored = 0  # targets 1..scored are done
    start = 0
    while scored < n_targets:
        end = min(start + context_length, n_targets)
        windows.append((start, end, scored - start))
        scored = end
        start += stride
    return windows


def document_bits(
    backend: Any,
    documents: Sequence[dict[str, Any]],
    *,
    context_length: int | None = None,
    stride: int | None = None,
    batch_tokens: int = 4096,
    head_chunk: int = 1024,
) -> list[dict[str, Any]]:
    """One row per document: doc_id, path, lang, bytes, tokens, windows, bits, eos_bits,
    bits_per_byte, lossless. See the module docstring for the convention.

    `backend` is an `HFBackend` (model, tokenizer, device). `context_length`: tokens per window
    (default: the model's `max_position_embeddings`; pass the training seq_len). `stride`: new
    tokens per window after the first (default: half the context). Windows are packed into forward
    batches of at most `batch_tokens` padded tokens; the output projection runs only on scored
    positions, `head_chunk` at a time (a full vocabulary of logits per position is the big tensor).
    """
    import torch

    if not documents:
        return []
    context = int(context_length or backend.context_length or 0)
    if context < 2:
        raise ValueError("no context length: pass context_length (the training seq_len)")
    step = int(stride or max(1, context // 2))
    tokenizer = lossless_tokenizer(backend)
    eos = document_eos_id(backend)
    contents = []
    for doc in documents:
        content = doc.get("content") or ""
        if not content:
            raise ValueError(f"document {doc.get('doc_id')!r} is empty: it has no bytes to score")
        contents.append(content)
    encodings = tokenizer.encode_batch_fast(contents, add_special_tokens=False)
    sequences = [[eos, *encoding.ids, eos] for encoding in encodings]

    # Every window of every document, longest first (less padding per batch), ties in input order.
    windows = []
    for index, sequence in enumerate(sequences):
        for start, end, first in plan_windows(len(sequence) - 1, context, step):
            windows.append((index, start, end, first))
    windows.sort(key=lambda w: (-(w[2] - w[1]), w[0], w[1]))
    window_counts = np.bincount([w[0] for w in windows], minlength=len(sequences))

    bits = np.zeros(len(sequences), dtype=np.float64)
    eos_bits = np.zeros(len(sequences), dtype=np.float64)
    model = backend.model
    device = backend.device
    batch: list[tuple[int, int, int, int]] = []

    def flush() -> None:
        width = batch[0][2] - batch[0][1]
        inputs = torch.full((len(batch), width), eos, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows: list[int] = []
        positions: list[int] = []
        targets: list[int] = []
        owners: list[int] = []
        closing: list[bool] = []
        for row, (index, start, end, first) in enumerate(batch):
            sequence = sequences[index]
            length = end - start
            inputs[row, :length] = torch.tensor(sequence[start:end])
            mask[row, :length] = 1
            count = length - first
            rows.extend([row] * count)
            positions.extend(range(first, length))
            targets.extend(sequence[start + first + 1 : end + 1])
            owners.extend([index] * count)
            # The closing EOS is the document's last target.
            closing.extend([False] * (count - 1) + [end == len(sequence) - 1])
        with torch.inference_mode():
            nll = _scored_nll(
                model,
                inputs.to(device),
                mask.to(device),
                torch.tensor(rows, device=device),
                torch.tensor(positions, device=device),
                torch.tensor(targets, device=device),
                head_chunk,
            )
        values = nll.double().cpu().numpy() / LN2
        owner = np.asarray(owners)
        np.add.at(bits, owner, values)
        ends = np.asarray(closing)
        np.add.at(eos_bits, owner[ends], values[ends])

    for window in windows:
        width = window[2] - window[1]
        if batch and (len(batch) + 1) * (batch[0][2] - batch[0][1]) > max(batch_tokens, width):
            flush()
            batch = []
        batch.append(window)
    if batch:
        flush()

    out = []
    for index, (doc, encoding) in enumerate(zip(documents, encodings, strict=True)):
        size = len(contents[index].encode("utf-8", "surrogatepass"))
        out.append(
            {
                "doc_id": doc["doc_id"],
                "path": doc.get("path"),
                "lang": doc.get("lang"),
                "bytes": size,
                "tokens": len(encoding.ids),
                "windows": int(window_counts[index]),
                "bits": float(bits[index]),
                "eos_bits": float(eos_bits[index]),
                "bits_per_byte": float(bits[index] / size),
                "lossless": tokenizer.decode(encoding.ids, skip_special_tokens=False) == contents[index],
            }
        )
    return out


def _scored_nll(
    model, inputs, mask, rows, positions, targets, head_chunk: int, split_head: bool | None = None
):
    """-ln p(target) at the (row, position) pairs. For Llama-family models the decoder runs once
    and the output projection only on the scored positions, `head_chunk` rows at a time; other
    architectures (whose head may do more than one matmul) take the full logits."""
    import torch

    if split_head is None:
        split_head = getattr(model.config, "model_type", None) == "llama"
    if split_head:
        hidden = model.base_model(input_ids=inputs, attention_mask=mask).last_hidden_state
        picked = hidden[rows, positions]
        head = model.get_output_embeddings()
        pieces = []
        for start in range(0, len(picked), head_chunk):
            logits = head(picked[start : start + head_chunk]).float()
            chosen = logits.gather(1, targets[start : start + head_chunk, None]).squeeze(1)
            pieces.append(torch.logsumexp(logits, dim=-1) - chosen)
        return torch.cat(pieces) if pieces else torch.empty(0)
    logits = model(input_ids=inputs, attention_mask=mask).logits[rows, positions].float()
    return torch.logsumexp(logits, dim=-1) - logits.gather(1, targets[:, None]).squeeze(1)


# --------------------------------------------------------------------------------------------------
# FIM


def fim_rows(
    backend: Any,
    documents: Sequence[dict[str, Any]],
    config: FimEvalConfig,
    *,
    context_length: int | None = None,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """One row per (document, mode): doc_id, mode, item_id (`doc_id:mode`), path, line_number,
    middle, prediction, exact_match, edit_similarity, prompt_truncated.

    Every given document is eligible (they are the held-out set already); `config.languages`,
    `max_examples` (lowest hold-out hash first), `seed` and `max_context_chars` apply as in the
    FIM eval. `context_length` is the token budget of prompt plus generation (default: the
    model's; pass the training seq_len).
    """
    if not documents:
        return []
    examples = select_examples(documents, replace(config, holdout_fraction=1.0))
    if not examples:
        return []
    context = context_length or getattr(backend, "context_length", None)
    truncated: dict[str, bool] = {}
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is not None and context:
        fitted = []
        for example in examples:
            fit = fit_to_context(example, tokenizer, context - config.max_new_tokens - 2)
            truncated[example.doc_id] = fit != example
            fitted.append(fit)
        examples = fitted
    prompt_chars = {e.doc_id: len(fim_prompt(e, "psm")) for e in examples}
    rows, _ = evaluate_fim(backend, examples, config, batch_size=batch_size)
    for row in rows:
        row["item_id"] = f"{row['doc_id']}:{row['mode']}"
        row["exact_match"] = float(row["exact_match"])
        row["prompt_truncated"] = truncated.get(row["doc_id"], False)
        row["prompt_chars"] = prompt_chars[row["doc_id"]]
    return rows
