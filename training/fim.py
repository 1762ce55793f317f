"""Metadata prefixes and Fill-in-the-Middle, decided per document from its doc_id.

One document becomes one training sample:

    plain:  [<reponame> repo] [<filename> path] [<gh_stars> stars "\\n"] content
    PSM:    [metadata] <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle
    SPM:    [metadata] <fim_prefix> <fim_suffix> suffix <fim_middle> prefix middle

Each metadata field is added on its own with probability `metadata_rate` (StarCoder: 0.2). A
document is FIM-ed with probability `fim_rate`; of those, `spm_rate` use the SPM order (StarCoder's
variant: the prefix follows `<fim_middle>`, so the model learns to continue the prefix and a
suffix-aware middle in one stream). The two cut points are drawn uniformly over the *characters*
of the content, so a cut never splits a UTF-8 sequence.

Every random draw comes from a generator seeded by (seed, doc_id, repeat): a document gets the same
sample whichever worker, shard or batch handles it, so shards are deterministic and parallel.

Un-permuting needs no record of the mode: the content is always
    text after <fim_prefix> + text after <fim_middle> + text after <fim_suffix>
(PSM: prefix + middle + suffix; SPM: "" + (prefix + middle) + suffix).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Literal

Mode = Literal["plain", "psm", "spm"]


@dataclass(frozen=True, slots=True)
class Draw:
    """The random decisions for one sample of one document."""

    reponame: bool
    filename: bool
    stars: bool
    mode: Mode
    cut_start: int
    """First character of the middle (PSM/SPM only)."""
    cut_end: int
    """One past the last character of the middle."""


def document_rng(seed: int, doc_id: str, repeat: int, purpose: str = "sample") -> random.Random:
    """A generator owned by one document: 64 bits of SHA-256 over the seed, id, repeat and purpose."""
    digest = hashlib.sha256(f"{seed}\x00{doc_id}\x00{repeat}\x00{purpose}".encode("utf-8", "surrogatepass"))
    return random.Random(int.from_bytes(digest.digest()[:8], "little"))


def unit_draw(seed: int, doc_id: str, purpose: str) -> float:
    """A uniform number in [0, 1) owned by (seed, doc_id, purpose), e.g. for fractional mix weights."""
    digest = hashlib.sha256(f"{seed}\x00{doc_id}\x00{purpose}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


def draw(
    *,
    seed: int,
    doc_id: str,
    repeat: int,
    length: int,
    fim_rate: float,
    spm_rate: float,
    metadata_rate: float,
) -> Draw:
    """The decisions for one sample of a document whose content has `length` characters.

    The draws always happen in the same order and number, so changing one rate never reshuffles
    the other decisions of a document.
    """
    rng = document_rng(seed, doc_id, repeat)
    reponame = rng.random() < metadata_rate
    filename = rng.random() < metadata_rate
    stars = rng.random() < metadata_rate
    use_fim = rng.random() < fim_rate
    use_spm = rng.random() < spm_rate
    a, b = rng.randint(0, length), rng.randint(0, length)
    start, end = (a, b) if a <= b else (b, a)
    mode: Mode = ("spm" if use_spm else "psm") if use_fim else "plain"
    return Draw(reponame=reponame, filename=filename, stars=stars, mode=mode, cut_start=start, cut_end=end)


def _one_line(value: object) -> str:
    # Metadata values end at the first newline when un-permuting; a newline inside a repository or
    # file name (possible in a path) would move that boundary, so it is written as a space.
    return str(value).replace("\r", " ").replace("\n", " ")


@dataclass(frozen=True, slots=True)
class SpecialIds:
    """Token ids of the sentinels the pieces refer to."""

    fim_prefix: int
    fim_middle: int
    fim_suffix: int
    reponame: int
    filename: int
    gh_stars: int

    @classmethod
    def from_mapping(cls, ids: dict[str, int]) -> SpecialIds:
        return cls(
            fim_prefix=ids["<fim_prefix>"],
            fim_middle=ids["<fim_middle>"],
            fim_suffix=ids["<fim_suffix>"],
            reponame=ids["<reponame>"],
            filename=ids["<filename>"],
            gh_stars=ids["<gh_stars>"],
        )


def sample_pieces(
    content: str, *, repo: str | None, path: str | None, stars: int | None, choice: Draw, ids: SpecialIds
) -> list[int | str]:
    """The sample as an ordered list of pieces: an int is a sentinel id, a str is text to encode.

    Text pieces are encoded separately, so a sentinel is never merged into a neighbouring token and
    a cut point is always a token boundary.
    """
    pieces: list[int | str] = []
    header: list[tuple[int, str]] = []
    if choice.reponame and repo:
        header.append((ids.reponame, _one_line(repo)))
    if choice.filename and path:
        header.append((ids.filename, _one_line(path)))
    if choice.stars and stars is not None:
        header.append((ids.gh_stars, _one_line(stars)))
    for index, (sentinel, value) in enumerate(header):
        pieces.append(sentinel)
        # The header ends with one newline after its last value, as in StarCoder's data.
        pieces.append(value + "\n" if index == len(header) - 1 else value)
    if choice.mode == "plain":
        pieces.append(content)
        return pieces
    prefix = content[: choice.cut_start]
    middle = content[choice.cut_start : choice.cut_end]
    suffix = content[choice.cut_end :]
    if choice.mode == "psm":
        pieces += [ids.fim_prefix, prefix, ids.fim_suffix, suffix, ids.fim_middle, middle]
    else:
        pieces += [ids.fim_prefix, ids.fim_suffix, suffix, ids.fim_middle, prefix + middle]
    return pieces


@dataclass(frozen=True)
class Unpermuted:
    """A sample read back: its metadata header and the original content."""

    content: str
    metadata: dict[str, str]
    fim: bool
    """Whether the sample was in FIM form (PSM and SPM read back the same way)."""


def unpermute(token_ids: list[int], decode, ids: SpecialIds) -> Unpermuted:
    """The original document from one sample's token ids (without its trailing EOS).

    `decode(ids) -> str` decodes plain-text ids (the tokenizer's decode, specials kept).
    """
    sentinels = {ids.fim_prefix, ids.fim_middle, ids.fim_suffix, ids.reponame, ids.filename, ids.gh_stars}
    segments: list[tuple[int | None, list[int]]] = [(None, [])]
    for token in token_ids:
        if token in sentinels:
            segments.append((token, []))
        else:
            segments[-1][1].append(token)
    texts = [(sentinel, decode(body) if body else "") for sentinel, body in segments]

    metadata: dict[str, str] = {}
    names = {ids.reponame: "reponame", ids.filename: "filename", ids.gh_stars: "gh_stars"}
    position = 1
    leading = texts[0][1]
    while position < len(texts) and texts[position][0] in names:
        sentinel, text = texts[position]
        following = position + 1 < len(texts) and texts[position + 1][0] in names
        if following:
            metadata[names[sentinel]] = text
            leading = ""
        else:
            # The last header value runs to the first newline; the rest is content (plain mode).
            value, _, rest = text.partition("\n")
            metadata[names[sentinel]] = value
            leading = rest
        position += 1
    rest = texts[position:]
    if not rest:
        return Unpermuted(content=leading, metadata=metadata, fim=False)
    by_sentinel = {sentinel: text for sentinel, text in rest}
    if [s for s, _ in rest] != [ids.fim_prefix, ids.fim_suffix, ids.fim_middle]:
        raise ValueError(f"not a FIM sample: sentinel order {[s for s, _ in rest]}")
    content = (
        leading + by_sentinel[ids.fim_prefix] + by_sentinel[ids.fim_middle] + by_sentinel[ids.fim_suffix]
    )
    return Unpermuted(content=content, metadata=metadata, fim=True)
