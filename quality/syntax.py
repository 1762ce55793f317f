"""Syntax facts of Java, JavaScript/TypeScript, C/C++ and Go files, from a real parser (tree-sitter).

OpenCoder's language rules for these languages count functions, variables, imports, classes and
"simple" statements per line of code. Its released code finds them with regular expressions
(Java, C, Go) or a JavaScript parser that rejects anything newer than ES2017. Here every count
comes from the tree-sitter grammar of the language (the PyPI grammar wheels), through queries
that run in C: a function is a node of a function type, not a line that looks like one.

`syntax_facts(text, lang)` returns None for a language without a grammar. Inputs are capped at
`MAX_PARSED_BYTES` and the work to `MAX_SECONDS` through tree-sitter's progress callbacks (a
timer signal cannot interrupt C code); a larger file gets facts for its head and
`truncated = True`, a slower one raises `SyntaxTimeout`. tree-sitter is error tolerant: a file
that does not parse still yields a tree, with `has_error` set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache

import numpy as np
import tree_sitter
import tree_sitter_c
import tree_sitter_cpp
import tree_sitter_go
import tree_sitter_java
import tree_sitter_javascript
import tree_sitter_typescript

MAX_PARSED_BYTES = 500_000
# CPU seconds after which a parse stops (a loaded machine must not change the verdict): deeply nested input (50k open brackets) makes a query
# walk take 20 s. The caller gets SyntaxTimeout, which the signal stage records as a time-out.
MAX_SECONDS = 1.0


# Query walks grow with depth times size: 50k nested brackets take 20 s. Real code nests a few
# dozen levels; anything past this is generated or adversarial and is not parsed.
MAX_NESTING = 256


class SyntaxTimeout(TimeoutError):
    """Parsing one document took longer than MAX_SECONDS."""


class SyntaxTooDeep(ValueError):
    """Brackets nested deeper than MAX_NESTING: not parsed (reported as a signal error)."""


_OPEN = np.zeros(256, dtype=np.int32)
_OPEN[[ord("("), ord("["), ord("{")]] = 1
_OPEN[[ord(")"), ord("]"), ord("}")]] = -1


def nesting_depth(source: bytes) -> int:
    """Deepest bracket nesting, brackets in strings and comments included (an upper bound)."""
    if not source:
        return 0
    steps = _OPEN[np.frombuffer(source, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


_GRAMMARS = {
    "java": tree_sitter_java.language,
    "javascript": tree_sitter_javascript.language,
    "typescript": tree_sitter_typescript.language_typescript,
    "c": tree_sitter_c.language,
    "cpp": tree_sitter_cpp.language,
    "cuda": tree_sitter_cpp.language,
    "go": tree_sitter_go.language,
}
SYNTAX_LANGUAGES = frozenset(_GRAMMARS)

# Per language, one query whose capture names are the facts counted. `variable` = a declared
# variable (locals, fields, package vars); `bare_variable` = one declared without a value;
# `return` = every return statement (the simple ones are told apart in Python).
_JS_QUERY = """
(function_declaration) @function
(generator_function_declaration) @function
(function_expression) @function
(arrow_function) @function
(method_definition) @function
(class_declaration) @class
(import_statement) @import
(variable_declarator) @variable
(variable_declarator !value) @bare_variable
(return_statement) @return
(comment) @comment
"""
_QUERIES = {
    "java": """
(method_declaration) @function
(constructor_declaration) @function
(class_declaration) @class
(interface_declaration) @class
(enum_declaration) @class
(record_declaration) @class
(import_declaration) @import
(variable_declarator) @variable
(variable_declarator !value) @bare_variable
(return_statement) @return
(line_comment) @comment
(block_comment) @comment
""",
    "javascript": _JS_QUERY,
    "typescript": _JS_QUERY.replace(
        "(class_declaration) @class", "(class_declaration) @class\n(interface_declaration) @class"
    ),
    "c": """
(function_definition) @function
(struct_specifier body: (field_declaration_list)) @class
(preproc_include) @import
(init_declarator) @variable
(declaration declarator: (identifier)) @variable
(declaration declarator: (identifier)) @bare_variable
(declaration declarator: (array_declarator)) @variable
(return_statement) @return
(comment) @comment
""",
    "go": """
(function_declaration) @function
(method_declaration) @function
(func_literal) @function
(type_spec) @class
(import_spec) @import
(var_spec) @variable
(var_spec !value) @bare_variable
(short_var_declaration) @variable
(const_spec) @variable
(return_statement) @return
(comment) @comment
""",
}
_QUERIES["cpp"] = (
    _QUERIES["c"] + "(class_specifier body: (field_declaration_list)) @class\n(lambda_expression) @function\n"
)
_QUERIES["cuda"] = _QUERIES["cpp"]
# A return is simple when it returns nothing, a name or a literal (OpenCoder's "simple return").
_SIMPLE_RETURN_VALUES = frozenset(
    {
        "identifier",
        "field_identifier",
        "number_literal",
        "number",
        "string",
        "string_literal",
        "interpreted_string_literal",
        "raw_string_literal",
        "int_literal",
        "float_literal",
        "decimal_integer_literal",
        "decimal_floating_point_literal",
        "character_literal",
        "true",
        "false",
        "null",
        "nil",
        "null_literal",
        "undefined",
        "this",
    }
)


@dataclass(frozen=True)
class SyntaxFacts:
    has_error: bool
    truncated: bool
    code_lines: int
    functions: int
    classes: int
    imports: int
    variables: int
    bare_variables: int
    simple_returns: int


@cache
def _parser_and_query(lang: str) -> tuple[tree_sitter.Parser, tree_sitter.Query]:
    language = tree_sitter.Language(_GRAMMARS[lang]())
    return tree_sitter.Parser(language), tree_sitter.Query(language, _QUERIES[lang])


def _comment_only_lines(comments: list[tree_sitter.Node], lines: list[bytes]) -> set[int]:
    """Rows whose every non-blank character lies inside a comment."""
    rows: set[int] = set()
    for node in comments:
        (first, start_col), (last, end_col) = node.start_point, node.end_point
        for row in range(first, min(last, len(lines) - 1) + 1):
            line = lines[row]
            before = line[:start_col] if row == first else b""
            after = line[end_col:] if row == last else b""
            if not before.strip() and not after.strip():
                rows.add(row)
    return rows


def syntax_facts(text: str, lang: str) -> SyntaxFacts | None:
    """Counts from the parse tree, or None when `lang` has no grammar here."""
    if lang not in _GRAMMARS:
        return None
    source = text.encode("utf-8", errors="replace")
    truncated = len(source) > MAX_PARSED_BYTES
    source = source[:MAX_PARSED_BYTES]
    depth = nesting_depth(source)
    if depth > MAX_NESTING:
        raise SyntaxTooDeep(f"brackets nested {depth} deep (limit {MAX_NESTING})")
    parser, query = _parser_and_query(lang)
    deadline = time.process_time() + MAX_SECONDS
    halted = False

    def over_time(*_: object) -> bool:
        nonlocal halted
        halted = halted or time.process_time() > deadline
        return halted

    # A read callback, not the bytes: tree-sitter only honours progress callbacks that way.
    last_chunk = [b""]

    def read(offset: int, _point: object) -> bytes:
        # The chunk handed to C must outlive the call: keep a reference until the next read.
        last_chunk[0] = source[offset : offset + 65536]
        return last_chunk[0]

    try:
        tree = parser.parse(read, progress_callback=over_time)
    except ValueError as error:  # "Parsing failed": what tree-sitter raises when the callback halts it
        if halted:
            raise SyntaxTimeout(f"{lang} parse over {MAX_SECONDS:g}s") from error
        raise
    if halted:
        raise SyntaxTimeout(f"{lang} parse over {MAX_SECONDS:g}s")
    # No progress callback here: tree-sitter 0.26's query callback crashes the interpreter.
    # Query time is bounded by the nesting guard above instead.
    captures = tree_sitter.QueryCursor(query).captures(tree.root_node)
    lines = source.split(b"\n")
    comment_rows = _comment_only_lines(captures.get("comment", []), lines)
    code_lines = sum(1 for row, line in enumerate(lines) if line.strip() and row not in comment_rows)
    simple_returns = 0
    for node in captures.get("return", []):
        values = [child for child in node.named_children if child.type != "comment"]
        if not values or (len(values) == 1 and values[0].type in _SIMPLE_RETURN_VALUES):
            simple_returns += 1
    return SyntaxFacts(
        has_error=tree.root_node.has_error,
        truncated=truncated,
        code_lines=code_lines,
        functions=len(captures.get("function", [])),
        classes=len(captures.get("class", [])),
        imports=len(captures.get("import", [])),
        variables=len(captures.get("variable", [])),
        bare_variables=len(captures.get("bare_variable", [])),
        simple_returns=simple_returns,
    )
