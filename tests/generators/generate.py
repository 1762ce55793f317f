"""Runs real code generators on the small inputs beside this file, for the generated-code checks.

`generate(run, out)` writes one generator's output for one target language into `out`;
`expected(run, relative_path, size)` says which `quality.generated` tool name each written file
must get, or why it is not asserted (an empty file, a package marker, openapi-generator's build,
CI and documentation files and the runtime templates it copies unchanged, none of which carries a
mark of the generator). tests/test_generated_real.py and
`python -m benchmarks.generated_code` use both. The generators are Debian packages
(scripts/install-generators.sh, `make generators`) and PyPI packages (the `generators` extra of
pyproject.toml); `missing(run)` names what is not installed.

Nothing here is a copy of generator output: every file is produced on this machine, at run time.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

INPUTS = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
QT5 = Path("/usr/lib/qt5/bin")
QT6 = Path("/usr/lib/qt6/libexec")


@dataclass(frozen=True)
class Run:
    """One generator invocation for one target language."""

    name: str
    # argv; "{in}" is the inputs folder, "{out}" the output folder, a leading "@python" this
    # interpreter. Runs in the inputs folder (rcc resolves a .qrc's files relative to it).
    argv: tuple[str, ...]
    # (glob over the path relative to the output folder, tool name) — first match wins.
    expect: tuple[tuple[str, str], ...]
    # (glob, why) for files the generator writes that carry no mark of it (see `expected`).
    exempt: tuple[tuple[str, str], ...] = ()
    # Why the files matched by neither `expect` nor `exempt` are not asserted; None: there are none.
    others: str | None = None
    # Executables (names on PATH or absolute paths) and Python modules the run needs.
    needs: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()


def _protoc(*flags: str) -> tuple[str, ...]:
    return ("protoc", "-I{in}", *flags, "{in}/inventory.proto")


def _thrift(lang: str) -> tuple[str, ...]:
    return ("thrift", "-o", "{out}", "--gen", lang, "{in}/inventory.thrift")


def _swig(lang: str, *extra: str) -> tuple[str, ...]:
    return ("swig", "-c++", f"-{lang}", *extra, "-outdir", "{out}", "-o", "{out}/geometry_wrap.cxx",
            "{in}/geometry.i")  # fmt: skip


def _openapi(lang: str) -> tuple[str, ...]:
    return (str(VENV_BIN / "openapi-generator-cli"), "generate", "-i", "{in}/petstore.yaml", "-g", lang,
            "-o", "{out}")  # fmt: skip


_PY_PACKAGE = ("*__init__.py", "a package marker (empty, or `__all__ = [...]`): nothing to recognise")

RUNS: tuple[Run, ...] = (
    # --- protobuf and gRPC -------------------------------------------------------------------
    Run(
        "protoc cpp python pyi java kotlin csharp ruby php objc",
        _protoc(
            *(
                f"--{lang}_out={{out}}"
                for lang in ("cpp", "python", "pyi", "java", "kotlin", "csharp", "ruby", "php", "objc")
            )
        ),
        (("*", "protobuf"),),
        needs=("protoc",),
    ),  # fmt: skip
    Run(
        "protoc-gen-go protoc-gen-go-grpc",
        _protoc(
            "--go_out={out}",
            "--go_opt=paths=source_relative",
            "--go-grpc_out={out}",
            "--go-grpc_opt=paths=source_relative",
        ),
        (("*_grpc.pb.go", "grpc"), ("*.pb.go", "protobuf")),
        needs=("protoc", "protoc-gen-go", "protoc-gen-go-grpc"),
    ),  # fmt: skip
    *(
        Run(
            f"grpc_{lang}_plugin",
            _protoc("--grpc_out={out}", f"--plugin=protoc-gen-grpc=/usr/bin/grpc_{lang}_plugin"),
            (("*", "grpc"),),
            needs=("protoc", f"/usr/bin/grpc_{lang}_plugin"),
        )
        for lang in ("cpp", "python", "ruby", "php")
    ),
    Run(
        "grpc_tools.protoc python pyi grpc_python",
        (
            "@python",
            "-m",
            "grpc_tools.protoc",
            "-I{in}",
            "--python_out={out}",
            "--pyi_out={out}",
            "--grpc_python_out={out}",
            "{in}/inventory.proto",
        ),
        (("*_pb2_grpc.py", "grpc"), ("*", "protobuf")),
        modules=("grpc_tools",),
    ),  # fmt: skip
    # --- Apache Thrift: every target language codecook ingests -------------------------------
    *(
        Run(
            f"thrift {lang}",
            _thrift(lang),
            (("*", "thrift"),),
            # Dart: the package's pubspec.yaml is a plain manifest.
            (_PY_PACKAGE, ("*pubspec.yaml", "a package manifest, no banner")),
            needs=("thrift",),
        )
        for lang in (
            "cpp",
            "c_glib",
            "py",
            "java",
            "go",
            "js:node",
            "rb",
            "php",
            "netstd",
            "erl",
            "lua",
            "rs",
            "dart",
            "delphi",
        )
    ),  # fmt: skip
    # --- SWIG ---------------------------------------------------------------------------------
    *(
        Run(f"swig {lang}", _swig(lang, *extra), (("*", "swig"),), needs=("swig",))
        for lang, extra in (
            ("python", ()),
            ("java", ()),
            ("go", ("-intgosize", "64")),
            ("csharp", ()),
            ("ruby", ()),
            ("perl5", ()),
            ("tcl", ()),
            ("lua", ()),
            ("r", ()),
            ("php", ()),
            ("javascript", ("-node",)),
            ("octave", ()),
        )
    ),  # fmt: skip
    # --- Qt 5 and Qt 6: moc, uic, rcc (C++ and Python), PyQt5's pyuic5 and pyrcc5 -------------
    *(
        Run(
            f"qt{major} moc uic rcc",
            (
                "sh",
                "-c",
                f"{qt}/moc counter.h -o {{out}}/moc_counter.cpp && "
                f"{qt}/uic settings.ui -o {{out}}/ui_settings.h && "
                f"{qt}/uic -g python settings.ui -o {{out}}/ui_settings.py && "
                f"{qt}/rcc icons.qrc -o {{out}}/qrc_icons.cpp && "
                f"{qt}/rcc -g python icons.qrc -o {{out}}/icons_rc.py",
            ),
            (("moc_*", "qt-moc"), ("ui_*", "qt-uic"), ("*", "qt-rcc")),
            needs=(f"{qt}/moc", f"{qt}/uic", f"{qt}/rcc"),
        )
        for major, qt in ((5, QT5), (6, QT6))
    ),  # fmt: skip
    Run(
        "qt5 qdbusxml2cpp",
        (
            "sh",
            "-c",
            f"{QT5}/qdbusxml2cpp -p {{out}}/counter_proxy counter.dbus.xml && "
            f"{QT5}/qdbusxml2cpp -a {{out}}/counter_adaptor counter.dbus.xml",
        ),
        (("*", "qt-dbus"),),
        needs=(f"{QT5}/qdbusxml2cpp",),
    ),  # fmt: skip
    Run(
        "pyuic5 pyrcc5",
        ("sh", "-c", "pyuic5 settings.ui -o {out}/ui_settings.py && pyrcc5 icons.qrc -o {out}/icons_rc.py"),
        (("ui_*", "qt-uic"), ("*", "qt-rcc")),
        needs=("pyuic5", "pyrcc5"),
    ),
    # --- lexer and parser generators ------------------------------------------------------------
    Run("flex c", ("flex", "-o", "{out}/calc.yy.c", "{in}/calc.l"), (("*", "flex"),), needs=("flex",)),
    Run(
        "flex c++", ("flex", "-+", "-o", "{out}/calc.yy.cc", "{in}/calc.l"), (("*", "flex"),), needs=("flex",)
    ),
    Run(
        "bison c",
        ("bison", "-d", "-o", "{out}/calc.tab.c", "{in}/calc.y"),
        (("*", "bison"),),
        needs=("bison",),
    ),
    Run(
        "bison c++",
        ("bison", "-d", "--language=c++", "-o", "{out}/calc.tab.cc", "{in}/calc.y"),
        (("*", "bison"),),
        needs=("bison",),
    ),
    Run(
        "bison java",
        ("bison", "-o", "{out}/Calc.java", "{in}/calc_java.y"),
        (("*", "bison"),),
        needs=("bison",),
    ),
    Run("byacc c", ("byacc", "-d", "-o", "{out}/calc.c", "{in}/calc.y"), (("*", "byacc"),), needs=("byacc",)),
    Run("re2c c", ("re2c", "-o", "{out}/tokens.c", "{in}/tokens.re"), (("*", "re2c"),), needs=("re2c",)),
    # --- Cython: Debian's 0.29 series and PyPI's 3.x ----------------------------------------------
    Run(
        "cython3 (Debian) c",
        ("cython3", "-3", "-o", "{out}/stats.c", "{in}/stats.pyx"),
        (("*", "cython"),),
        needs=("cython3",),
    ),
    Run(
        "Cython (PyPI) c",
        ("@python", "-m", "cython", "-3", "-o", "{out}/stats.c", "{in}/stats.pyx"),
        (("*", "cython"),),
        modules=("Cython",),
    ),
    Run(
        "Cython (PyPI) c++",
        ("@python", "-m", "cython", "-3", "--cplus", "-o", "{out}/stats.cpp", "{in}/stats.pyx"),
        (("*", "cython"),),
        modules=("Cython",),
    ),
    # --- OpenAPI: openapi-generator (its jar runs on the system Java) -----------------------------
    *(
        Run(
            f"openapi-generator {lang}",
            _openapi(lang),
            ((code, "openapi"),),
            # the Python client's response wrapper: a runtime template copied as is, no banner
            (("openapi_client/api_response.py", "a runtime template copied as is, no banner"),),
            others="openapi-generator's build, CI, documentation and test files (not the client's code)",
            needs=("java",),
            modules=("openapi_generator_cli",),
        )
        for lang, code in (
            ("python", "openapi_client/*.py"),
            ("java", "src/*.java"),
            ("go", "*.go"),
            ("typescript-axios", "*.ts"),
            ("ruby", "lib/*.rb"),
        )
    ),  # fmt: skip
)


def missing(run: Run) -> list[str]:
    """What this run needs that is not installed (executables and Python modules)."""
    absent = [n for n in run.needs if not (Path(n).is_file() if n.startswith("/") else shutil.which(n))]
    return absent + [m for m in run.modules if importlib.util.find_spec(m) is None]


def generate(run: Run, out: Path, timeout: float = 600) -> list[Path]:
    """Run the generator into `out` (created); the files it wrote, sorted."""
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable if a == "@python" else a.replace("{in}", str(INPUTS)).replace("{out}", str(out))
            for a in run.argv]  # fmt: skip
    done = subprocess.run(argv, cwd=INPUTS, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{run.name} failed ({done.returncode}): {done.stderr[-2000:]}")
    return sorted(p for p in out.rglob("*") if p.is_file())


def expected(run: Run, relative: str, size: int) -> tuple[str | None, str | None]:
    """(tool name the file must get, None), or (None, why the file is not asserted)."""
    name = relative.rsplit("/", 1)[-1]
    if size == 0:
        # protoc writes a 0-byte Kotlin file when a .proto has no file-level extensions.
        return None, "an empty file"
    for pattern, why in run.exempt:
        if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(name, pattern):
            return None, why
    for pattern, tool in run.expect:
        if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(name, pattern):
            return tool, None
    if run.others is None:
        raise AssertionError(f"{run.name} wrote {relative}, which no expectation covers")
    return None, run.others
