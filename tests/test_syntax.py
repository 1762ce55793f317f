"""OpenCoder's Java, JavaScript/TypeScript, C/C++ and Go rules measured on tree-sitter parses of
real files of each language on this machine (site-packages for JavaScript and C/C++; Debian
packages that `scripts/install-syntax-samples.sh` installs for Go, Java and TypeScript)."""

from __future__ import annotations

import sysconfig
import time
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from quality.filters import load_profiles
from quality.signals import SignalConfig, signal_batch
from quality.syntax import MAX_PARSED_BYTES, MAX_SECONDS, SyntaxTimeout, SyntaxTooDeep, syntax_facts
from quality.textio import decode_text

SITE = Path(sysconfig.get_paths()["purelib"])
PROFILES = load_profiles()


def _files(root: Path, pattern: str, count: int, max_bytes: int = 150_000) -> list[tuple[str, str]]:
    found = sorted(p for p in root.glob(pattern) if p.is_file() and p.stat().st_size <= max_bytes)
    # Minified bundles and code templates (torchgen's `${placeholders}`) are not source code.
    found = [p for p in found if ".min." not in p.name and "/templates/" not in str(p)]
    if not found:
        pytest.fail(f"no {pattern} under {root}: run scripts/install-syntax-samples.sh")
    step = max(1, len(found) // count)
    return [(str(p), decode_text(p.read_bytes())) for p in found[::step][:count]]


def _java_sources(count: int) -> list[tuple[str, str]]:
    for archive in sorted(Path("/usr/lib/jvm").glob("*/lib/src.zip")):
        if archive.exists():
            with zipfile.ZipFile(archive) as zipped:
                names = sorted(
                    n
                    for n in zipped.namelist()
                    if n.startswith("java.base/java/util/") and n.endswith(".java")
                )
                step = max(1, len(names) // count)
                return [(n, zipped.read(n).decode("utf-8")) for n in names[::step][:count]]
    pytest.fail("no JDK src.zip under /usr/lib/jvm: run scripts/install-syntax-samples.sh")


SAMPLES = {
    "javascript": lambda: _files(SITE, "**/*.js", 6),
    "c": lambda: _files(SITE, "**/*.c", 5),
    "cpp": lambda: _files(SITE, "**/*.cpp", 5),
    "go": lambda: _files(Path("/usr/share/gocode/src"), "**/*.go", 5),
    "typescript": lambda: _files(Path("/usr/share/nodejs"), "**/*.ts", 4),
    "java": lambda: _java_sources(5),
}


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_real_sources_parse_and_yield_counts(lang):
    samples = SAMPLES[lang]()
    facts = {path: syntax_facts(text, lang) for path, text in samples}
    assert all(f is not None for f in facts.values())
    parsed = [f for f in facts.values() if not f.has_error]
    # Real, released sources: the grammar reads nearly all of them without an error node, bar C
    # and C++, whose macros tree-sitter does not expand (no C rule depends on a clean parse).
    share = 0.4 if lang in ("c", "cpp") else 0.75
    assert len(parsed) >= share * len(facts), {p: f.has_error for p, f in facts.items()}
    assert sum(f.code_lines for f in facts.values()) > 100
    if lang != "typescript":  # the .ts files here are declarations and type tests
        assert sum(f.functions for f in facts.values()) > 0
        assert any(f.variables for f in facts.values())


def test_counts_follow_the_tree_not_the_text():
    java = (
        "import java.util.List;\n"
        "// int fake(int x) { return x; }  a comment is not a method\n"
        "class A {\n  List<String> names;\n  int f(int x) {\n    int y = x, z;\n    return y;\n  }\n}\n"
    )
    facts = syntax_facts(java, "java")
    assert (facts.functions, facts.classes, facts.imports) == (1, 1, 1)
    assert facts.variables == 3 and facts.bare_variables == 2 and facts.simple_returns == 1
    assert facts.code_lines == 8  # the comment line is not code
    go = 'package p\n\nimport "fmt"\n\nfunc F() {\n\tx := 1\n\tfmt.Println(x)\n}\n'
    g = syntax_facts(go, "go")
    assert (g.functions, g.imports, g.variables) == (1, 1, 1)
    assert syntax_facts("x = 1", "python") is None


def test_profiles_apply_the_syntax_rules():
    declarations_only = (
        "interface Shapes {\n" + "".join(f"  int area{i}(int s);\n" for i in range(30)) + "}\n"
    )
    row = {
        "doc_id": "d",
        "content": declarations_only,
        "lang": "java",
        "path": "Shapes.java",
        "size_bytes": 900,
    }
    signals = signal_batch(pa.RecordBatch.from_pylist([row]), SignalConfig()).to_pylist()[0]
    fired = [r.name for r, _ in PROFILES.fired_rules(signals, "d", "java")]
    assert signals["syntax_no_variables"] is True and "java_no_variables" in fired
    path, text = _java_sources(1)[0]
    row = {"doc_id": path, "content": text, "lang": "java", "path": path, "size_bytes": len(text)}
    signals = signal_batch(pa.RecordBatch.from_pylist([row]), SignalConfig()).to_pylist()[0]
    assert signals["syntax_parses"] is True and signals["syntax_func_ratio"] < 0.2


@pytest.mark.parametrize("lang", ["javascript", "c", "java", "go"])
def test_bad_input_gives_facts_not_a_crash(lang):
    nested = "(" * 50_000 + ")" * 50_000
    huge_line = "a = b + c; " * 150_000
    binary_like = "".join(chr(c) for c in range(1, 0x3000)) * 20
    for text in (nested, huge_line, binary_like):
        started = time.perf_counter()
        try:
            facts = syntax_facts(text, lang)
        except (SyntaxTimeout, SyntaxTooDeep):
            facts = None
        assert time.perf_counter() - started < MAX_SECONDS + 3  # bounded, whatever the input
        assert facts is None or facts.truncated is (len(text.encode()) > MAX_PARSED_BYTES)
    # Through the signal stage: a pass or a time-out the profiles reject, never an exception.
    row = {"doc_id": "n", "content": nested, "lang": lang, "path": "n", "size_bytes": len(nested)}
    signals = signal_batch(pa.RecordBatch.from_pylist([row]), SignalConfig()).to_pylist()[0]
    fired = [r.name for r, _ in PROFILES.fired_rules(signals, "n", lang)]
    assert fired, signals
