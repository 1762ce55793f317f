"""Few-shot prompts of Self-OSS-Instruct, written for this project, and the parsers of the replies.

Two steps, each one prompt:

    snippet  -> "### Concepts" (what the code demonstrates) -> "### Instruction" (a new task)
    instruction -> "### Response" (a solution in a python block) -> "### Tests" (asserts, a python block)

The examples below are the project's own: small functions of the kind the seeds are, with the
answer in exactly the format the parsers read. A reply that does not follow the format is not
guessed at: the parsers return None and the row becomes a reject with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INSTRUCTION_HEADER = (
    "You read a Python snippet, list the programming concepts it demonstrates, and then write one "
    "new, self-contained programming task that exercises those concepts. The task asks for a "
    "Python function, names it, and says what it takes and returns. It must be solvable without "
    "seeing the snippet.\n\n"
)

INSTRUCTION_EXAMPLES: tuple[tuple[str, str, str], ...] = (
    (
        'def chunk_sizes(total, parts):\n    """Split `total` items into `parts` nearly equal chunk sizes."""\n'
        "    base, extra = divmod(total, parts)\n    return [base + (1 if i < extra else 0) for i in range(parts)]\n",
        "integer division with remainder, list comprehension, distributing a remainder",
        "Write a Python function `spread_budget(amount_cents, people)` that splits an integer amount of "
        "cents among `people` persons as evenly as possible and returns the list of shares, largest "
        "first. The shares must add up to `amount_cents` and differ by at most one cent.",
    ),
    (
        "import re\n\n\ndef find_versions(text):\n"
        '    """Return every version number like 1.2.3 that appears in `text`, in order."""\n'
        '    pattern = re.compile(r"\\b\\d+\\.\\d+\\.\\d+\\b")\n    return pattern.findall(text)\n',
        "regular expressions, word boundaries, extracting all matches",
        "Write a Python function `extract_dates(text)` that returns every date written as YYYY-MM-DD "
        "in the string `text`, in the order they appear, as a list of strings. Strings such as "
        "`12024-01-01` whose digits run on must not match.",
    ),
    (
        'def merge_counts(first, second):\n    """Add up two word-count dictionaries into a new one."""\n'
        "    merged = dict(first)\n    for word, count in second.items():\n"
        "        merged[word] = merged.get(word, 0) + count\n    return merged\n",
        "dictionaries, dict.get with a default, not mutating the inputs",
        "Write a Python function `combine_inventories(a, b)` that takes two dictionaries mapping item "
        "names to quantities and returns a new dictionary with the summed quantities, leaving both "
        "inputs unchanged. Items whose total is zero are left out.",
    ),
)

RESPONSE_HEADER = (
    "You answer a programming task with a correct Python solution in one ```python block, then "
    "write tests for it: plain assert statements in a second ```python block under '### Tests'. "
    "The tests call the function and check concrete results.\n\n"
)

RESPONSE_EXAMPLES: tuple[tuple[str, str, str], ...] = (
    (
        "Write a Python function `count_vowels(text)` that returns how many vowels (a, e, i, o, u, "
        "either case) the string `text` contains.",
        '```python\ndef count_vowels(text):\n    return sum(1 for ch in text.lower() if ch in "aeiou")\n```',
        '```python\nassert count_vowels("") == 0\nassert count_vowels("Hello World") == 3\n'
        'assert count_vowels("AEIOU xyz") == 5\n```',
    ),
    (
        "Write a Python function `running_max(values)` that returns a list whose i-th element is "
        "the largest of the first i+1 numbers of `values`.",
        "```python\ndef running_max(values):\n    result = []\n    best = None\n    for value in values:\n"
        "        best = value if best is None or value > best else best\n        result.append(best)\n"
        "    return result\n```",
        "```python\nassert running_max([]) == []\nassert running_max([3, 1, 4, 1, 5]) == [3, 3, 4, 4, 5]\n"
        "assert running_max([-2, -5]) == [-2, -2]\n```",
    ),
    (
        "Write a Python function `is_palindrome(word)` that tells whether `word` reads the same "
        "backwards, ignoring case.",
        "```python\ndef is_palindrome(word):\n    lowered = word.lower()\n    return lowered == lowered[::-1]\n```",
        '```python\nassert is_palindrome("Level")\nassert not is_palindrome("python")\nassert is_palindrome("")\n```',
    ),
)


def instruction_prompt(snippet: str, few_shot: int) -> str:
    """The few-shot text asking for concepts and an instruction for `snippet`; the reply starts
    right after the final '### Concepts' line."""
    parts = [INSTRUCTION_HEADER]
    for code, concepts, instruction in INSTRUCTION_EXAMPLES[:few_shot]:
        parts.append(
            f"### Snippet\n```python\n{code.strip()}\n```\n### Concepts\n{concepts}\n### Instruction\n{instruction}\n\n"
        )
    parts.append(f"### Snippet\n```python\n{snippet.strip()}\n```\n### Concepts\n")
    return "".join(parts)


def response_prompt(instruction: str, few_shot: int) -> str:
    """The few-shot text asking for a response and tests; the reply starts after '### Response'."""
    parts = [RESPONSE_HEADER]
    for task, solution, tests in RESPONSE_EXAMPLES[:few_shot]:
        parts.append(f"### Instruction\n{task}\n### Response\n{solution}\n### Tests\n{tests}\n\n")
    parts.append(f"### Instruction\n{instruction.strip()}\n### Response\n")
    return "".join(parts)


# Where a completion-style reply has finished: the model starts the next example.
INSTRUCTION_STOPS = ("### Snippet", "### Instruction\n### ")
RESPONSE_STOPS = ("### Instruction",)


@dataclass(frozen=True)
class ParsedInstruction:
    concepts: str
    instruction: str


def parse_instruction(reply: str) -> ParsedInstruction | None:
    """Concepts and instruction from a reply that continues after '### Concepts' (or repeats the
    headers, as chat models do); None when there is no instruction section."""
    text = reply.strip()
    text = re.sub(r"^#+\s*Concepts\s*:?\s*\n", "", text, flags=re.I)
    match = re.search(r"^#+\s*Instruction\s*:?\s*$", text, flags=re.I | re.M)
    if not match:
        return None
    concepts = text[: match.start()].strip()
    instruction = text[match.end() :].strip()
    # Anything after a further header is the start of another example, not this instruction.
    instruction = re.split(r"^#+\s*\w", instruction, maxsplit=1, flags=re.M)[0].strip()
    if not concepts or not instruction:
        return None
    return ParsedInstruction(concepts=concepts, instruction=instruction)


_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.S)


@dataclass(frozen=True)
class ParsedResponse:
    response: str
    """What the SFT example's answer is: the reply up to the tests."""
    solution: str
    """The code of the first python block."""
    tests: str | None
    """The code of the tests block; None when the reply has none."""


def parse_response(reply: str) -> ParsedResponse | None:
    """Solution and tests from a response reply; None when it holds no code block at all.

    The tests are the block under a '### Tests' header, else a later block holding an assert."""
    text = reply.strip()
    text = re.sub(r"^#+\s*Response\s*:?\s*\n", "", text, flags=re.I)
    header = re.search(r"^#+\s*Tests?\s*:?\s*$", text, flags=re.I | re.M)
    answer = text[: header.start()] if header else text
    blocks = _BLOCK.findall(answer)
    if not blocks:
        return None
    solution = blocks[0]
    tests = None
    if header:
        found = _BLOCK.findall(text[header.end() :])
        tests = found[0] if found else None
    else:
        later = [block for block in blocks[1:] if re.search(r"^\s*assert\b", block, flags=re.M)]
        if later:
            tests = later[0]
            answer = answer[: answer.find(later[0])].rsplit("```", 1)[0]
    return ParsedResponse(
        response=answer.strip(), solution=solution.strip("\n"), tests=tests.strip("\n") if tests else None
    )
