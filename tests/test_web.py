"""Web recall on real pages: the committed sample of documentation sites (recipes/data/web_sample).

The Spark tests share one small pool (every sixth page of the sample, ~90 pages) so the whole
module stays within its time budget.
"""

from __future__ import annotations

import gzip
import json
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
    judge_page,
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
    page = next(p for p in sample_pages() if p.url.endswith("/library/json.html"))
    row = judge(page.url, page.html)
    assert row["reason"] is None, row["detail"]
    text = row["content"]
    # The page's first example, inside a fenced block, exactly as the documentation shows it.
    assert "```\n>>> import json\n>>> json.dumps(['foo', {'bar': ('baz', None, 1.0, 2)}])" in text
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


def test_classifier_trained_on_separable_real_sample_recalls_code_pages(tmp_path):
    rows = [judge(p.url, p.html) for p in sample_pages(every=3)]
    rows = [r for r in rows if r["reason"] is None]
    # Clearly separable: code-labelled programming documentation (Python, Rust, Node, npm) vs
    # handbook pages (26 languages) without a single code block.
    code = [r for r in rows if r["label"] == LABEL_CODE and "debian" not in r["domain"]]
    prose = [r for r in rows if r["label"] == LABEL_OTHER and r["domain"] == "debian-handbook.info"]
    assert len(code) >= 25 and len(prose) >= 25
    config = FastTextConfig(epoch=100)  # ~35 training pages: more passes than the default
    train_code, test_code = code[::2], code[1::2]
    train_prose, test_prose = prose[::2], prose[1::2]
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
    return (
        WebInputConfig(name="warc", kind="warc", path=str(root / "pool.warc.gz")),
        WebInputConfig(name="broken", kind="warc", path=str(root / "broken")),
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
    # WARC records + 2 good records of the broken file + its rest + 5 non-blank JSONL lines + 3 files
    assert manifest["rows_in"] == pages + 2 + 1 + 5 + 3
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
        "duplicate_url",
        "missing_html",
        "missing_url",
        "malformed_json",
        "bad_url",
    ):
        assert reasons.get(reason, 0) >= 1, (reason, reasons)
    assert reasons.get("empty", 0) >= 1 and reasons.get("binary", 0) + reasons.get("not_html", 0) >= 1
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
    again = _run_rounds(spark, web_home, tmp_path / "b", config, rounds=1)
    # Byte-identical outputs of the same round: the same model, the same scores, the same rows.
    assert first[0]["checksum"] == again[0]["checksum"]
    assert first[0]["recall"]["model_sha256"] == again[0]["recall"]["model_sha256"]
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
