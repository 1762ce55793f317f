"""Web recall on real pages: the committed sample of documentation sites (recipes/data/web_sample).

The Spark tests share one small pool (every sixth page of the sample, ~90 pages) so the whole
module stays within its time budget.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from quality.expectations import conservation
from quality.recall import (
    FastTextConfig,
    GroupStat,
    RecallConfig,
    Scorer,
    build_vocabulary,
    code_domains,
    code_patterns,
    read_round_state,
    run_round,
    segment,
    train_classifier,
    url_pattern,
)
from quality.storage import StorageLayout, read_manifest, read_stage, write_stage
from quality.web import (
    LABEL_CODE,
    LABEL_OTHER,
    WebIngestConfig,
    WebInputConfig,
    code_block_stats,
    domain_of,
    ingest_web,
    inline_code_spans,
    judge_page,
    label_for,
    page_url,
)
from quality.webpool import SAMPLE_POOL, PoolPage, write_warc

POOL_EVERY = 6  # the Spark tests' pool: every sixth page of the sample
NAVIGATION_MARKERS = (
    "Previous topic",
    "Next topic",
    "This Page",
    "Quick search",
    "Report a Bug",
    "Navigation",
)


def sample_pages(every: int = 1) -> list[PoolPage]:
    """Pages of the committed sample (every n-th record), with their public URLs."""
    from warcio.archiveiterator import ArchiveIterator

    pages = []
    with open(SAMPLE_POOL, "rb") as handle:
        for index, record in enumerate(ArchiveIterator(handle)):
            if record.rec_type != "response" or index % every:
                continue
            url = record.rec_headers.get_header("WARC-Target-URI")
            pages.append(PoolPage(url, record.content_stream().read(), "2024-01-01T00:00:00Z", "sample", ""))
    return pages


def judge(url: str, html: bytes | str, **kwargs) -> dict:
    data = html.encode() if isinstance(html, str) else html
    return judge_page(
        input_index=0,
        input_name="t",
        key=url,
        url=url,
        read=lambda: data,
        size=len(data),
        config=kwargs.pop("config", WebIngestConfig()),
        **kwargs,
    )


# ------------------------------------------------------------------------------------------------
# Extraction (no Spark)
# ------------------------------------------------------------------------------------------------


def test_extraction_keeps_code_blocks_and_drops_navigation_on_a_real_page():
    page = next(p for p in sample_pages() if p.url.endswith("/library/contextlib.html"))
    row = judge(page.url, page.html)
    assert row["reason"] is None, row["detail"]
    text = row["content"]
    # The page's first example, inside a fenced block, exactly as the documentation shows it.
    assert (
        "```\nfrom contextlib import contextmanager\n@contextmanager\ndef managed_resource(*args, **kwds):"
        in text
    )
    assert row["code_blocks"] >= 10 and row["label"] == LABEL_CODE
    for marker in NAVIGATION_MARKERS:
        assert marker in page.html.decode()  # the raw page has its sidebar...
        assert marker not in text  # ...the main text does not
    assert row["domain"] == "docs.python.org" and row["page_lang"] == "en"
    assert row["source"] == "web" and row["lang"] == "text" and row["url"] == page.url


def test_docbook_program_listings_become_code_blocks():
    # The Debian handbook marks code as <pre class="programlisting">, which trafilatura alone
    # renders as plain paragraphs; the page must still count its blocks.
    pages = [p for p in sample_pages() if "debian-handbook.info" in p.url and b"programlisting" in p.html]
    assert pages
    rows = [judge(p.url, p.html) for p in pages[:5]]
    assert any(r["code_blocks"] > 0 for r in rows)
    assert all(r["page_lang"] != "und" for r in rows)


def test_synthetic_page_navigation_dropped_code_kept():
    nav = "".join(f'<li><a href="/p{i}">Menu entry {i}</a></li>' for i in range(30))
    prose = " ".join(
        f"Paragraph {i} explains how the parser reads a configuration file and reports errors."
        for i in range(8)
    )
    html = f"""<!DOCTYPE html><html lang="en"><head><title>Parsing config</title></head><body>
    <header><nav><ul>{nav}</ul></nav></header>
    <div class="sidebar"><h3>Related</h3><ul>{nav}</ul></div>
    <main><article><h1>Parsing configuration files</h1><p>{prose}</p>
    <div class="highlight"><pre><span class="k">def</span> <span class="nf">load</span>(path):
    <span class="k">with</span> open(path) <span class="k">as</span> handle:
        <span class="k">return</span> parse(handle.read())</pre></div>
    <p>{prose}</p><pre>$ parser --check settings.ini
ok</pre><p>{prose}</p></article></main>
    <footer><p>Copyright footer text that no reader wants.</p>{nav}</footer></body></html>"""
    row = judge("https://example.org/guide/config.html", html)
    assert row["reason"] is None, row["detail"]
    assert (
        "def load(path):\n    with open(path) as handle:\n        return parse(handle.read())"
        in row["content"]
    )
    assert row["code_blocks"] == 2
    assert "Menu entry" not in row["content"] and "Copyright footer" not in row["content"]
    assert row["title"] == "Parsing config" and row["page_lang"] == "en"
    blocks, chars = code_block_stats(row["content"])
    assert (blocks, chars) == (row["code_blocks"], row["code_chars"])


@pytest.mark.parametrize(
    ("url", "html", "kwargs", "reason"),
    [
        (None, "<html><body><p>x</p></body></html>", {}, "missing_url"),
        ("mailto:someone@example.org", "<html></html>", {}, "bad_url"),
        ("https://example.org/a", "   \n", {}, "empty"),
        ("https://example.org/a", b"<html>\x00\x01</html>", {}, "binary"),
        ("https://example.org/a", "just some words, no markup at all", {}, "not_html"),
        ("https://example.org/a", b"<html><body>caf\xe9 \xff\xfe</body></html>", {}, "undecodable"),
        ("https://example.org/a", "<html><body><p>short</p></body></html>", {}, "too_short"),
        ("https://example.org/a", "<html><body><p>x</p></body></html>", {"http_status": 404}, "http_status"),
        ("https://example.org/a", "%PDF-1.4", {"content_type": "application/pdf"}, "not_html"),
        (
            "https://example.org/a",
            "<html>" + "<p>x</p>" * 2000 + "</html>",
            {"config": WebIngestConfig(max_page_bytes=1000)},
            "too_large",
        ),
    ],
)
def test_bad_pages_get_a_reason(url, html, kwargs, reason):
    row = judge(url, html, **kwargs)
    assert row["reason"] == reason, (row["reason"], row["detail"])
    assert row["doc_id"] and row["detail"]


def test_urls_domains_and_patterns():
    handbook = WebInputConfig(
        name="hb",
        kind="folder",
        path="/x",
        url_base="https://debian-handbook.info/browse",
        url_rewrite=(r"^([^/]+)/", r"\1/stable/"),
    )
    assert page_url(handbook, "fr-FR/apt.html") == "https://debian-handbook.info/browse/fr-FR/stable/apt.html"
    assert domain_of("https://www.Debian.org:443/doc/x.html") == "debian.org"
    assert url_pattern("https://docs.python.org/3.11/library/json.html", 2) == "docs.python.org/3.11/library/"
    assert url_pattern("https://www.debian.org/index.html", 2) == "debian.org/"


def test_segmentation_is_bounded_and_keeps_code_punctuation():
    config = FastTextConfig(max_tokens_per_page=50)
    pieces = segment("def parseHTTPResponse(raw_bytes): return {'k': 12} # コード `x`", config)
    assert pieces[:4] == ["def", "<camel>", "parse", "http"]
    assert "(" in pieces and "_" in pieces and "<num>" in pieces and "コ" in pieces and "`" not in pieces
    assert len(segment("word " * 500, config)) == 50
    vocabulary = build_vocabulary([["a", "b", "a"], ["c", "a", "b"]], max_vocab=2)
    assert vocabulary == ["a", "b"]


# ------------------------------------------------------------------------------------------------
# Domain discovery (no Spark)
# ------------------------------------------------------------------------------------------------


def test_domain_discovery_promotes_above_threshold_only():
    stats = [
        GroupStat("code.example", pages=100, recalled=15),  # 15% > 10%: code-related
        GroupStat("prose.example", pages=100, recalled=8),  # 8%: not
        GroupStat("edge.example", pages=100, recalled=10),  # exactly 10% is not "more than"
        GroupStat("tiny.example", pages=3, recalled=3),  # all recalled, but too small to judge
    ]
    assert code_domains(stats, threshold=0.10, min_pages=5) == ["code.example"]
    patterns = [
        GroupStat("code.example/docs/", 40, 30),
        GroupStat("code.example/blog/", 60, 5),
        GroupStat("code.example/api/", 2, 2),
    ]
    assert code_patterns(patterns, min_share=0.5, min_pages=3) == ["code.example/docs/"]


# ------------------------------------------------------------------------------------------------
# A classifier on a clearly separable real sample (no Spark)
# ------------------------------------------------------------------------------------------------


def test_label_rule_leaves_code_dense_reference_prose_unlabelled():
    config = WebIngestConfig()
    prose = "The parser reads the file and reports every error it finds. " * 20
    reference = "Call `load()` with a `Path`; it returns a `Config` or raises `ParseError`. " * 16
    assert inline_code_spans("a `b` c\n```\n`not inline`\n```\n`d`") == 2
    assert label_for(0, 0, len(prose), config, inline_code_spans(prose)) == LABEL_OTHER
    assert label_for(0, 0, len(reference), config, inline_code_spans(reference)) is None
    assert label_for(3, 400, 2000, config) == LABEL_CODE
    assert label_for(1, 400, 2000, config) is None  # one block is not a clear case


def test_classifier_trained_on_separable_real_sample_recalls_code_pages(tmp_path):
    rows = [judge(p.url, p.html) for p in sample_pages(every=2)]
    rows = [r for r in rows if r["reason"] is None]
    # Code-labelled pages (Python, Rust, Node, npm, Basic macros, shell) against pages without a
    # code block (office help, accounting guides in five languages, Debian prose).
    code = [r for r in rows if r["label"] == LABEL_CODE]
    prose = [r for r in rows if r["label"] == LABEL_OTHER]
    assert len(code) >= 14 and len(prose) >= 60
    config = FastTextConfig(epoch=100)  # ~10 code pages to train on: more passes than the default
    train_code, test_code = code[::2], code[1::2]
    # Twice as many prose pages as code pages to train on (prose is six times as common here).
    train_prose, test_prose = prose[::2][: 2 * len(train_code)], prose[1::2]
    model = train_classifier(
        [segment(r["content"], config) for r in train_code],
        [segment(r["content"], config) for r in train_prose],
        config,
        seed=7,
        workdir=str(tmp_path / "model"),
    )
    scorer = Scorer(model.model_path, model.vocab_path, config)
    code_scores = scorer.scores([r["content"] for r in test_code])
    prose_scores = scorer.scores([r["content"] for r in test_prose])
    recall = sum(s >= 0.5 for s in code_scores) / len(code_scores)
    false_alarms = sum(s >= 0.5 for s in prose_scores) / len(prose_scores)
    assert recall >= 0.8, recall
    assert false_alarms <= 0.2, false_alarms
    assert 0 < model.vocabulary_size <= config.max_vocab


# ------------------------------------------------------------------------------------------------
# Spark: ingest conservation, rounds determinism
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool_inputs(tmp_path_factory) -> tuple[WebInputConfig, ...]:
    root = tmp_path_factory.mktemp("pool")
    pages = sample_pages(every=POOL_EVERY)
    write_warc(root / "pool.warc.gz", pages)
    # A WARC whose second half is garbage: its good records count, the rest is one reject row.
    good = gzip.compress(b"")
    write_warc(root / "broken" / "head.warc.gz", pages[:2])
    broken = (root / "broken" / "head.warc.gz").read_bytes() + good + b"\x1f\x8b\x08\x00garbage-not-gzip" * 10
    (root / "broken" / "head.warc.gz").write_bytes(broken)
    lines = [
        json.dumps({"url": pages[0].url, "html": pages[0].html.decode()}),  # same URL as in the WARC
        json.dumps({"url": "https://example.org/no-html"}),
        json.dumps({"html": "<html><body><p>no url</p></body></html>"}),
        "{not json",
        json.dumps({"url": "ftp://example.org/x", "html": "<html></html>"}),
        "",
    ]
    (root / "pages.jsonl").write_text("\n".join(lines) + "\n")
    folder = root / "site"
    (folder / "guide").mkdir(parents=True)
    (folder / "guide" / "page.html").write_bytes(pages[1].html)
    (folder / "guide" / "empty.html").write_bytes(b"")
    (folder / "guide" / "image.html").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    # Script only: no main text. Another encoding, declared: kept. Another encoding, declared
    # as UTF-8: undecodable.
    (folder / "guide" / "script.html").write_text(
        "<html><head><script>var x = 1;</script></head><body><script>document.write(x)</script></body></html>"
    )
    prose = "Caf\u00e9 cr\u00e8me \u2013 a na\u00efve page about coffee and how it is brewed. " * 12
    (folder / "guide" / "latin.html").write_bytes(
        f'<html><head><meta charset="windows-1252"></head><body><p>{prose}</p></body></html>'.encode("cp1252")
    )
    (folder / "guide" / "sjis.html").write_bytes(
        (
            '<html><head><meta charset="utf-8"></head><body><p>'
            + "日本語の文章です。" * 40
            + "</p></body></html>"
        ).encode("shift_jis")
    )
    # A WARC that breaks off inside its last record: gzip and warcio read it without an error,
    # short; the record's declared length tells.
    write_warc(root / "truncated" / "cut.warc.gz", pages[2:5])
    whole = (root / "truncated" / "cut.warc.gz").read_bytes()
    (root / "truncated" / "cut.warc.gz").write_bytes(whole[: len(whole) - 400])
    return (
        WebInputConfig(name="warc", kind="warc", path=str(root / "pool.warc.gz")),
        WebInputConfig(name="broken", kind="warc", path=str(root / "broken")),
        WebInputConfig(name="truncated", kind="warc", path=str(root / "truncated")),
        WebInputConfig(name="jsonl", kind="jsonl", path=str(root / "pages.jsonl")),
        WebInputConfig(name="site", kind="folder", path=str(folder), url_base="https://site.example/docs"),
    )


@pytest.fixture(scope="module")
def web_home(spark, pool_inputs, tmp_path_factory) -> StorageLayout:
    layout = StorageLayout(str(tmp_path_factory.mktemp("home")))
    result = ingest_web(spark, pool_inputs, WebIngestConfig())
    try:
        write_stage(
            result.kept,
            result.rejected,
            paths=layout.stage("web_pages"),
            rows_in=result.rows_in,
            recipe_hash="test",
            extra={"rows_in_by_input": result.rows_in_by_input},
        )
    finally:
        result.release()
    return layout


@pytest.mark.slow
def test_ingest_conserves_every_unit_and_names_reasons(web_home, pool_inputs):
    paths = web_home.stage("web_pages")
    manifest = read_manifest(paths)
    pages = len(sample_pages(every=POOL_EVERY))
    # WARC records + 2 good records of the broken file + its rest + 3 records of the truncated
    # file + 5 non-blank JSONL lines + 6 files
    assert manifest["rows_in"] == pages + 2 + 1 + 3 + 5 + 6
    with duckdb.connect() as connection:
        passed, facts = conservation(connection, paths)
        assert passed, facts
        reasons = dict(
            connection.execute(
                "SELECT reason, count(*) FROM read_parquet(?) GROUP BY reason",
                [f"{paths.rejected_dir}/*.parquet"],
            ).fetchall()
        )
        kept = connection.execute(
            "SELECT count(*), count(DISTINCT url), min(source), max(source), count(*) FILTER (WHERE url IS NULL) "
            "FROM read_parquet(?)",
            [f"{paths.data_dir}/*.parquet"],
        ).fetchone()
    for reason in (
        "corrupt_warc",
        "truncated_record",
        "undecodable",
        "duplicate_url",
        "missing_html",
        "missing_url",
        "malformed_json",
        "bad_url",
    ):
        assert reasons.get(reason, 0) >= 1, (reason, reasons)
    assert reasons.get("empty", 0) >= 1 and reasons.get("binary", 0) + reasons.get("not_html", 0) >= 1
    assert reasons.get("no_main_text", 0) + reasons.get("too_short", 0) >= 1  # the script-only page
    with duckdb.connect() as connection:
        latin = connection.execute(
            "SELECT content FROM read_parquet(?) WHERE url LIKE '%/guide/latin.html'",
            [f"{paths.data_dir}/*.parquet"],
        ).fetchone()
    assert latin and "Caf\u00e9 cr\u00e8me \u2013 a na\u00efve page" in latin[0]
    # The same page came three times (WARC, JSONL, folder under another URL): one URL, one row.
    assert kept[0] == kept[1] and kept[2] == kept[3] == "web" and kept[4] == 0
    assert manifest["rows_in_by_input"]["jsonl"] == 5


def _run_rounds(spark, layout: StorageLayout, home: Path, config: RecallConfig, rounds: int) -> list[dict]:
    pool = read_stage(spark, layout.stage("web_pages"))
    out_layout = StorageLayout(str(home))
    manifests, previous = [], None
    for number in range(1, rounds + 1):
        result = run_round(
            spark,
            pool,
            round_number=number,
            config=config,
            workdir=f"{out_layout.data_root}/web_recall",
            previous_recalled=previous,
        )
        try:
            manifest = write_stage(
                result.kept,
                result.rejected,
                paths=out_layout.stage(f"recall_round_{number}"),
                rows_in=result.rows_in,
                recipe_hash="test",
                extra={"recall": result.metrics},
            )
        finally:
            result.release()
        manifests.append(manifest)
        previous = read_stage(spark, out_layout.stage(f"recall_round_{number}")).select("doc_id")
    return manifests


@pytest.mark.slow
def test_rounds_are_deterministic_conserving_and_grow_seeds(spark, web_home, tmp_path):
    config = RecallConfig(
        rounds=2,
        seed=5,
        seed_url_patterns=("docs.python.org/3.11/", "doc.rust-lang.org/stable/book/"),
        negatives_per_positive=1.0,
        min_domain_pages=3,
        pattern_min_share=0.3,
        min_pattern_pages=2,
        fasttext=FastTextConfig(epoch=20),
    )
    first = _run_rounds(spark, web_home, tmp_path / "a", config, rounds=2)
    # The same settings but a stopping rule that fires at once (no domain can be code-related,
    # so round 1 finds no new one and adds no seed): round 2 keeps round 1's model.
    stopping = replace(config, stop_min_new_seeds=10**6, min_domain_pages=10**6)
    again = _run_rounds(spark, web_home, tmp_path / "b", stopping, rounds=2)
    # Byte-identical outputs of the same round: the same model, the same scores, the same rows.
    assert first[0]["checksum"] == again[0]["checksum"]
    assert first[0]["recall"]["model_sha256"] == again[0]["recall"]["model_sha256"]
    assert again[0]["recall"]["stopped_at_round"] == 1 and again[1]["recall"]["trained"] is False
    assert again[1]["recall"]["model_sha256"] == again[0]["recall"]["model_sha256"]
    assert again[1]["recall"]["pages_recalled"] == again[0]["recall"]["pages_recalled"]
    assert again[0]["recall"]["seeds_added_for_next_round"] == 0
    assert first[0]["recall"]["trained"] is True
    for manifest in first:
        assert manifest["rows_in"] == manifest["rows_out"] + manifest["rows_rejected"]
        assert manifest["rows_rejected"] == manifest["rejected_by_reason"].get("below_threshold", 0)
    with duckdb.connect() as connection:
        passed, facts = conservation(connection, StorageLayout(str(tmp_path / "a")).stage("recall_round_2"))
    assert passed, facts
    state = read_round_state(f"{tmp_path / 'a'}/data/web_recall", 1)
    metrics = first[0]["recall"]
    assert metrics["heldout_labelled"] > 0 and metrics["pages_per_second_scored"] > 0
    # Round 2 trains on round 1's seeds plus what its domain discovery added.
    assert first[1]["recall"]["seeds"] == metrics["seeds"] + metrics["seeds_added_for_next_round"]
    assert set(state["new_domains"]) <= set(state["code_domains"])
    # Seeds grow only by high-confidence pages of code URL patterns; negatives are measured.
    with duckdb.connect() as connection:
        whys = [
            row[0]
            for row in connection.execute(
                "SELECT why FROM read_parquet(?) WHERE added_in_round = 2",
                [f"{tmp_path / 'a'}/data/web_recall/round_1/next_seeds/*.parquet"],
            ).fetchall()
        ]
    assert all(float(why.rsplit("score=", 1)[1]) >= config.grow_min_score for why in whys), whys
    assert len(whys) == metrics["seeds_added_for_next_round"]
    assert metrics["train_negatives_labelled_code"] + metrics["train_negatives_labelled_other"] > 0


@pytest.mark.slow
def test_code_web_pages_removes_mirrors_with_the_minhash_engine(spark, web_home):
    """Mirrors and versioned copies (another host, a banner and a version changed) are
    `near_duplicate` reject rows naming the page kept in their place; exact copies stay
    `exact_duplicate`; every recalled page is kept or rejected."""
    from pyspark.sql import functions as F

    from quality.dedup.config import DedupConfig
    from quality.recall import clean_code_pages
    from quality.schema import content_sha256, make_doc_id

    pool = read_stage(spark, web_home.stage("web_pages")).filter(F.col("label") == LABEL_CODE)
    originals = pool.orderBy("doc_id").limit(3).collect()
    assert len(originals) == 3
    mirrors = []
    for row in originals:
        mirror = row.asDict()
        url = row["url"].replace("://", "://mirror.example.net/", 1)
        mirror["content"] = "Mirrored copy, documentation version 2.1.\n" + row["content"].replace(
            "3.11", "3.10"
        )
        mirror.update(
            url=url,
            doc_id=make_doc_id("web", url),
            sha256=content_sha256(mirror["content"]),
            domain="mirror.example.net",
            commit_date="2020-01-01T00:00:00+00:00",  # older: the keep policy keeps the original
        )
        mirrors.append(mirror)
    # An exact copy under a URL that sorts last (the smallest URL wins a tie of scores).
    copy_url = "https://zz-copy.example.org/x"
    exact = {**originals[0].asDict(), "url": copy_url, "doc_id": make_doc_id("web", copy_url)}
    recalled = pool.unionByName(spark.createDataFrame([*mirrors, exact], pool.schema)).withColumn(
        "score", F.lit(0.9)
    )
    result = clean_code_pages(
        recalled,
        stage="code_web_pages",
        text_filters=False,
        near_dedup_config=DedupConfig(threshold=0.7, num_bands=32, rows_per_band=8, min_tokens=50),
    )
    try:
        kept = {r["doc_id"] for r in result.kept.select("doc_id").collect()}
        rejected = result.rejected.collect()
    finally:
        result.release()
    by_id = {r["doc_id"]: r for r in rejected}
    assert result.rows_in == len(kept) + len(rejected)
    assert result.duplicates == 1 and by_id[exact["doc_id"]]["reason"] == "exact_duplicate"
    assert result.near_duplicates >= 3
    for mirror, original in zip(mirrors, originals, strict=True):
        row = by_id[mirror["doc_id"]]
        assert row["reason"] == "near_duplicate" and row["stage"] == "code_web_pages", row
        assert row["kept_doc_id"] == original["doc_id"] and original["doc_id"] in kept
