"""Recall of code-related web pages in rounds, after OpenCoder (Huang et al. 2024, section 2.1.2).

One round:
  1. seeds      round 1: pool pages whose URL starts with one of `seed_url_patterns`; later rounds:
                the previous round's seeds plus the pages its domain discovery added;
  2. training   positives: up to `max_positives` seeds; negatives: `negatives_per_positive` times as
                many random pool pages that are not seeds, lie under no seed or code URL pattern
                found so far, and (if others remain) were not recalled by the previous round;
                on a realistic pool, where code is a small minority, they are mostly prose (each
                round reports how many of them the measurement labels call code); both drawn by
                a hash of (seed, round, doc_id), never by a global RNG;
  3. fastText   a supervised fastText model trained on the driver (`thread=1`, seeded: the same
                seeds give the same model) on *segmented* text: lower-cased word pieces (camelCase
                and snake_case split, digits folded, scripts without spaces split per character)
                and punctuation runs, mapped onto the `max_vocab` most frequent pieces of the
                training sample; everything else is `<unk>`. The vocabulary is bounded by
                construction however large the pool, and code punctuation (`()`, `=>`, `::`)
                survives as tokens, which is what separates code from prose;
  4. scoring    every pool page gets P(code) in Spark tasks (`mapInArrow`; each Python worker
                loads the model once);
  5. threshold  pages with P(code) >= `threshold` are recalled (the stage's kept rows; the rest
                are reject rows `below_threshold` with their score);
  6. domains    a domain is code-related when more than `domain_threshold` (10%) of its pages
                are recalled (and it has at least `min_domain_pages`);
  7. discovery  inside code-related domains, URL patterns (host plus the first `pattern_depth`
                folders) whose pages are recalled at least `pattern_min_share` of the time are
                code patterns; their pages that scored at least `grow_min_score` join the seeds
                of the next round: high-confidence pages only, so a new domain's code joins the
                positives and its prose does not;
  8. stopping   a round that adds fewer than `stop_min_new_seeds` seeds and finds no new
                code-related domain ends the growth: later rounds keep its model and seeds
                (their metrics say `stopped`, `trained: false`), so the N round assets stay.

Measurement: a share of pages (`holdout_percent`, by a hash of doc_id) is held out of every
training set; precision and recall are computed on the held-out pages that carry a `label`
(see `quality.web.label_for`; the rounds never read labels to train).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import fsspec
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contracts.storage import swap_into_place
from quality.web import LABEL_CODE, LABEL_OTHER, WEB_PAGE_COLUMNS

SEED_INITIAL = "initial"
UNK, NUM, LONG, CAMEL = "<unk>", "<num>", "<long>", "<camel>"


class RecallError(ValueError):
    """A round that cannot run as configured (no seed page in the pool, an empty pool...)."""


@dataclass(frozen=True, kw_only=True)
class FastTextConfig:
    """The classifier of every round."""

    dim: int = 32
    """Size of the word vectors; a binary code/other decision needs few dimensions."""
    epoch: int = 50
    """Passes over the training sample. Seed sets of a few hundred pages need many: at 15 epochs
    the scores of held-out pages still cluster around 0.5 (measured on the committed sample)."""
    lr: float = 0.5
    """Learning rate (halved and retried, deterministically, if training diverges)."""
    word_ngrams: int = 2
    """Word n-grams (2: bigrams such as `def <unk>` or `) :` count as features). At least 2: the
    n-gram buckets keep the input matrix large enough to be allocated from fresh pages (see
    `_train_in_fresh_process`)."""
    bucket: int = 200_000
    """Hash buckets for n-grams; the model holds `(max_vocab + bucket) x dim` floats (~30 MB)."""
    min_count: int = 2
    """Pieces seen fewer times in the training sample are ignored by fastText."""
    max_vocab: int = 50_000
    """Vocabulary bound: the most frequent pieces of the training sample; others are `<unk>`.
    (Bounds of 1-2k rank held-out pages about as well but calibrate worse: more code pages end
    below 0.5, measured on the committed sample.)"""
    max_tokens_per_page: int = 3000
    """Only the first tokens of a page are used (to train and to score)."""
    max_piece_chars: int = 24
    """Longer letter runs (hashes, base64, minified names) become `<long>`."""
    line_shapes: bool = False
    """Precede every line's pieces by tokens for its shape (`line_shape`: how it ends, short or
    long, indented), meant to carry what code looks like in any language. Off by default: on the
    demo pool it raised round 1's F1 (0.39 against 0.29) but not round 3's, and precision then
    fell from round 1 to 3 (an offline replay of the rounds, 40 held-out code pages)."""

    def __post_init__(self) -> None:
        if self.word_ngrams < 2 or self.bucket * self.dim < 65_536:
            raise ValueError(
                "fasttext.word_ngrams must be >= 2 and bucket * dim >= 65536, so that the input matrix "
                "is allocated from fresh (zeroed) pages; fastText leaves most of it uninitialised"
            )


@dataclass(frozen=True, kw_only=True)
class RecallConfig:
    """The recall rounds (recipe section `web.recall`)."""

    rounds: int = 3
    """How many rounds (`recall_round_1..N` assets)."""
    seed: int = 13
    """Seeds fastText and every hash-based sample: the same seed gives the same rounds."""
    seed_url_patterns: tuple[str, ...] = ("docs.python.org/3.11/tutorial/",)
    """Round 1 positives: pages whose URL (without scheme and `www.`) starts with one of these."""
    seed_min_code_blocks: int = 0
    """Round 1 only: a seed page must also hold at least this many code blocks in its main text
    (OpenCoder's first seeds were code-like pages, not every page of a site). Held-out pages
    are never seeds, whatever this says."""
    max_positives: int = 2000
    """At most this many seeds train a round (a hash sample when there are more)."""
    negatives_per_positive: float = 3.0
    """Random pool pages drawn as negatives per positive."""
    exclude_recalled_from_negatives: bool = True
    """Rounds after the first draw no negative among the pages the previous round recalled."""
    negatives_outside_code_patterns: bool = True
    """Draw no negative under a seed URL pattern or a code URL pattern found so far: those pages
    are likely code whatever their score. On a realistic pool (code a small minority) the rest is
    mostly prose, so the negatives are too (each round reports how many the labels call code)."""
    grow_min_score: float = 0.9
    """Discovery adds to the next round's seeds only pages of code URL patterns (inside
    code-related domains) that scored at least this: high-confidence pages, not every page."""
    stop_min_new_seeds: int = 1
    """Stopping rule: a round that adds fewer seeds than this and finds no new code-related domain
    ends the growth; later rounds keep its model and seeds (their metrics say `stopped`)."""
    holdout_percent: float = 30.0
    """Share of the pool (by a hash of doc_id) never used to train; measurement runs on it."""
    threshold: float = 0.5
    """A page is recalled when P(code) >= threshold."""
    domain_threshold: float = 0.10
    """A domain is code-related when more than this share of its pages is recalled."""
    min_domain_pages: int = 5
    """Smaller domains are never called code-related (one lucky page is not a domain)."""
    pattern_depth: int = 2
    """URL pattern = host + the first this-many folders of the path."""
    pattern_min_share: float = 0.5
    """A URL pattern of a code-related domain is a code pattern when at least this share of its
    pages is recalled; its not-yet-recalled pages join the next seeds."""
    min_pattern_pages: int = 3
    """Smaller URL patterns are never code patterns."""
    max_new_seeds_per_round: int | None = None
    """Cap on pages discovery adds per round (a hash sample); None adds all."""
    histogram_bins: int = 20
    """Bins of the score distribution recorded per round."""
    fasttext: FastTextConfig = field(default_factory=FastTextConfig)
    """The classifier."""

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError("rounds must be at least 1")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must lie strictly between 0 and 1")
        if not 0.0 <= self.holdout_percent < 100.0:
            raise ValueError("holdout_percent must lie in [0, 100)")
        if not self.seed_url_patterns:
            raise ValueError("seed_url_patterns must name at least one URL prefix")
        if not 0.0 < self.grow_min_score <= 1.0:
            raise ValueError("grow_min_score must lie in (0, 1]")
        if self.stop_min_new_seeds < 0:
            raise ValueError("stop_min_new_seeds must be >= 0")


# ----------------------------------------------------------------------------------------------
# Segmentation: bounded vocabulary
# ----------------------------------------------------------------------------------------------

# Letter runs (any script), digit runs, underscores, and runs of up to 3 other symbols.
_TOKEN = re.compile(r"[^\W\d_]+|\d+|_|[^\w\s]{1,3}")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[^A-Za-z]+")


def _unspaced_script(char: str) -> bool:
    """Scripts written without spaces between words (Han, kana, Thai...): one piece per character."""
    code = ord(char)
    return (
        0x2E80 <= code <= 0x9FFF
        or 0xF900 <= code <= 0xFAFF
        or 0x0E00 <= code <= 0x0EFF
        or 0xAC00 <= code <= 0xD7AF
    )


def segment(text: str, config: FastTextConfig) -> list[str]:
    """Word pieces of `text` before the vocabulary is applied (see the module doc).

    Backticks are dropped first: they are the extractor's Markdown for code (fences, inline
    code), exactly what the measurement labels are built from, and a crawl's plain text does
    not have them. The classifier has to tell code from prose by the text itself."""
    text = text.replace("`", " ")
    pieces: list[str] = []
    limit = config.max_tokens_per_page
    for line in text.split("\n") if config.line_shapes else [text]:
        if config.line_shapes:
            pieces.extend(line_shape(line))
        if _segment_line(line, pieces, config, limit):
            return pieces[:limit]
    return pieces[:limit]


# The last character of a line, grouped: code lines end in brackets and operators, prose in
# sentence punctuation or words.
_LINE_ENDS = {**{c: c for c in ";{}()[]:,=\\<>"}, **{c: "." for c in ".!?"}}


def line_shape(line: str) -> list[str]:
    """Tokens for the shape of one line: indented or not, how it ends, short or long. Code lines
    in any language are short, indented and end in a bracket or operator; prose lines (a whole
    paragraph each, after extraction) end in sentence punctuation."""
    stripped = line.strip()
    if not stripped:
        return []
    indent = len(line) - len(line.lstrip(" \t"))
    shape = [f"<end{_LINE_ENDS.get(stripped[-1], 'w')}>", "<short>" if len(stripped) < 60 else "<long>"]
    if indent >= 2:
        shape.append("<indent>")
    return shape


def _segment_line(text: str, pieces: list[str], config: FastTextConfig, limit: int) -> bool:
    """Append the word pieces of `text` to `pieces`; True once `limit` is reached."""
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        first = token[0]
        if first.isdigit():
            pieces.append(NUM)
        elif first == "_" or not (first.isalpha()):
            pieces.append(token)
        elif _unspaced_script(first):
            pieces.extend(token[: limit - len(pieces)])
        else:
            parts = _CAMEL.findall(token) if token.isascii() else [token]
            if len(parts) > 1 and any(p[:1].isupper() for p in parts[1:]) and token[:1].islower():
                pieces.append(CAMEL)
            for part in parts:
                pieces.append(LONG if len(part) > config.max_piece_chars else part.lower())
        if len(pieces) >= limit:
            return True
    return False


def build_vocabulary(segmented: Iterable[list[str]], max_vocab: int) -> list[str]:
    """The `max_vocab` most frequent pieces (ties by the piece itself, so the list is stable)."""
    counts: Counter[str] = Counter()
    for pieces in segmented:
        counts.update(pieces)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [piece for piece, _ in ranked[:max_vocab]]


def apply_vocabulary(pieces: list[str], vocabulary: frozenset[str]) -> str:
    """One line for fastText: in-vocabulary pieces, everything else `<unk>`."""
    return " ".join(p if p in vocabulary else UNK for p in pieces)


# ----------------------------------------------------------------------------------------------
# Hash draws and URL patterns
# ----------------------------------------------------------------------------------------------


def hash_rank(seed: int, purpose: str, doc_id: str) -> int:
    """A stable pseudo-random number for one document and one purpose (Python side)."""
    return int(hashlib.sha256(f"{seed}:{purpose}:{doc_id}".encode()).hexdigest()[:8], 16)


def hash_rank_col(seed: int, purpose: str, column: str = "doc_id"):
    """The same number as `hash_rank`, as a Spark column."""
    digest = F.sha2(F.concat(F.lit(f"{seed}:{purpose}:"), F.col(column)), 256)
    return F.conv(F.substring(digest, 1, 8), 16, 10).cast("long")


def is_holdout(doc_id: str, seed: int, percent: float) -> bool:
    return hash_rank(seed, "holdout", doc_id) % 10_000 < int(round(percent * 100))


def holdout_col(seed: int, percent: float):
    return (hash_rank_col(seed, "holdout") % 10_000) < int(round(percent * 100))


def url_key(url: str) -> str:
    """A URL without scheme, `www.` and query: what seed and discovery patterns are matched on."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    host = host[4:] if host.startswith("www.") else host
    return f"{host}{parts.path or '/'}"


def url_pattern(url: str, depth: int) -> str:
    """Host plus the first `depth` folders of the path (the file name never counts):
    `https://docs.python.org/3.11/library/json.html` at depth 2 -> `docs.python.org/3.11/library/`."""
    key = url_key(url)
    host, _, path = key.partition("/")
    folders = [part for part in path.split("/")[:-1] if part][:depth]
    return host + "/" + "".join(f"{folder}/" for folder in folders)


# ----------------------------------------------------------------------------------------------
# Domain statistics and discovery (plain Python on aggregated rows)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupStat:
    """Pages and recalled pages of one domain or one URL pattern."""

    key: str
    pages: int
    recalled: int

    @property
    def share(self) -> float:
        return self.recalled / self.pages if self.pages else 0.0


def code_domains(stats: Iterable[GroupStat], threshold: float, min_pages: int) -> list[str]:
    """Domains with more than `threshold` of their pages recalled (and at least `min_pages`)."""
    return sorted(s.key for s in stats if s.pages >= min_pages and s.share > threshold)


def code_patterns(stats: Iterable[GroupStat], min_share: float, min_pages: int) -> list[str]:
    """URL patterns recalled at least `min_share` of the time (and holding at least `min_pages`)."""
    return sorted(s.key for s in stats if s.pages >= min_pages and s.share >= min_share)


# ----------------------------------------------------------------------------------------------
# fastText on the driver
# ----------------------------------------------------------------------------------------------


def _quiet_fasttext():
    import fasttext

    # fastText prints a deprecation note on every load_model; it says nothing about our models.
    fasttext.FastText.eprint = lambda *args, **kwargs: None
    return fasttext


def _train_in_fresh_process(train_path: str, model_path: str, params: dict[str, Any]) -> None:
    """Train and save one model; runs in a spawned interpreter.

    fastText 0.9's `DenseMatrix::uniform` fills blocks of rows*cols/10 values, one per thread, so
    with one thread only the first tenth of the input matrix is initialised and the rest keeps
    whatever `malloc` returned: in a long-lived process that is recycled garbage, which makes
    training irreproducible and often ends in "Encountered NaN". In a fresh process whose large
    allocations are served by mmap, that memory is zero pages: training is reproducible (the
    uninitialised rows start at zero, the first tenth at fastText's uniform values).
    A rate that still diverges is halved, at most three times, which is deterministic too."""
    try:
        # M_MMAP_THRESHOLD = -3: allocations of 64 KB and more come from fresh mmap pages.
        ctypes.CDLL(None).mallopt(-3, 64 * 1024)
    except (OSError, AttributeError):
        pass
    fasttext = _quiet_fasttext()
    outcome: dict[str, Any] = {"lr": params["lr"]}
    lr = params["lr"]
    for attempt in range(4):
        try:
            model = fasttext.train_supervised(input=train_path, **{**params, "lr": lr})
            model.save_model(model_path)
            outcome["lr"] = lr
            break
        except RuntimeError as error:
            if "NaN" not in str(error) or attempt == 3:
                outcome["error"] = f"{error} (learning rate {lr})"
                break
            lr /= 2
    with open(model_path + ".json", "w", encoding="utf-8") as handle:
        json.dump(outcome, handle)


@dataclass(frozen=True)
class TrainedModel:
    """A trained classifier on local disk: the fastText model and its vocabulary."""

    model_path: str
    vocab_path: str
    sha256: str
    vocabulary_size: int
    train_positives: int
    train_negatives: int
    train_seconds: float
    learning_rate: float
    """The rate training finished with (the configured one, halved after each divergence)."""


def train_classifier(
    positives: list[list[str]],
    negatives: list[list[str]],
    config: FastTextConfig,
    *,
    seed: int,
    workdir: str,
) -> TrainedModel:
    """Train a code/other fastText model on segmented pages; files go to the local `workdir`."""
    if not positives or not negatives:
        raise RecallError(f"cannot train on {len(positives)} positives and {len(negatives)} negatives")
    started = time.perf_counter()
    vocabulary = build_vocabulary([*positives, *negatives], config.max_vocab)
    known = frozenset(vocabulary)
    lines = [f"__label__{LABEL_CODE} {apply_vocabulary(p, known)}" for p in positives]
    lines += [f"__label__{LABEL_OTHER} {apply_vocabulary(n, known)}" for n in negatives]
    # A fixed order that interleaves the classes: fastText learns in file order.
    lines.sort(key=lambda line: hashlib.sha256(f"{seed}:{line}".encode()).digest())
    os.makedirs(workdir, exist_ok=True)
    train_path = os.path.join(workdir, "train.txt")
    with open(train_path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    model_path = os.path.join(workdir, "model.bin")
    params = {
        "dim": config.dim,
        "epoch": config.epoch,
        "lr": config.lr,
        "wordNgrams": config.word_ngrams,
        "bucket": config.bucket,
        "minCount": config.min_count,
        "minn": 0,
        "maxn": 0,
        "loss": "softmax",
        "thread": 1,  # one thread: fastText's Hogwild updates are only reproducible single-threaded
        "seed": seed,
        "verbose": 0,
    }
    # A fresh interpreter trains (see `_train_in_fresh_process` for why). A plain subprocess,
    # not multiprocessing's spawn, which would re-run the caller's __main__ module.
    project_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [project_root, os.environ.get("PYTHONPATH")])),
    }
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, json; from quality.recall import _train_in_fresh_process as t; "
            "t(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))",
            train_path,
            model_path,
            json.dumps(params),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    result_path = model_path + ".json"
    if child.returncode != 0 or not os.path.exists(result_path):
        raise RecallError(
            f"fastText training failed (exit code {child.returncode}): {child.stderr.strip()[-2000:]}"
        )
    with open(result_path, encoding="utf-8") as handle:
        outcome = json.load(handle)
    os.remove(result_path)
    if outcome.get("error"):
        raise RecallError(f"fastText training failed: {outcome['error']}")
    lr = outcome["lr"]
    vocab_path = os.path.join(workdir, "vocab.json")
    with open(vocab_path, "w", encoding="utf-8") as handle:
        json.dump({"pieces": vocabulary, "fasttext": asdict(config)}, handle, ensure_ascii=False)
    os.remove(train_path)
    digest = hashlib.sha256()
    for path in (model_path, vocab_path):
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return TrainedModel(
        model_path,
        vocab_path,
        digest.hexdigest(),
        len(vocabulary),
        len(positives),
        len(negatives),
        time.perf_counter() - started,
        lr,
    )


class Scorer:
    """P(code) of texts under one trained model (used on the driver and inside Spark tasks)."""

    def __init__(self, model_path: str, vocab_path: str, config: FastTextConfig):
        fasttext = _quiet_fasttext()
        self.model = fasttext.load_model(model_path)
        with open(vocab_path, encoding="utf-8") as handle:
            self.vocabulary = frozenset(json.load(handle)["pieces"])
        self.config = config
        self.code_label = f"__label__{LABEL_CODE}"

    def scores(self, texts: list[str]) -> list[float]:
        lines = [apply_vocabulary(segment(text or "", self.config), self.vocabulary) for text in texts]
        labels, probabilities = self.model.predict(lines, k=2)
        out = []
        for names, probs in zip(labels, probabilities, strict=True):
            by_label = dict(zip(names, (float(p) for p in probs), strict=True))
            out.append(min(1.0, max(0.0, by_label.get(self.code_label, 0.0))))
        return out


@lru_cache(maxsize=4)
def _task_scorer(model_url: str, vocab_url: str, sha256: str, config_json: str) -> Scorer:
    """One Scorer per Python worker and model (the sha keeps a retrained model from being reused)."""
    config = FastTextConfig(**json.loads(config_json))
    if "://" not in model_url or model_url.startswith("file://"):
        return Scorer(model_url.removeprefix("file://"), vocab_url.removeprefix("file://"), config)
    local = tempfile.mkdtemp(prefix=f"codecook-recall-{sha256[:12]}-")
    for url, name in ((model_url, "model.bin"), (vocab_url, "vocab.json")):
        with fsspec.open(url, "rb") as source, open(os.path.join(local, name), "wb") as target:
            shutil.copyfileobj(source, target)
    return Scorer(os.path.join(local, "model.bin"), os.path.join(local, "vocab.json"), config)


SCORE_SCHEMA = T.StructType(
    [
        T.StructField("doc_id", T.StringType(), False),
        T.StructField("score", T.DoubleType(), False),
        T.StructField("url_pattern", T.StringType(), True),
    ]
)


def score_pages(
    pages: DataFrame, model_url: str, vocab_url: str, sha256: str, config: RecallConfig
) -> DataFrame:
    """(doc_id, score, url_pattern) for every page, computed in Spark tasks."""
    config_json = json.dumps(asdict(config.fasttext), sort_keys=True)
    depth = config.pattern_depth

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        scorer = _task_scorer(model_url, vocab_url, sha256, config_json)
        for batch in batches:
            ids = batch.column("doc_id").to_pylist()
            texts = batch.column("content").to_pylist()
            urls = batch.column("url").to_pylist()
            yield pa.RecordBatch.from_pydict(
                {
                    "doc_id": ids,
                    "score": scorer.scores(texts),
                    "url_pattern": [url_pattern(u, depth) if u else None for u in urls],
                },
                schema=pa.schema(
                    [("doc_id", pa.string()), ("score", pa.float64()), ("url_pattern", pa.string())]
                ),
            )

    return pages.select("doc_id", "content", "url").mapInArrow(run, SCORE_SCHEMA)


def segment_pages(pages: DataFrame, config: FastTextConfig) -> list[list[str]]:
    """Segment the (sampled) training pages in Spark tasks; the pieces come back to the driver in
    doc_id order, so the training file does not depend on partitioning."""
    config_json = json.dumps(asdict(config), sort_keys=True)
    schema = T.StructType(
        [T.StructField("doc_id", T.StringType(), False), T.StructField("pieces", T.StringType(), False)]
    )

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fasttext_config = FastTextConfig(**json.loads(config_json))
        for batch in batches:
            ids = batch.column("doc_id").to_pylist()
            texts = batch.column("content").to_pylist()
            yield pa.RecordBatch.from_pydict(
                {"doc_id": ids, "pieces": [" ".join(segment(t or "", fasttext_config)) for t in texts]},
                schema=pa.schema([("doc_id", pa.string()), ("pieces", pa.string())]),
            )

    rows = pages.select("doc_id", "content").mapInArrow(run, schema).orderBy("doc_id").collect()
    # Pieces hold no whitespace (they are runs of non-space characters), so a space joins them.
    return [row["pieces"].split(" ") if row["pieces"] else [] for row in rows]


# ----------------------------------------------------------------------------------------------
# One round
# ----------------------------------------------------------------------------------------------

SEEDS_SCHEMA = T.StructType(
    [
        T.StructField("doc_id", T.StringType(), False),
        T.StructField("added_in_round", T.IntegerType(), False),
        T.StructField("why", T.StringType(), False),
    ]
)


@dataclass
class RoundResult:
    """What one round produced; `kept`/`rejected` feed `write_stage`, the rest is its record."""

    round: int
    kept: DataFrame
    rejected: DataFrame
    rows_in: int
    metrics: dict[str, Any]
    domains: list[dict[str, Any]]
    patterns: list[dict[str, Any]]
    histogram: list[dict[str, Any]]
    code_domains: list[str]
    new_domains: list[str]
    artifacts: str
    _persisted: list[DataFrame] = field(default_factory=list)

    def release(self) -> None:
        for frame in self._persisted:
            frame.unpersist()


def round_dir(workdir: str, round_number: int) -> str:
    return f"{workdir.rstrip('/')}/round_{round_number}"


def _seed_match(patterns: tuple[str, ...]):
    key = F.regexp_replace(
        F.regexp_replace(F.lower(F.col("url")), r"^[a-z][a-z0-9+.-]*://", ""), r"^www\.", ""
    )
    key = F.regexp_replace(key, r"[?#].*$", "")
    condition = F.lit(False)
    for pattern in patterns:
        condition = condition | key.startswith(pattern.lower().removeprefix("www."))
    return condition


def _previous_state(spark: SparkSession, workdir: str, round_number: int) -> tuple[DataFrame, dict[str, Any]]:
    previous = round_dir(workdir, round_number - 1)
    fs = fsspec.core.url_to_fs(previous)[0]
    state_path = f"{previous}/state.json"
    if not fs.exists(state_path):
        raise RecallError(
            f"round {round_number} needs round {round_number - 1} first (no {state_path}); "
            "materialize the rounds in order"
        )
    with fs.open(state_path, "r") as handle:
        state = json.load(handle)
    from quality.storage import spark_path

    seeds = spark.read.schema(SEEDS_SCHEMA).parquet(spark_path(f"{previous}/next_seeds"))
    return seeds, state


def _draw(frame: DataFrame, seed: int, purpose: str, limit: int) -> DataFrame:
    """A hash sample of `limit` rows (the same rows on every run)."""
    return (
        frame.withColumn("_draw", hash_rank_col(seed, purpose))
        .orderBy("_draw", "doc_id")
        .limit(limit)
        .drop("_draw")
    )


def _train_and_store(
    positive_pieces: list[list[str]],
    negative_pieces: list[list[str]],
    config: RecallConfig,
    seed: int,
    workdir: str,
    fs,
    stage: str,
) -> tuple[TrainedModel, str]:
    """Train on the driver; store the model under its content hash (never moved or overwritten,
    so Spark can re-read it whenever it recomputes a score partition)."""
    local = tempfile.mkdtemp(prefix=f"codecook-{stage}-")
    try:
        model = train_classifier(positive_pieces, negative_pieces, config.fasttext, seed=seed, workdir=local)
        model_dir = f"{workdir.rstrip('/')}/models/{model.sha256[:24]}"
        if not fs.exists(f"{model_dir}/vocab.json"):
            upload = f"{model_dir}.tmp-{uuid.uuid4().hex[:8]}"
            fs.makedirs(upload, exist_ok=True)
            fs.put(model.model_path, f"{upload}/model.bin")
            fs.put(model.vocab_path, f"{upload}/vocab.json")
            swap_into_place(fs, upload, model_dir)
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return model, model_dir


def run_round(
    spark: SparkSession,
    pool: DataFrame,
    *,
    round_number: int,
    config: RecallConfig,
    workdir: str,
    previous_recalled: DataFrame | None = None,
    stage: str | None = None,
) -> RoundResult:
    """Run round `round_number` over `pool` (the web_pages rows). Round artifacts (model,
    vocabulary, seeds, next seeds, domain and pattern tables, state) go to `workdir/round_<n>`;
    round n > 1 reads round n-1's from there. `previous_recalled` (doc_id rows) keeps the previous
    round's recalled pages out of the negatives."""
    stage = stage or f"recall_round_{round_number}"
    seed = config.seed
    persisted: list[DataFrame] = []
    pool = pool.select(*[c for c in WEB_PAGE_COLUMNS if c in pool.columns]).withColumn(
        "_holdout", holdout_col(seed, config.holdout_percent)
    )
    pool = pool.persist(StorageLevel.MEMORY_AND_DISK)
    persisted.append(pool)
    rows_in = pool.count()
    if rows_in == 0:
        raise RecallError("the web pool is empty")

    # 1. Seeds.
    if round_number == 1:
        chosen = _seed_match(config.seed_url_patterns)
        if config.seed_min_code_blocks > 0:
            chosen = chosen & (F.coalesce(F.col("code_blocks"), F.lit(0)) >= config.seed_min_code_blocks)
        seeds = pool.filter(chosen).select(
            "doc_id", F.lit(1).alias("added_in_round"), F.lit(SEED_INITIAL).alias("why")
        )
        known_domains: list[str] = []
        # Round 1 knows the seed patterns as its code patterns (kept out of the negatives).
        known_patterns = sorted(p.lower().removeprefix("www.") for p in config.seed_url_patterns)
        stopped_before: int | None = None
        previous_state: dict[str, Any] = {}
    else:
        seeds, previous_state = _previous_state(spark, workdir, round_number)
        known_domains = list(previous_state["code_domains"])
        known_patterns = list(previous_state.get("known_code_patterns", previous_state["code_patterns"]))
        stopped_before = previous_state.get("stopped_at_round")
    seeds = (
        seeds.join(pool.select("doc_id", "_holdout"), "doc_id").filter(~F.col("_holdout")).drop("_holdout")
    )
    seeds = seeds.persist(StorageLevel.MEMORY_AND_DISK)
    persisted.append(seeds)
    seed_count = seeds.count()
    if seed_count == 0:
        raise RecallError(
            f"round {round_number}: no seed page in the pool outside the held-out set "
            f"(seed_url_patterns={list(config.seed_url_patterns)})"
        )

    # 2. Training sample: seeds vs random non-seed pages.
    trainable = pool.filter(~F.col("_holdout"))
    positives = _draw(
        trainable.join(seeds.select("doc_id"), "doc_id", "left_semi"),
        seed,
        f"pos{round_number}",
        config.max_positives,
    )
    negative_pool = trainable.join(seeds.select("doc_id"), "doc_id", "left_anti")
    if config.negatives_outside_code_patterns and known_patterns:
        # Pages under a seed or code URL pattern are likely code whatever their score: never
        # negatives. The rest of a realistic pool is mostly prose, so a random draw from it is too.
        negative_pool = negative_pool.filter(~_seed_match(tuple(known_patterns)))
    wanted = max(1, math.ceil(positives.count() * config.negatives_per_positive))
    negatives = _draw(negative_pool, seed, f"neg{round_number}", wanted)
    if previous_recalled is not None and config.exclude_recalled_from_negatives:
        # Pages the previous round recalled are drawn last: only when too few others remain.
        recalled_before = previous_recalled.select("doc_id", F.lit(1).alias("_recalled_before"))
        ranked = negative_pool.join(recalled_before, "doc_id", "left").fillna(0, ["_recalled_before"])
        ranked = ranked.withColumn("_draw", hash_rank_col(seed, f"neg{round_number}"))
        negatives = ranked.orderBy("_recalled_before", "_draw", "doc_id").limit(wanted)
    negatives = negatives.persist(StorageLevel.MEMORY_AND_DISK)
    persisted.append(negatives)
    # Measured, never used to train: how many drawn negatives the labels call code.
    negative_labels = {r["label"]: int(r["count"]) for r in negatives.groupBy("label").count().collect()}

    # 3. fastText on the driver. The model is stored under its content hash, never moved or
    # overwritten, so Spark can re-read it whenever it recomputes a score partition.
    target = round_dir(workdir, round_number)
    fs = fsspec.core.url_to_fs(target)[0]
    if stopped_before is not None:
        # The stopping rule fired in an earlier round: no new seeds, no new domain. This round
        # keeps that round's model (its rows are the same), so N fixed assets cost nothing more.
        previous_metrics = previous_state["metrics"]
        model = TrainedModel(
            model_path="",
            vocab_path="",
            sha256=previous_metrics["model_sha256"],
            vocabulary_size=previous_metrics["vocabulary_size"],
            train_positives=previous_metrics["train_positives"],
            train_negatives=previous_metrics["train_negatives"],
            train_seconds=0.0,
            learning_rate=previous_metrics["learning_rate"],
        )
        model_dir = previous_metrics["model_dir"]
    else:
        positive_pieces = segment_pages(positives, config.fasttext)
        negative_pieces = segment_pages(negatives, config.fasttext)
        model, model_dir = _train_and_store(
            positive_pieces, negative_pieces, config, seed + round_number, workdir, fs, stage
        )
    staging = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
    fs.makedirs(staging, exist_ok=True)

    # 4. Scoring in Spark tasks (timed on its own: pages/s is this step's speed).
    started = time.perf_counter()
    scores = score_pages(pool, f"{model_dir}/model.bin", f"{model_dir}/vocab.json", model.sha256, config)
    scores = scores.persist(StorageLevel.MEMORY_AND_DISK)
    persisted.append(scores)
    scored_rows = scores.count()
    score_seconds = time.perf_counter() - started

    # 5. Threshold.
    scored = pool.join(scores, "doc_id").withColumn("recalled", F.col("score") >= config.threshold)
    scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
    persisted.append(scored)

    # 6. Domains.
    domain_rows = (
        scored.groupBy("domain")
        .agg(F.count("*").alias("pages"), F.sum(F.col("recalled").cast("long")).alias("recalled"))
        .orderBy("domain")
        .collect()
    )
    domain_stats = [
        GroupStat(r["domain"] or "", int(r["pages"]), int(r["recalled"] or 0)) for r in domain_rows
    ]
    found_domains = code_domains(domain_stats, config.domain_threshold, config.min_domain_pages)
    new_domains = sorted(set(found_domains) - set(known_domains))
    all_domains = sorted(set(found_domains) | set(known_domains))

    # 7. URL patterns inside code-related domains; their unrecalled pages become seeds.
    pattern_rows = (
        scored.filter(F.col("domain").isin(all_domains) if all_domains else F.lit(False))
        .groupBy("domain", "url_pattern")
        .agg(F.count("*").alias("pages"), F.sum(F.col("recalled").cast("long")).alias("recalled"))
        .orderBy("url_pattern")
        .collect()
    )
    pattern_stats = [
        GroupStat(r["url_pattern"], int(r["pages"]), int(r["recalled"] or 0)) for r in pattern_rows
    ]
    found_patterns = code_patterns(pattern_stats, config.pattern_min_share, config.min_pattern_pages)
    # Seeds grow only by pages the classifier is sure of, inside code URL patterns of
    # code-related domains: a new domain's own vocabulary joins the positives, its prose does not.
    candidates = (
        scored.filter(F.col("url_pattern").isin(found_patterns) if found_patterns else F.lit(False))
        .filter((F.col("score") >= config.grow_min_score) & ~F.col("_holdout"))
        .join(seeds.select("doc_id"), "doc_id", "left_anti")
    )
    if stopped_before is not None:
        candidates = candidates.limit(0)
    if config.max_new_seeds_per_round is not None:
        candidates = _draw(candidates, seed, f"grow{round_number}", config.max_new_seeds_per_round)
    added = candidates.select(
        "doc_id",
        F.lit(round_number + 1).alias("added_in_round"),
        F.format_string("pattern:%s score=%.3f", F.col("url_pattern"), F.col("score")).alias("why"),
    )
    next_seeds = seeds.unionByName(added)
    from quality.storage import spark_path

    # Save mode "error" rather than its alias "errorifexists": Spark Connect's client knows only "error".
    seeds.repartition(1).sortWithinPartitions("doc_id").write.mode("error").parquet(
        spark_path(f"{staging}/seeds")
    )
    next_seeds.repartition(1).sortWithinPartitions("doc_id").write.mode("error").parquet(
        spark_path(f"{staging}/next_seeds")
    )
    seeds_added = spark.read.parquet(spark_path(f"{staging}/next_seeds")).count() - seed_count

    # The stopping rule: a round that adds fewer than `stop_min_new_seeds` seeds and no new
    # code-related domain has nothing left to learn from; later rounds keep its model.
    stopped_at = stopped_before
    if stopped_at is None and seeds_added < config.stop_min_new_seeds and not new_domains:
        stopped_at = round_number
    known_code_patterns = sorted(set(known_patterns) | set(found_patterns))

    # Measurement on the held-out labelled pages.
    evaluation = evaluate(scored.filter(F.col("_holdout")))
    histogram = score_histogram(scored, config.histogram_bins)
    recalled_count = int(scored.filter(F.col("recalled")).count())
    metrics = {
        "round": round_number,
        "pool_pages": rows_in,
        "pages_recalled": recalled_count,
        "recall_share": recalled_count / rows_in,
        "seeds": seed_count,
        "seeds_added_for_next_round": seeds_added,
        "train_positives": model.train_positives,
        "train_negatives": model.train_negatives,
        "train_negatives_labelled_code": negative_labels.get(LABEL_CODE, 0),
        "train_negatives_labelled_other": negative_labels.get(LABEL_OTHER, 0),
        "stopped": stopped_at is not None,
        "stopped_at_round": stopped_at,
        "trained": stopped_before is None,
        "vocabulary_size": model.vocabulary_size,
        "train_seconds": round(model.train_seconds, 3),
        "learning_rate": model.learning_rate,
        "score_seconds": round(score_seconds, 3),
        "pages_per_second_scored": round(scored_rows / score_seconds, 1) if score_seconds > 0 else None,
        "code_domains": len(all_domains),
        "new_domains": len(new_domains),
        "code_patterns": len(found_patterns),
        "model_sha256": model.sha256,
        "model_dir": model_dir,
        **evaluation,
    }
    domains_table = [
        {
            "domain": s.key,
            "pages": s.pages,
            "recalled": s.recalled,
            "share": round(s.share, 4),
            "code_related": s.key in all_domains,
            "new": s.key in new_domains,
        }
        for s in sorted(domain_stats, key=lambda s: (-s.recalled, s.key))
    ]
    patterns_table = [
        {
            "url_pattern": s.key,
            "pages": s.pages,
            "recalled": s.recalled,
            "share": round(s.share, 4),
            "code_pattern": s.key in found_patterns,
        }
        for s in sorted(pattern_stats, key=lambda s: (-s.pages, s.key))
    ]
    state = {
        "round": round_number,
        "code_domains": all_domains,
        "new_domains": new_domains,
        "code_patterns": found_patterns,
        "known_code_patterns": known_code_patterns,
        "stopped_at_round": stopped_at,
        "metrics": metrics,
        "config": asdict(config),
    }
    for name, payload in (
        ("state.json", state),
        ("domains.json", {"domains": domains_table}),
        ("patterns.json", {"patterns": patterns_table}),
        ("histogram.json", {"bins": histogram}),
    ):
        with fs.open(f"{staging}/{name}", "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
    swap_into_place(fs, staging, target)

    kept = scored.filter(F.col("recalled")).select(
        *WEB_PAGE_COLUMNS, "score", "url_pattern", F.lit(round_number).alias("recall_round")
    )
    rejected = scored.filter(~F.col("recalled")).select(
        "doc_id",
        F.lit(stage).alias("stage"),
        F.lit("below_threshold").alias("reason"),
        F.format_string(f"score=%.4f < threshold {config.threshold}", F.col("score")).alias("detail"),
        "path",
        "lang",
        "size_bytes",
        F.lit(None).cast("string").alias("cluster_id"),
        F.lit(None).cast("string").alias("kept_doc_id"),
    )
    return RoundResult(
        round=round_number,
        kept=kept,
        rejected=rejected,
        rows_in=rows_in,
        metrics=metrics,
        domains=domains_table,
        patterns=patterns_table,
        histogram=histogram,
        code_domains=all_domains,
        new_domains=new_domains,
        artifacts=target,
        _persisted=persisted,
    )


def evaluate(held_out: DataFrame) -> dict[str, Any]:
    """Precision, recall and F1 of the recalled flag against the labels of held-out pages."""
    row = (
        held_out.filter(F.col("label").isin(LABEL_CODE, LABEL_OTHER))
        .agg(
            F.sum((F.col("recalled") & (F.col("label") == LABEL_CODE)).cast("long")).alias("tp"),
            F.sum((F.col("recalled") & (F.col("label") == LABEL_OTHER)).cast("long")).alias("fp"),
            F.sum((~F.col("recalled") & (F.col("label") == LABEL_CODE)).cast("long")).alias("fn"),
            F.sum((~F.col("recalled") & (F.col("label") == LABEL_OTHER)).cast("long")).alias("tn"),
        )
        .collect()[0]
    )
    tp, fp, fn, tn = (int(row[k] or 0) for k in ("tp", "fp", "fn", "tn"))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {
        "heldout_labelled": tp + fp + fn + tn,
        "heldout_code": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": None if precision is None else round(precision, 4),
        "recall": None if recall is None else round(recall, 4),
        "f1": None if f1 is None else round(f1, 4),
    }


def score_histogram(scored: DataFrame, bins: int) -> list[dict[str, Any]]:
    """Pages per score bin and label (code / other / unlabelled), every bin present."""
    bucket = F.least(F.floor(F.col("score") * bins), F.lit(bins - 1)).cast("int")
    rows = (
        scored.groupBy(bucket.alias("bin"), F.coalesce(F.col("label"), F.lit("unlabelled")).alias("label"))
        .count()
        .collect()
    )
    counts = {(int(r["bin"]), r["label"]): int(r["count"]) for r in rows}
    return [
        {
            "bin": b,
            "low": round(b / bins, 4),
            "high": round((b + 1) / bins, 4),
            **{label: counts.get((b, label), 0) for label in (LABEL_CODE, LABEL_OTHER, "unlabelled")},
        }
        for b in range(bins)
    ]


def read_round_state(workdir: str, round_number: int) -> dict[str, Any]:
    """The state a completed round left behind (metrics, code domains, config)."""
    path = f"{round_dir(workdir, round_number)}/state.json"
    with fsspec.open(path, "r") as handle:
        return json.load(handle)


# ----------------------------------------------------------------------------------------------
# The final pages: exact dedup, then the text profile
# ----------------------------------------------------------------------------------------------


@dataclass
class CodePagesResult:
    kept: DataFrame
    rejected: DataFrame
    rows_in: int
    duplicates: int
    near_duplicates: int = 0
    near_facts: dict[str, Any] = field(default_factory=dict)
    _persisted: list[DataFrame] = field(default_factory=list)
    _near: Any = None

    def release(self) -> None:
        for frame in self._persisted:
            frame.unpersist()
        if self._near is not None:
            self._near.release()


def clean_code_pages(
    recalled: DataFrame,
    *,
    stage: str,
    exact_dedup: bool = True,
    text_filters: bool = True,
    filter_config: Any = None,
    signal_config: Any = None,
    near_dedup_config: Any = None,
) -> CodePagesResult:
    """Recalled pages with one copy per content hash, judged by the quality filters' profiles.

    Exact duplicates (same SHA-256 of the main text) keep the copy with the highest score, then
    the smallest URL, then the smallest doc_id; the others are `exact_duplicate` rows naming the
    kept one (`kept_doc_id`) and the hash (`cluster_id`). The survivors get the signals of
    `quality.signals` and the rules of their language's profile (`lang = 'text'` -> `text`);
    a page a rule fires on is rejected with that rule's name, as `filtered_code` does for code.

    With `near_dedup_config` (a `quality.dedup.DedupConfig`), the exact survivors then go through
    the MinHash engine of `near_dedup` (`quality.dedup.engine.near_dedup`): mirrors and versioned
    copies of the same page (a banner, a version number, a changed paragraph apart) keep one page
    per cluster by the engine's keep policy (newest date first); the others are `near_duplicate`
    rows of this stage naming the kept page (`kept_doc_id`) and the cluster (`cluster_id`)."""
    persisted: list[DataFrame] = []
    recalled = recalled.persist(StorageLevel.MEMORY_AND_DISK)
    persisted.append(recalled)
    rows_in = recalled.count()
    reject_columns = [
        "doc_id",
        "stage",
        "reason",
        "detail",
        "path",
        "lang",
        "size_bytes",
        "cluster_id",
        "kept_doc_id",
    ]
    if exact_dedup:
        from pyspark.sql import Window

        order = Window.partitionBy("sha256").orderBy(F.col("score").desc(), "url", "doc_id")
        ranked = recalled.withColumn("_copy", F.row_number().over(order)).withColumn(
            "_kept_id", F.first("doc_id").over(order)
        )
        unique = ranked.filter(F.col("_copy") == 1).drop("_copy", "_kept_id")
        duplicates = ranked.filter(F.col("_copy") > 1).select(
            "doc_id",
            F.lit(stage).alias("stage"),
            F.lit("exact_duplicate").alias("reason"),
            F.concat(F.lit("same main text as the page kept in its place; this copy: "), F.col("url")).alias(
                "detail"
            ),
            "path",
            "lang",
            "size_bytes",
            F.col("sha256").alias("cluster_id"),
            F.col("_kept_id").alias("kept_doc_id"),
        )
    else:
        unique = recalled
        duplicates = recalled.limit(0).select(
            "doc_id",
            F.lit(stage).alias("stage"),
            F.lit("exact_duplicate").alias("reason"),
            F.lit(None).cast("string").alias("detail"),
            "path",
            "lang",
            "size_bytes",
            F.lit(None).cast("string").alias("cluster_id"),
            F.lit(None).cast("string").alias("kept_doc_id"),
        )
    unique = unique.persist(StorageLevel.MEMORY_AND_DISK)
    persisted.append(unique)
    unique_count = unique.count()
    duplicate_count = rows_in - unique_count
    near, near_count, near_facts = None, 0, {}
    if near_dedup_config is not None:
        from quality.dedup.engine import near_dedup

        near = near_dedup(unique, near_dedup_config, log=lambda line: None)
        near_kept = near.kept.drop("cluster_id").persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(near_kept)
        near_count = unique_count - near_kept.count()
        near_facts = near.facts
        duplicates = duplicates.select(*reject_columns).unionByName(
            near.rejected.withColumn("stage", F.lit(stage)).select(*reject_columns)
        )
        unique = near_kept
    if text_filters:
        from quality.filters import FilterConfig, apply_filters, load_profiles
        from quality.signals import SignalConfig, compute_signals

        profiles = load_profiles(filter_config or FilterConfig())
        signals = compute_signals(unique, signal_config or SignalConfig())
        signals = signals.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(signals)
        kept, filtered = apply_filters(unique, signals, profiles)
        filtered = filtered.withColumn("stage", F.lit(stage))
    else:
        kept, filtered = unique, duplicates.limit(0)
    rejected = duplicates.select(*reject_columns).unionByName(filtered.select(*reject_columns))
    return CodePagesResult(
        kept, rejected, rows_in, duplicate_count, near_count, near_facts, _persisted=persisted, _near=near
    )
