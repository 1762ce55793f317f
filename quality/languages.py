"""Language of a file from its name.

The language list is StarCoder's selection of The Stack v1.2: its 86 programming languages plus
Jupyter notebooks (Li et al. 2023, "StarCoder: may the source be with you!", Table 1); the
extensions follow GitHub Linguist's
`languages.yml`, which The Stack itself used to assign languages. A few data and markup formats that
code corpora carry and that later filters treat with their own profiles (XML, TOML, INI, CSV, text)
are added after the StarCoder set and marked as such.

Only the extension (or, for extension-less build files, the file name) decides: content sniffing
is deliberately left out so that the assignment is cheap, explainable and identical in every engine.
"""

from __future__ import annotations

import posixpath

# language -> extensions (lower case, with the dot) and exact file names.
STARCODER_LANGUAGES: dict[str, tuple[str, ...]] = {
    "ada": (".adb", ".ads", ".ada"),
    "agda": (".agda",),
    "alloy": (".als",),
    "antlr": (".g4", ".g"),
    "applescript": (".applescript", ".scpt"),
    "assembly": (".asm", ".s", ".nasm", ".a51", ".inc"),
    "augeas": (".aug",),
    "awk": (".awk", ".gawk", ".mawk", ".nawk", ".auk"),
    "batchfile": (".bat", ".cmd"),
    "bluespec": (".bsv",),
    "c": (".c", ".h", ".cats", ".idc"),
    "c-sharp": (".cs", ".cake", ".csx"),
    "clojure": (".clj", ".cljs", ".cljc", ".edn", ".boot", ".cljscm", ".cljx", ".hic"),
    "cmake": (".cmake", ".cmake.in", "CMakeLists.txt"),
    "coffeescript": (".coffee", "._coffee", ".cjsx", ".cson", ".iced"),
    "common-lisp": (".lisp", ".lsp", ".cl", ".asd", ".l", ".ny", ".podsl", ".sexp"),
    "cpp": (".cpp", ".cc", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".inl", ".ipp", ".tcc", ".tpp"),
    "css": (".css",),
    "cuda": (".cu", ".cuh"),
    "dart": (".dart",),
    "dockerfile": (".dockerfile", "Dockerfile", "Containerfile"),
    "elixir": (".ex", ".exs"),
    "elm": (".elm",),
    "emacs-lisp": (".el", ".emacs", ".emacs.desktop"),
    "erlang": (".erl", ".hrl", ".escript", ".xrl", ".yrl", ".app.src"),
    "f-sharp": (".fs", ".fsi", ".fsx"),
    "fortran": (".f", ".f90", ".f95", ".f03", ".f08", ".for", ".fpp", ".f77"),
    "glsl": (".glsl", ".vert", ".frag", ".geom", ".comp", ".tesc", ".tese", ".fsh", ".vsh", ".shader"),
    "go": (".go",),
    "groovy": (".groovy", ".gradle", ".gvy", ".gy", ".gsh", ".grt", ".gtpl"),
    "haskell": (".hs", ".hsc", ".hs-boot"),
    "html": (".html", ".htm", ".xhtml", ".html.hl", ".inc.html"),
    "idris": (".idr", ".lidr"),
    "isabelle": (".thy",),
    "java": (".java",),
    "java-server-pages": (".jsp", ".jspf", ".tag"),
    "javascript": (
        ".js",
        ".mjs",
        ".cjs",
        ".jsx",
        "._js",
        ".es",
        ".es6",
        ".jsb",
        ".jscad",
        ".jsm",
        ".pac",
        ".sjs",
        ".ssjs",
        ".xsjs",
        ".xsjslib",
    ),
    "json": (
        ".json",
        ".geojson",
        ".jsonl",
        ".topojson",
        ".webmanifest",
        ".har",
        ".ipynb.json",
        ".avsc",
        ".mcmeta",
    ),
    "julia": (".jl",),
    "jupyter-notebook": (".ipynb",),
    "kotlin": (".kt", ".kts", ".ktm"),
    "lean": (".lean", ".hlean"),
    "literate-agda": (".lagda",),
    "literate-coffeescript": (".litcoffee",),
    "literate-haskell": (".lhs",),
    "lua": (".lua", ".nse", ".rbxs", ".wlua", ".p8"),
    "makefile": (".mk", ".mak", ".make", ".mkfile", "Makefile", "GNUmakefile", "makefile"),
    "maple": (".mpl",),
    "markdown": (".md", ".markdown", ".mdown", ".mkd", ".mkdn", ".mdwn", ".mkdown", ".ronn", ".workbook"),
    "mathematica": (".mathematica", ".wl", ".wlt", ".nb", ".nbp", ".mt", ".cdf"),
    "matlab": (".matlab", ".m"),
    "ocaml": (".ml", ".mli", ".mll", ".mly", ".eliom", ".eliomi"),
    "pascal": (".pas", ".pp", ".dfm", ".dpr", ".lpr", ".pascal"),
    "perl": (".pl", ".pm", ".t", ".al", ".perl", ".ph", ".plx", ".psgi", ".pod"),
    "php": (".php", ".phtml", ".php3", ".php4", ".php5", ".phps", ".phpt", ".aw", ".ctp"),
    "powershell": (".ps1", ".psd1", ".psm1"),
    "prolog": (".pro", ".prolog", ".yap"),
    "protocol-buffer": (".proto",),
    "python": (
        ".py",
        ".pyi",
        ".pyw",
        ".pyx",
        ".pxd",
        ".pxi",
        ".gyp",
        ".gypi",
        ".lmi",
        ".pyde",
        ".pyp",
        ".pyt",
        ".rpy",
        ".tac",
        ".wsgi",
        ".xpy",
        "SConstruct",
        "SConscript",
    ),
    "r": (".r", ".rd", ".rsx"),
    "racket": (".rkt", ".rktd", ".rktl", ".scrbl"),
    "restructuredtext": (".rst", ".rest", ".rest.txt", ".rst.txt"),
    "rmarkdown": (".rmd",),
    "ruby": (
        ".rb",
        ".builder",
        ".gemspec",
        ".god",
        ".irbrc",
        ".jbuilder",
        ".mspec",
        ".podspec",
        ".rabl",
        ".rake",
        ".rbuild",
        ".rbw",
        ".rbx",
        ".ru",
        ".ruby",
        ".thor",
        ".watchr",
        "Rakefile",
        "Gemfile",
    ),
    "rust": (".rs", ".rs.in"),
    "sas": (".sas",),
    "scala": (".scala", ".sbt", ".sc"),
    "scheme": (".scm", ".sld", ".sls", ".sps", ".ss"),
    "shell": (".sh", ".bash", ".bats", ".command", ".ksh", ".sh.in", ".tmux", ".tool", ".zsh"),
    "smalltalk": (".st", ".cs.st"),
    "solidity": (".sol",),
    "sparql": (".sparql", ".rq"),
    "sql": (".sql", ".cql", ".ddl", ".prc", ".tab", ".udf", ".viw"),
    "stan": (".stan",),
    "standard-ml": (".sml", ".fun", ".sig"),
    "stata": (".do", ".ado", ".doh", ".ihlp", ".mata", ".matah", ".sthlp"),
    "systemverilog": (".sv", ".svh", ".vh"),
    "tcl": (".tcl", ".adp", ".tm"),
    "tcsh": (".tcsh", ".csh"),
    "tex": (
        ".tex",
        ".aux",
        ".bbx",
        ".bib",
        ".cbx",
        ".dtx",
        ".ins",
        ".lbx",
        ".ltx",
        ".mkii",
        ".mkiv",
        ".mkvi",
        ".sty",
        ".toc",
        ".cls",
    ),
    "thrift": (".thrift",),
    "typescript": (".ts", ".tsx", ".mts", ".cts"),
    "verilog": (".v", ".veo"),
    "vhdl": (".vhdl", ".vhd", ".vhf", ".vhi", ".vho", ".vhs", ".vht", ".vhw"),
    "visual-basic": (".vb", ".bas", ".cls.vb", ".frm", ".frx", ".vba", ".vbhtml", ".vbs"),
    "xslt": (".xslt", ".xsl"),
    "yacc": (".y", ".yacc", ".yy"),
    "yaml": (".yml", ".yaml", ".reek", ".rviz", ".syntax", ".sublime-syntax", ".yaml-tmlanguage"),
    "zig": (".zig",),
}

# Formats outside StarCoder's 86 that code corpora carry; kept so that the filters can judge them
# with their `data` and `text` profiles instead of losing them at ingest as unknown.
EXTRA_LANGUAGES: dict[str, tuple[str, ...]] = {
    "xml": (
        ".xml",
        ".xsd",
        ".svg",
        ".plist",
        ".wsdl",
        ".xaml",
        ".csproj",
        ".vcxproj",
        ".pom",
        ".rss",
        ".atom",
        ".xlf",
        ".ui",
        ".kml",
    ),
    "toml": (".toml", "Pipfile"),
    "ini": (".ini", ".cfg", ".conf", ".properties", ".editorconfig", ".flake8", ".pylintrc", ".coveragerc"),
    "csv": (".csv", ".tsv"),
    "text": (".txt", ".text", "README", "LICENSE", "COPYING", "NEWS", "AUTHORS", "CHANGES"),
    "cython": (),  # .pyx is folded into python above, as The Stack did
}

# "Data" formats: the filters judge them by size and alphabetic share rather than as code.
DATA_LANGUAGES = frozenset({"json", "yaml", "xml", "toml", "ini", "csv"})


def _build_tables() -> tuple[dict[str, str], dict[str, str]]:
    by_ext: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for table in (STARCODER_LANGUAGES, EXTRA_LANGUAGES):
        for lang, patterns in table.items():
            for pattern in patterns:
                if pattern.startswith("."):
                    # First writer wins: the StarCoder table is read first and is authoritative.
                    by_ext.setdefault(pattern, lang)
                else:
                    by_name.setdefault(pattern, lang)
    return by_ext, by_name


EXTENSION_TO_LANGUAGE, FILENAME_TO_LANGUAGE = _build_tables()
_MULTI_DOT = sorted((e for e in EXTENSION_TO_LANGUAGE if e.count(".") > 1), key=len, reverse=True)


def extension_of(path: str) -> str:
    """The extension used for the lookup: the longest known multi-dot suffix, else the last one."""
    name = posixpath.basename(path).lower()
    for ext in _MULTI_DOT:
        if name.endswith(ext) and len(name) > len(ext):
            return ext
    _, ext = posixpath.splitext(name)
    return ext


def language_of(path: str) -> tuple[str | None, str]:
    """(language, extension) of a path; language is None when neither name nor extension is known."""
    base = posixpath.basename(path)
    if base in FILENAME_TO_LANGUAGE:
        return FILENAME_TO_LANGUAGE[base], extension_of(path)
    ext = extension_of(path)
    return EXTENSION_TO_LANGUAGE.get(ext), ext
