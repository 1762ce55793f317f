"""The filter stage's ablation knobs: `quality_filter.min_stars` and `quality_filter.enabled`.

A handful of documents, judged once per setting by `apply_filters` on Spark (signals computed once):
  ordinary    json/encoder.py, 100 stars
  minified    one 6,000-character line of JavaScript, 100 stars  (long_lines_max fires)
  low         json/decoder.py, 2 stars
  low_minified  the minified line again, 2 stars                 (both rules fire)
  unknown     textwrap.py, stars unknown
  page        a web page (`source = web`), stars unknown          (never judged on stars)
  unsignalled heapq.py, 100 stars, no row in quality_signals      (missing_signals)
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
from pyspark.sql import types as T

from contracts.config import RecipeError, build_config
from quality.filters import FilterConfig, apply_filters, load_profiles, rule_hits
from quality.schema import DOCUMENT_FIELDS, content_sha256, make_doc_id
from quality.signals import SignalConfig, compute_signals

STDLIB = Path(sysconfig.get_paths()["stdlib"])
DOCUMENT_SCHEMA = T.StructType([T.StructField(f.name, f.dataType, True) for f in DOCUMENT_FIELDS])
MINIFIED = "var a=" + ",".join(f"function(x){{return x*{i}}}" for i in range(250)) + ";\n"


def _doc(name: str, content: str, stars: int | None, lang: str = "python", source: str = "code") -> dict:
    return {
        "doc_id": make_doc_id("ablation", name),
        "content": content,
        "path": name,
        "repo": None if source == "web" else "repo",
        "lang": lang,
        "ext": None,
        "size_bytes": len(content.encode()),
        "sha256": content_sha256(content),
        "stars": stars,
        "licence": None,
        "commit_date": None,
        "source": source,
        "url": "https://example.org/page" if source == "web" else None,
    }


@pytest.fixture(scope="module")
def judged(spark):
    docs = [
        _doc("ordinary", (STDLIB / "json/encoder.py").read_text(), 100),
        _doc("minified", MINIFIED, 100, "javascript"),
        _doc("low", (STDLIB / "json/decoder.py").read_text(), 2),
        _doc("low_minified", MINIFIED + "//", 2, "javascript"),
        _doc("unknown", (STDLIB / "textwrap.py").read_text(), None),
        _doc("page", "Reading a file in Python\n\nUse open() in a with block.\n" * 20, None, "text", "web"),
        _doc("unsignalled", (STDLIB / "heapq.py").read_text(), 100),
    ]
    frame = spark.createDataFrame(docs, DOCUMENT_SCHEMA).cache()
    signals = compute_signals(frame.filter("path != 'unsignalled'"), SignalConfig()).cache()

    def run(config: FilterConfig) -> tuple[dict[str, dict], dict[str, dict], dict[str, int]]:
        kept, rejected = apply_filters(frame, signals, load_profiles(config))
        kept_rows = {row["path"]: row.asDict() for row in kept.collect()}
        rejected_rows = {row["path"]: row.asDict() for row in rejected.collect()}
        assert len(kept_rows) + len(rejected_rows) == len(docs)  # conservation
        return kept_rows, rejected_rows, rule_hits(rejected) if rejected_rows else {}

    yield run
    frame.unpersist()
    signals.unpersist()


def _reasons(rejected: dict[str, dict]) -> dict[str, str]:
    return {path: row["reason"] for path, row in rejected.items()}


def test_knobs_are_validated_recipe_fields():
    config = build_config(FilterConfig, {"enabled": False, "min_stars": 5}, "quality_filter")
    assert config.enabled is False and config.min_stars == 5
    assert FilterConfig().enabled is True and FilterConfig().min_stars is None
    with pytest.raises(RecipeError, match="min_stars"):
        build_config(FilterConfig, {"min_stars": -1}, "quality_filter")
    # The fingerprint (a stage param) changes with either knob, and not for the defaults.
    default = load_profiles(FilterConfig()).fingerprint()
    assert load_profiles(FilterConfig(enabled=True, min_stars=None)).fingerprint() == default
    assert len({default, *(load_profiles(c).fingerprint() for c in (
        FilterConfig(enabled=False), FilterConfig(min_stars=5), FilterConfig(min_stars=6)
    ))}) == 4  # fmt: skip


def test_default_filters_judge_quality_only(judged):
    kept, rejected, _ = judged(FilterConfig())
    reasons = _reasons(rejected)
    assert reasons["minified"] == reasons["low_minified"] == "long_lines_max"
    assert reasons["unsignalled"] == "missing_signals"
    assert {"ordinary", "low", "unknown"} <= set(kept)


def test_min_stars_rejects_low_and_unknown_stars_before_the_profiles(judged):
    kept, rejected, hits = judged(FilterConfig(min_stars=10))
    reasons = _reasons(rejected)
    assert reasons["low"] == "min_stars" and rejected["low"]["detail"] == "min_stars: stars=2 < 10"
    assert reasons["unknown"] == "stars_unknown"
    assert reasons["low_minified"] == "min_stars"  # the stars rule is the reason...
    detail = rejected["low_minified"]["detail"]  # ...and the detail names every rule that fired
    assert detail.startswith("profile javascript: long_lines_max") and detail.endswith(
        "min_stars: stars=2 < 10"
    )
    assert reasons["minified"] == "long_lines_max"
    assert "ordinary" in kept and reasons.get("page") not in ("min_stars", "stars_unknown")
    assert hits["min_stars"] == 2 and hits["stars_unknown"] == 1 and hits["long_lines_max"] >= 2


def test_filters_off_keep_everything_but_what_min_stars_rejects(judged):
    kept, rejected, _ = judged(FilterConfig(enabled=False))
    assert rejected == {} and len(kept) == 7  # minified code and the unsignalled file included
    assert kept["minified"]["content"] == MINIFIED  # kept rows are the documents, untouched

    kept, rejected, _ = judged(FilterConfig(enabled=False, min_stars=10))
    assert _reasons(rejected) == {"low": "min_stars", "low_minified": "min_stars", "unknown": "stars_unknown"}
    assert rejected["low_minified"]["detail"] == "min_stars: stars=2 < 10"
    assert {"ordinary", "minified", "page", "unsignalled"} == set(kept)
