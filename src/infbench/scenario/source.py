"""Reading a scenario file: YAML with line numbers, ``--set`` overrides, ``${ENV}`` substitution.

Validation errors must point at the file line, so the YAML is composed into nodes first and
every key path remembers the line it came from. Substituted environment values are remembered
by path too: the stored copy of the scenario (run.json) keeps the ``${VAR}`` text, never the
secret it expanded to.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from infbench.errors import ScenarioError
from infbench.scenario.model import Scenario
from infbench.scenario.secrets import looks_secret, redact_scenario

__all__ = ["LoadedScenario", "load_scenario", "parse_override", "path_text"]

MAX_SCENARIO_BYTES = 1024 * 1024
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PATH_PART_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
PathKey = tuple[str | int, ...]
_FROM_SET = -1  # line marker for values given with --set


@dataclass(frozen=True)
class LoadedScenario:
    scenario: Scenario
    path: Path
    base_dir: Path
    stored: dict[str, Any]  # resolved and validated, with ${VAR} text instead of its value
    sha256: str


def path_text(path: PathKey) -> str:
    """("workload", "phases", 1, "rate") -> "workload.phases[1].rate"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


class _SafeLineLoader(yaml.SafeLoader):
    """Safe loading only: no Python tags, no arbitrary objects."""


def _to_data(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _LOADER_STUB.construct_object(key_node)
            key_path = (*path, str(key))
            result[key] = _to_data(value_node, key_path, lines)
            lines[key_path] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return _LOADER_STUB.construct_object(node)


_LOADER_STUB = _SafeLineLoader("")


def _read_yaml(path: Path) -> tuple[Any, dict[PathKey, int]]:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ScenarioError(f"scenario file not found: {path}") from None
    if size > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{path}: scenario file is {size} bytes; the limit is 1 MiB")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        ) from None
    except OSError as exc:  # a directory, no permission
        raise ScenarioError(
            f"{path}: cannot read the scenario file: {exc.strerror or exc}"
        ) from None
    try:
        node = yaml.compose(text, Loader=_SafeLineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}" if mark else path.name
        raise ScenarioError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if node is None:
        raise ScenarioError(f"{path}: the scenario file is empty")
    _check_alias_budget(node, path)
    lines: dict[PathKey, int] = {}
    try:
        data = _to_data(node, (), lines)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path.name}: {exc}") from None
    return data, lines


def _check_alias_budget(root: yaml.Node, path: Path, budget: int = 100_000) -> None:
    """Refuse 'billion laughs' alias bombs before they expand into memory."""
    seen = 0
    stack = [root]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > budget:
            raise ScenarioError(f"{path}: the scenario expands to over {budget} YAML nodes")
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def parse_override(text: str) -> tuple[PathKey, Any]:
    """``workload.phases[0].arrival.rate=100`` -> (path, 100); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    parts: list[str | int] = []
    for match in _PATH_PART_RE.finditer(key.strip()):
        parts.append(int(match.group(2)) if match.group(2) is not None else match.group(1))
    if not sep or not parts:  # no "=", or a key such as "[" that names nothing
        raise ScenarioError(
            f"--set {text!r}: expected key.path=value, "
            "e.g. --set workload.phases[0].arrival.rate=100"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return tuple(parts), value


def _apply_override(data: Any, path: PathKey, value: Any, text: str) -> None:
    node = data
    for depth, part in enumerate(path[:-1]):
        nxt = path[depth + 1]
        try:
            if isinstance(node, dict) and part not in node:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
        except (KeyError, IndexError, TypeError):
            raise ScenarioError(
                f"--set {text}: {path_text(path[: depth + 1])} does not exist in the scenario"
            ) from None
    last = path[-1]
    if isinstance(node, list) and isinstance(last, int) and last == len(node):
        node.append(value)
    elif isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int)):
        try:
            node[last] = value  # type: ignore[index]
        except IndexError:
            raise ScenarioError(f"--set {text}: index {last} is out of range") from None
    else:
        raise ScenarioError(f"--set {text}: {path_text(path[:-1])} is not a mapping or list")


def _substitute_env(
    data: Any, env: Mapping[str, str], path: PathKey, hits: set[PathKey], lines: dict[PathKey, int]
) -> Any:
    if isinstance(data, dict):
        return {k: _substitute_env(v, env, (*path, k), hits, lines) for k, v in data.items()}
    if isinstance(data, list):
        return [_substitute_env(v, env, (*path, i), hits, lines) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ScenarioError(
            f"{path_text(path)}: environment variable {name} is not set "
            f"({_where(path, lines)}); export it or write ${{{name}:-default}}"
        )

    hits.add(path)
    return _ENV_RE.sub(replace, data)


def _where(path: PathKey, lines: Mapping[PathKey, int], file_name: str = "") -> str:
    for depth in range(len(path), -1, -1):
        line = lines.get(path[:depth])
        if line == _FROM_SET:
            return "--set"
        if line is not None:
            return f"{file_name}:{line}" if file_name else f"line {line}"
    return file_name or "--set"


def _restore_templates(stored: Any, raw: Any, hits: set[PathKey], path: PathKey = ()) -> Any:
    """Put the ``${VAR}`` text back wherever a value came from the environment."""
    if path in hits:
        return raw
    if isinstance(stored, dict) and isinstance(raw, dict):
        return {
            k: _restore_templates(v, raw.get(k), hits, (*path, k)) if k in raw else v
            for k, v in stored.items()
        }
    if isinstance(stored, list) and isinstance(raw, list) and len(stored) == len(raw):
        return [
            _restore_templates(s, r, hits, (*path, i))
            for i, (s, r) in enumerate(zip(stored, raw, strict=True))
        ]
    return stored


def _error_path(loc: tuple[int | str, ...], data: Any) -> PathKey:
    """Drop the discriminator tags pydantic inserts (``arrival.gamma.cv`` -> ``arrival.cv``).

    The tag comes right after the union's own key and is checked before the keys of the node,
    since a tag may also be a field name (``kind: command`` has a ``command`` list).
    """
    path: list[str | int] = []
    node = data
    tag_skipped = False
    for part in loc:
        is_tag = (
            isinstance(node, dict)
            and isinstance(part, str)
            and node.get("process", node.get("kind")) == part
        )
        if is_tag and not tag_skipped:
            tag_skipped = True
            continue
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        tag_skipped = False
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            path.append(part)
        else:
            path.append(part)
            node = None
    return tuple(path)


def _secret_at(path: PathKey, substituted: set[PathKey]) -> bool:
    """A value from the environment, or under a secret header or env name: never echoed."""
    if any(path[:depth] in substituted for depth in range(len(path) + 1)):
        return True
    return bool(path) and looks_secret(str(path[-1]))


def _format_validation(
    exc: ValidationError,
    data: Any,
    lines: dict[PathKey, int],
    name: str,
    substituted: set[PathKey],
) -> str:
    messages = []
    for err in exc.errors(include_url=False):
        path = _error_path(tuple(err["loc"]), data)
        value = err.get("input")
        shown = (
            "" if isinstance(value, dict | list) or err["type"] == "missing" else f", got {value!r}"
        )
        if shown and _secret_at(path, substituted):
            shown = ", got a value that is not shown (it may be a secret)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `infbench schema` lists every key)"
        messages.append(f"{path_text(path)}: {msg}{shown} ({_where(path, lines, name)})")
    return "\n".join(dict.fromkeys(messages))


def load_scenario(
    path: Path, overrides: list[str] | None = None, env: Mapping[str, str] | None = None
) -> LoadedScenario:
    """Read, override, substitute and validate a scenario; ScenarioError (exit 2) on any fault."""
    data, lines = _read_yaml(path)
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{path.name}:1: a scenario is a mapping with version, name, target and workload"
        )
    for text in overrides or []:
        key, value = parse_override(text)
        _apply_override(data, key, value, text)
        lines[key] = _FROM_SET
    hits: set[PathKey] = set()
    resolved = _substitute_env(data, os.environ if env is None else env, (), hits, lines)
    try:
        scenario = Scenario.model_validate(resolved)
    except ValidationError as exc:
        message = _format_validation(exc, resolved, lines, path.name, hits)
        raise ScenarioError(message) from None
    dumped = scenario.model_dump(mode="json", by_alias=True)
    stored = redact_scenario(_restore_templates(dumped, data, hits))
    digest = hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()
    return LoadedScenario(
        scenario=scenario,
        path=path.resolve(),
        base_dir=path.resolve().parent,
        stored=stored,
        sha256=digest,
    )
