"""Typed configs from plain YAML data: the one loader every recipe section and run config goes through.

Configs stay what they are everywhere in codecook: frozen, keyword-only dataclasses with a docstring
under each field. `build_config` validates plain data against one with pydantic, so a wrong value
fails with the key, the value and what is allowed, and an unknown key fails with the known keys (and
the closest one, for a typo), all errors at once, before any work starts.

Fields that say *where* or *how fast* something runs, not *what* it computes (the launcher, a pod
image, thread counts), are marked `field(..., metadata=DEPLOYMENT)`. `settings_of(config)` leaves
them out, so the keys that name outputs (a training run folder, a stage's output) do not change when
the same work moves to other hardware.

Imports neither Spark nor Dagster: the slim training image builds its run config with it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar

import pydantic
import yaml

C = TypeVar("C")

DEPLOYMENT = {"deployment": True}
"""Field metadata of settings that change where or how fast a result is computed, not the result."""


class RecipeError(ValueError):
    """A recipe or config that cannot be used as written; the message names the file, key and why."""


# The training image and older call sites catch this name.
ConfigError = RecipeError

_adapters: dict[type, pydantic.TypeAdapter] = {}


def _forbid_extra_keys(cls: type) -> None:
    """Make pydantic refuse unknown keys in `cls` and every dataclass nested in its fields."""
    if not dataclasses.is_dataclass(cls) or "__pydantic_config__" in vars(cls):
        return
    cls.__pydantic_config__ = pydantic.ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    for hint in typing.get_type_hints(cls).values():
        for nested in _dataclasses_in(hint):
            _forbid_extra_keys(nested)


def _dataclasses_in(hint: Any) -> list[type]:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return [hint]
    found: list[type] = []
    for arm in typing.get_args(hint):
        found += _dataclasses_in(arm)
    return found


def _adapter(cls: type) -> pydantic.TypeAdapter:
    if cls not in _adapters:
        _forbid_extra_keys(cls)
        _adapters[cls] = pydantic.TypeAdapter(cls)
    return _adapters[cls]


def known_keys(cls: type, path: tuple[Any, ...]) -> list[str]:
    """Field names of the dataclass reached from `cls` by following `path` (names and indices)."""
    current: Any = cls
    for step in path:
        if isinstance(step, int) or not dataclasses.is_dataclass(current):
            # A list item or a mapping value: step into the element type.
            args = [a for a in typing.get_args(current) if a is not type(None) and a is not Ellipsis]
            current = args[-1] if args else Any
            if isinstance(step, int):
                continue
        if dataclasses.is_dataclass(current):
            hints = typing.get_type_hints(current)
            if step not in hints:
                return []
            current = hints[step]
        while typing.get_origin(current) in (typing.Union, types.UnionType):
            arms = [a for a in typing.get_args(current) if a is not type(None)]
            current = (
                arms[0] if len(arms) == 1 else next((a for a in arms if dataclasses.is_dataclass(a)), Any)
            )
    if dataclasses.is_dataclass(current):
        return [f.name for f in dataclasses.fields(current)]
    return []


def _dotted(where: str, loc: tuple[Any, ...]) -> str:
    key = where
    for step in loc:
        key += f"[{step}]" if isinstance(step, int) else f".{step}"
    return key


def _describe(cls: type, where: str, error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    # Union arms and dataclass wrappers add loc entries that are not keys (e.g. 'function-after').
    loc = tuple(step for step in loc if isinstance(step, int) or "[" not in str(step))
    key = _dotted(where, loc)
    kind = error["type"]
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        known = known_keys(cls, loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"{key}: unknown key{suggestion}; known keys: {', '.join(sorted(known)) or '(none)'}"
    if kind == "missing" or kind == "missing_keyword_argument":
        return f"{key}: required key is missing"
    value = error.get("input")
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    message = error["msg"].removeprefix("Value error, ")
    if kind == "literal_error":
        return f"{key}: {shown} is not allowed; allowed values: {error['ctx']['expected']}"
    return f"{key}: {message}" + ("" if isinstance(value, dict | list) else f" (got {shown})")


def build_config(cls: type[C], data: Any, where: str) -> C:
    """`cls` built from plain data (None: all defaults), validated; RecipeError lists every problem.

    `where` names the place for messages, e.g. `demo.yaml: training`.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping of keys, got {type(data).__name__} {data!r}")
    try:
        return _adapter(cls).validate_python(data)
    except pydantic.ValidationError as error:
        problems = [_describe(cls, where, e) for e in error.errors()]
        raise RecipeError("\n".join(dict.fromkeys(problems))) from None


def to_plain(config: Any) -> Any:
    """A config (or any nesting of dataclasses, tuples, dicts) as YAML/JSON-able data."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, tuple | list):
        return [to_plain(v) for v in config]
    if isinstance(config, dict):
        return {k: to_plain(v) for k, v in config.items()}
    return config


def settings_of(config: Any) -> Any:
    """`to_plain(config)` without the fields marked DEPLOYMENT, at every depth: what the result depends on."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {
            f.name: settings_of(getattr(config, f.name))
            for f in dataclasses.fields(config)
            if not f.metadata.get("deployment")
        }
    if isinstance(config, tuple | list):
        return [settings_of(v) for v in config]
    if isinstance(config, dict):
        return {k: settings_of(v) for k, v in config.items()}
    return config


def read_config_file(config_file: str | None) -> dict[str, Any]:
    """The mapping a command's `--config FILE` holds ({} without a file); RecipeError names the
    file and what is wrong with it (unreadable, not YAML, not a mapping)."""
    if not config_file:
        return {}
    from pathlib import Path

    try:
        data = yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise RecipeError(f"--config {config_file}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise RecipeError(f"--config {config_file}: not YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"--config {config_file}: want a mapping of settings, got {type(data).__name__}")
    return data
