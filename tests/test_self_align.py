"""Self-OSS-Instruct against a real OpenAI-compatible HTTP server on loopback and the real sandbox.

The server is a stand-in for the *model* only: it answers `/v1/completions` the way vLLM does, with
replies chosen per prompt, including the bad ones the issue names (no tests, code that hangs or
forks, a request that times out, a malformed answer). Everything else is the real thing: the
OpenAI backend of `training.evaluation.generation`, the parsers, the decontamination engine, the
sandbox, and `codecook self-align` with Spark.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from training.instruct.config import GeneratorConfig, InstructionConfig, ResponseConfig, SelfAlignConfig
from training.instruct.self_align import judge_response, make_backend, write_instructions, write_responses
from training.sandbox import Sandbox, SandboxConfig

GOOD = "```python\ndef double(x):\n    return 2 * x\n```\n### Tests\n```python\nassert double(2) == 4\nassert double(-1) == -2\n```"
WRONG = "```python\ndef double(x):\n    return x + 1\n```\n### Tests\n```python\nassert double(5) == 10\n```"
REPLIES = {
    "CASE_good": [GOOD, GOOD],
    "CASE_mixed": [WRONG, GOOD],
    "CASE_notests": ["```python\ndef f(x):\n    return x\n```\nThis returns x.", "no code at all"],
    "CASE_hang": ["```python\ndef spin():\n    while True:\n        pass\n```\n### Tests\n```python\nassert spin() is None\n```"] * 2,
    "CASE_fork": [
        "```python\nimport os\n\ndef breed():\n    while True:\n        os.fork()\n```\n### Tests\n```python\nbreed()\n```"
    ] * 2,
    "CASE_syntax": ["```python\ndef f(x, x):\n    return x\n```\n### Tests\n```python\nassert f(1, 1) == 1\n```"] * 2,
    "CASE_uncalled": ["```python\ndef f(x):\n    return x\n```\n### Tests\n```python\nassert 1 + 1 == 2\n```"] * 2,
}  # fmt: skip


def leaked_task() -> str:
    """HumanEval/0's task statement, as a model that memorized it would write it."""
    from quality.decontaminate import prompt_docstring
    from training.evaluation.problems import load_humaneval

    return prompt_docstring(load_humaneval()["HumanEval/0"].prompt)


class FakeModelServer(BaseHTTPRequestHandler):
    """`POST /v1/completions`: replies looked up by the CASE_ marker in the prompt's last section."""

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        choices = []
        for position, prompt in enumerate(body["prompt"]):
            last = prompt.rsplit("### ", 2)[-2]
            if "CASE_slow" in last:
                time.sleep(3)
            if "CASE_garbage" in last:
                self._send({"choices": [{"index": 0, "text": 17}], "oops": True})
                return
            for sample in range(body["n"]):
                choices.append(
                    {"index": position * body["n"] + sample, "text": self.reply(prompt, last, sample)}
                )
        self._send({"choices": choices})

    @staticmethod
    def reply(prompt: str, last: str, sample: int) -> str:
        if "### Snippet" in prompt:  # the instruction step
            if "unhelpful" in last:
                return "I cannot help with that."
            if "leaky" in last:
                return f"lists\n### Instruction\n{leaked_task()}"
            name = last.split("def ", 1)[1].split("(", 1)[0]
            return f"arithmetic\n### Instruction\nWrite a Python function `{name}` that doubles a number CASE_good and returns it."
        marker = next(key for key in REPLIES if key in last)
        return REPLIES[marker][sample % 2]

    def _send(self, answer: dict) -> None:
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeModelServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def config_for(endpoint: str) -> SelfAlignConfig:
    return SelfAlignConfig(
        generator=GeneratorConfig(kind="endpoint", base_url=endpoint, model="fake", timeout_s=1.5, retries=0, prompt_style="completion"),
        instructions=InstructionConfig(batch_size=1, max_seeds=3),
        responses=ResponseConfig(samples=2, batch_size=1, timeout_s=1.5, sandbox_workers=2),
    )  # fmt: skip


@pytest.fixture(scope="module")
def matcher():
    from orchestration.instruct_stages import benchmark_matcher

    return benchmark_matcher()


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(timeout_s=1.5, workers=2)) as box:
        yield box


def test_bad_responses_become_reject_rows_and_only_verified_ones_are_kept(endpoint, sandbox, matcher):
    config = config_for(endpoint)
    cases = [*REPLIES, "CASE_slow", "CASE_garbage"]
    instructions = [{"doc_id": case, "instruction": f"Write a function for {case} please."} for case in cases]
    result = write_responses(instructions, make_backend(config.generator), sandbox, config, matcher=matcher, echo=lambda line: None)  # fmt: skip
    reasons = {}
    for row in result.rejected:
        case = next(c for c in cases if row["doc_id"] in {_rid(c, 0), _rid(c, 1)})
        reasons.setdefault(case, []).append(row["reason"])
    assert sorted(reasons["CASE_notests"]) == ["no_code", "no_tests"]
    assert reasons["CASE_hang"] == ["timed_out", "timed_out"]
    assert set(reasons["CASE_fork"]) <= {"timed_out", "tests_failed"} and len(reasons["CASE_fork"]) == 2
    assert reasons["CASE_syntax"] == ["syntax_error", "syntax_error"]
    assert reasons["CASE_uncalled"] == ["tests_do_not_call_solution"] * 2
    assert reasons["CASE_slow"] == ["generation_error"] * 2  # the request timed out, the run went on
    assert reasons["CASE_garbage"] == ["generation_error"] * 2
    assert reasons["CASE_good"] == ["not_chosen"] and reasons["CASE_mixed"] == ["tests_failed"]
    kept = {row["instruction_id"]: row for row in result.kept}
    assert set(kept) == {"CASE_good", "CASE_mixed"}
    assert kept["CASE_mixed"]["sample"] == 1 and "assert double(2) == 4" in kept["CASE_mixed"]["tests"]
    # Nothing lost: every sample is kept or rejected.
    assert len(result.kept) + len(result.rejected) == 2 * len(cases)
    assert result.facts["passed"] == 3 and result.facts["kept"] == 2
    # Seeded: the same run chooses the same passing sample.
    again = write_responses(
        instructions[:1], make_backend(config.generator), sandbox, config, echo=lambda line: None
    )
    assert again.kept[0]["doc_id"] == kept["CASE_good"]["doc_id"]


def _rid(case: str, sample: int) -> str:
    from training.instruct.self_align import response_id

    return response_id(case, sample)


def test_instructions_reject_unparseable_and_contaminated_replies(endpoint, matcher):
    config = config_for(endpoint)
    backend = make_backend(config.generator)
    seeds = [
        {"doc_id": "a", "content": "def halve(x):\n    '''Half of x, rounded down.'''\n    return x // 2\n"},
        {"doc_id": "b", "content": "def unhelpful():\n    '''Nothing.'''\n    return None\n"},
        {"doc_id": "c", "content": "def leaky(numbers):\n    '''Close numbers.'''\n    return True\n"},
    ]
    unlimited = SelfAlignConfig(generator=config.generator, instructions=InstructionConfig(batch_size=1))
    result = write_instructions(seeds, backend, unlimited, matcher=matcher, echo=lambda line: None)
    reasons = {row["doc_id"]: row["reason"] for row in result.rejected}
    assert reasons == {"b": "unparseable_instruction", "c": "benchmark_exact"}
    assert [row["doc_id"] for row in result.kept] == ["a"]
    assert result.kept[0]["instruction"].startswith("Write a Python function `halve`")
    assert result.kept[0]["concepts"] == "arithmetic"
    # max_seeds: the lowest hashes of (seed, doc_id) are prompted, the rest are reject rows.
    many = [{"doc_id": f"s{i}", "content": f"def f{i}(x):\n    '''Doc.'''\n    return x\n"} for i in range(5)]
    first = write_instructions(many, backend, config, echo=lambda line: None)
    second = write_instructions(many, backend, config, echo=lambda line: None)
    assert len(first.kept) == 3 and [r["reason"] for r in first.rejected] == ["over_max_seeds"] * 2
    assert [r["doc_id"] for r in first.kept] == [r["doc_id"] for r in second.kept]


def test_response_parser_reads_tests_without_a_header():
    parsed = judge_response(
        "```python\ndef f():\n    return 1\n```\nAnd to check it:\n```python\nassert f() == 1\n```"
    )
    assert not isinstance(parsed, tuple) and parsed.tests == "assert f() == 1"
    assert (
        judge_response("```python\ndef f(:\n```\n### Tests\n```python\nassert f()\n```")[0] == "syntax_error"
    )


def test_self_align_command_writes_verified_pairs(endpoint, tmp_path, spark):
    from orchestration.cli import main

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(
        "".join(
            json.dumps({"id": f"seed-{i}", "content": f"def twice_{i}(x):\n    '''Twice x.'''\n    return 2 * x\n"}) + "\n"
            for i in range(2)
        )
        + "not json\n"
    )  # fmt: skip
    config = tmp_path / "self_align.yaml"
    config.write_text(json.dumps({
        "generator": {"kind": "endpoint", "base_url": endpoint, "model": "fake", "timeout_s": 5, "retries": 0, "prompt_style": "completion"},
        "instructions": {"batch_size": 2}, "responses": {"samples": 2, "batch_size": 2, "timeout_s": 2, "sandbox_workers": 1},
    }))  # fmt: skip
    out = tmp_path / "out"
    assert main(["self-align", "--input", str(seeds), "--output", str(out), "--config", str(config)]) == 0
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 2 and all(set(p) == {"instruction", "response", "tests", "id"} for p in pairs)
    assert all("assert double(2) == 4" in p["tests"] for p in pairs)
    instructions = json.loads((out / "data" / "instructions" / "_manifest.json").read_text())
    assert instructions["rows_in"] == 3 and instructions["rejected_by_reason"] == {"malformed_json": 1}
    responses = json.loads((out / "data" / "responses" / "_manifest.json").read_text())
    assert responses["rows_in"] == 4 and responses["rows_out"] == 2
    assert responses["rejected_by_reason"] == {"not_chosen": 2}
    assert main(["self-align", "--input", str(tmp_path / "missing.jsonl"), "--output", str(out)]) == 2


def test_a_real_model_is_not_needed_to_load_the_config_but_is_named_when_missing(tmp_path):
    with pytest.raises(ValueError, match="base_url"):
        GeneratorConfig(kind="endpoint")
    with pytest.raises(ValueError, match="temperature"):
        SelfAlignConfig(responses=ResponseConfig(samples=3, temperature=0.0))
    assert Path(tmp_path).is_dir()
