"""Quality signals and threshold profiles on real files of this machine (stdlib and site-packages).

Known bad files of the demo corpus must be dropped for the right reason, ordinary standard-library
modules must survive, and the Spark path must decide exactly as the Python one does.
"""

from __future__ import annotations

import sysconfig
import time
from pathlib import Path

import pyarrow as pa
import pytest

from quality.filters import FilterConfig, decide_batch, drop_unit, load_profiles
from quality.recipe import RecipeError
from quality.schema import make_doc_id
from quality.signals import SIGNALS, SignalConfig, document_signals, signal_batch, string_literals
from quality.textio import decode_text

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SITE = Path(sysconfig.get_paths()["purelib"])
PROFILES = load_profiles()

# Ordinary modules a code corpus wants to keep.
ORDINARY = [
    "os.py", "argparse.py", "textwrap.py", "json/encoder.py", "json/decoder.py", "functools.py",
    "shutil.py", "subprocess.py", "csv.py", "difflib.py", "heapq.py", "pathlib.py", "tempfile.py",
    "dataclasses.py", "enum.py", "inspect.py", "pprint.py", "random.py", "statistics.py",
    "fractions.py", "calendar.py", "base64.py", "gzip.py", "zipfile.py", "configparser.py",
    "ipaddress.py", "urllib/parse.py", "http/client.py", "email/message.py", "html/parser.py",
]  # fmt: skip


def _row(path: Path, lang: str, source: str = "test") -> dict:
    text = decode_text(path.read_bytes())  # as ingest decodes it (PEP 263 cookies honoured)
    return {
        "doc_id": make_doc_id(source, str(path)),
        "content": text,
        "lang": lang,
        "path": path.name,
        "size_bytes": len(text.encode("utf-8")),
    }


def _judge(rows: list[dict], config: SignalConfig | None = None) -> dict[str, tuple[list[str], dict]]:
    """path -> (fired rule names in order, signals), computed on one Arrow batch like Spark does."""
    table = signal_batch(pa.RecordBatch.from_pylist(rows), config or SignalConfig()).to_pylist()
    out = {}
    for row, signals in zip(rows, table, strict=True):
        fired = [rule.name for rule, _ in PROFILES.fired_rules(signals, row["doc_id"], row["lang"])]
        out[row["path"]] = (fired, signals)
    return out


def _first(*candidates: Path) -> Path:
    found = [p for p in candidates if p.is_file()]
    if not found:
        pytest.fail(f"none of the corpus files exists: {candidates}")
    return found[0]


# ---- profiles as data ------------------------------------------------------------------------
def test_profiles_cover_the_required_languages_and_starcoder_rules():
    names = set(PROFILES.profiles)
    assert {
        "general",
        "python",
        "java",
        "javascript",
        "c",
        "cpp",
        "go",
        "shell",
        "html",
        "data",
        "text",
    } <= names
    rules = {p.name: {r.name: r for r in p.rules} for p in PROFILES.profiles.values()}
    general = rules["general"]
    # OpenCoder's released alpha rule: under half of the non-whitespace characters are letters.
    assert (general["alpha_fraction"].signal, general["alpha_fraction"].value) == ("frac_alpha_visible", 0.5)
    assert (general["long_lines_max"].op, general["long_lines_max"].value) == ("gt", 1000)
    assert (general["long_lines_mean"].op, general["long_lines_mean"].value) == ("gt", 100)
    assert general["xml_header"].signal == "xml_header"
    assert (rules["html"]["html_visible_chars"].value, rules["html"]["html_visible_fraction"].value) == (
        100,
        0.2,
    )
    assert (
        rules["data"]["data_size"].value == (50, 5000) and rules["data"]["data_alpha_fraction"].value == 0.5
    )
    assert rules["python"]["py_no_logic"].drop_probability == 0.8
    for profile in PROFILES.profiles.values():
        for rule in profile.rules:
            assert rule.signal in SIGNALS or rule.signal == "size_bytes", (profile.name, rule.name)
    assert PROFILES.profile_for("python").name == "python" and PROFILES.profile_for("rust").name == "general"
    assert PROFILES.profile_for("json").name == "data" and PROFILES.profile_for("markdown").name == "text"


def test_profiles_refuse_code_typos_and_unknown_signals(tmp_path):
    (tmp_path / "general.yaml").write_text(
        "name: general\nlanguages: ['*']\nrules:\n  r1: {signal: frac_alpha, gt: 'lambda x: x > 0.5'}\n"
    )
    with pytest.raises(RecipeError, match="needs a number"):
        load_profiles(FilterConfig(profiles_dir=str(tmp_path)))
    (tmp_path / "general.yaml").write_text(
        "name: general\nlanguages: ['*']\nrules:\n  r1: {signal: frac_alfa, gt: 1}\n"
    )
    with pytest.raises(RecipeError, match="unknown signal"):
        load_profiles(FilterConfig(profiles_dir=str(tmp_path)))
    with pytest.raises(RecipeError, match="unknown profile"):
        load_profiles(FilterConfig(overrides={"pyhton": {"py_pass_lines": {"gt": 0.5}}}))


def test_threshold_change_is_a_config_change_not_a_recompute():
    row = _row(STDLIB / "numbers.py", "python")
    fired, signals = _judge([row])["numbers.py"]
    assert "top_3gram" in fired
    relaxed = load_profiles(
        FilterConfig(
            overrides={"python": {"top_3gram": {"gt": 0.9}, "top_4gram": None, "py_func_ratio": {"gt": 0.5}}}
        )
    )
    assert [r.name for r, _ in relaxed.fired_rules(signals, row["doc_id"], "python")] == []
    assert relaxed.fingerprint() != PROFILES.fingerprint()


def test_probabilistic_drop_is_seeded_by_doc_id():
    units = [drop_unit(f"doc{i}", "py_no_logic", 0) for i in range(4000)]
    assert units == [drop_unit(f"doc{i}", "py_no_logic", 0) for i in range(4000)]
    share = sum(u < 0.8 for u in units) / len(units)
    assert 0.77 < share < 0.83
    assert units != [drop_unit(f"doc{i}", "py_no_logic", 1) for i in range(4000)]
    signals = {"py_no_logic_score": 0.9, "py_parses": True, "num_words": 100, "num_chars": 1000}
    dropped = [bool(PROFILES.fired_rules(signals, f"doc{i}", "python")) for i in range(2000)]
    assert 0.76 < sum(dropped) / len(dropped) < 0.84


# ---- the real corpus ---------------------------------------------------------------------------
def test_known_bad_files_are_dropped_for_the_right_reason():
    cases = {
        # minified JavaScript bundle (dagster_webserver ships it; in the demo corpus)
        "graphiql.min.js": (
            _first(SITE / "dagster_webserver/graphiql/graphiql.min.js"),
            "javascript",
            "long_lines_max",
        ),
        # generated protobuf module
        "descriptor_pb2.py": (_first(SITE / "google/protobuf/descriptor_pb2.py"), "python", "autogenerated"),
        # data-heavy modules: a Unicode table and an emoji dictionary
        "uts46data.py": (_first(SITE / "pip/_vendor/idna/uts46data.py"), "python", "alpha_fraction"),
        "_emoji_codes.py": (_first(SITE / "pip/_vendor/rich/_emoji_codes.py"), "python", "string_fraction"),
        # XML with its header
        "inC14N1.xml": (_first(STDLIB / "test/xmltestdata/c14n-20/inC14N1.xml"), "xml", "xml_header"),
        # long lines: pygments' lexer table
        "_mapping.py": (
            _first(SITE / "pip/_vendor/pygments/lexers/_mapping.py"),
            "python",
            "long_lines_mean",
        ),
        # Python 2 source does not parse with ast
        "different_encoding.py": (
            _first(STDLIB / "lib2to3/tests/data/different_encoding.py"),
            "python",
            "python_syntax_error",
        ),
    }
    rows = [_row(path, lang) for path, lang, _ in cases.values()]
    judged = _judge(rows)
    for name, (_, _, rule) in cases.items():
        fired, signals = judged[name]
        assert rule in fired, (name, fired)
    assert judged["descriptor_pb2.py"][0][0] == "autogenerated"
    assert judged["graphiql.min.js"][1]["max_line_length"] > 1000


def test_ordinary_stdlib_modules_survive():
    rows = [_row(STDLIB / name, "python") for name in ORDINARY]
    for name, (fired, signals) in _judge(rows).items():
        assert fired == [], (name, fired)
        assert signals["py_parses"] is True and not signals["timed_out"]


def test_signals_measure_what_they_say():
    text = 'import os\n\n\ndef f(x):\n    """Doc."""\n    return x  # TODO: more\n\n\nprint(f("a long string here"))\n'
    signals = document_signals(text, "python", "m.py", SignalConfig())
    assert signals["py_parses"] and signals["py_func_ratio"] > 0 and signals["py_frac_print_lines"] > 0
    assert signals["frac_prompt_comment_lines"] > 0 and signals["frac_comment_chars"] > 0
    assert string_literals("a = 'x' + \"y\" + '''z\nw'''") == ["x", "y", "z\nw"]
    assert string_literals("s = '''never closed") == ["never closed"]  # linear, no backtracking
    html = (
        "<html><head><script>var x = 1;</script></head><body><p>"
        + "Visible words here. " * 10
        + "</p></body></html>"
    )
    page = document_signals(html, "html", "p.html", SignalConfig())
    assert page["html_visible_chars"] == len(("Visible words here. " * 10).strip())


def test_time_budget_bounds_a_pathological_document():
    # 400k distinct short words on one line: the word and n-gram groups are expensive.
    text = " ".join(f"w{i}x{i * 7}" for i in range(400_000))
    started = time.perf_counter()
    signals = document_signals(text, "python", "huge.py", SignalConfig(time_budget_s=0.05))
    elapsed = time.perf_counter() - started
    assert signals["timed_out"] is True and "time budget" in signals["signal_errors"]
    assert elapsed < 2.0
    fired = [r.name for r, _ in PROFILES.fired_rules(signals, "x", "python")]
    assert fired[0] == "signals_timeout"


def test_batch_decisions_match_the_per_document_evaluator():
    rows = [_row(p, "python") for p in sorted((STDLIB / "json").glob("*.py"))]
    rows += [_row(_first(SITE / "google/protobuf/descriptor_pb2.py"), "python")]
    rows += [_row(p, "xml") for p in sorted((STDLIB / "test/xmltestdata/c14n-20").glob("*.xml"))[:12]]
    table = signal_batch(pa.RecordBatch.from_pylist(rows), SignalConfig())
    decided = decide_batch(table, PROFILES).to_pylist()
    for row, signals, verdict in zip(rows, table.to_pylist(), decided, strict=True):
        fired = [r.name for r, _ in PROFILES.fired_rules(signals, row["doc_id"], row["lang"])]
        assert verdict["reason"] == (fired[0] if fired else None)
        if fired:  # detail names every rule that fired, in order
            named = [piece.split(":")[0] for piece in verdict["detail"].split(": ", 1)[1].split("; ")]
            assert named == fired
