"""Reading and writing the YAML or JSON files that config-as-code commands take and give
(`wf flows pull|push`, `wf connections get|put`). Written YAML is deterministic: the same
document always gives the same bytes, whatever order the server's database keeps keys in, so a
pull, an edit and a push diff only where the edit was."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from workflows_cli.client import EXIT_USAGE, CliError, error_object

# The order a person writes a flow in (CONTRACT.md's example); other keys follow, sorted.
FLOW_KEYS = ("slug", "name", "description", "input", "concurrency", "triggers", "steps",
             "notify", "promotion", "retention_days")
STEP_KEYS = ("key", "type")


def usage(message: str) -> CliError:
    return CliError(EXIT_USAGE, error_object("usage", message))


def read_text(source: str) -> str:
    """A file's text, or stdin's for `-`."""
    try:
        if source == "-":
            return sys.stdin.read()
        return Path(source).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise usage(f"cannot read {source}: {exc}") from None


def parse_mapping(text: str, source: str) -> dict[str, Any]:
    """A YAML or JSON object (JSON is YAML)."""
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise usage(f"{source} is neither JSON nor YAML: {exc}") from None
    if not isinstance(data, dict):
        raise usage(f"{source} must hold a mapping (an object)")
    return data


def _ordered(value: Any, first: tuple[str, ...] = ()) -> Any:
    if isinstance(value, dict):
        keys = [k for k in first if k in value] + sorted(k for k in value if k not in first)
        return {k: _ordered(value[k]) for k in keys}
    if isinstance(value, list):
        return [_ordered(item) for item in value]
    return value


def flow_ordered(definition: dict[str, Any]) -> dict[str, Any]:
    ordered = _ordered(definition, FLOW_KEYS)
    if isinstance(definition.get("steps"), list):
        ordered["steps"] = [_ordered(step, STEP_KEYS) for step in definition["steps"]]
    return ordered


def connection_ordered(document: dict[str, Any]) -> dict[str, Any]:
    return _ordered(document, ("kind", "description", "config"))


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings as `|` blocks (PyYAML falls back to quoting those it
    cannot write as blocks)."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def to_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=100)


def write_text(target: str, text: str) -> str | None:
    """Write to a file (its absolute path returned) or, for `-`, to stdout (None)."""
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    path = Path(target)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise usage(f"cannot write {target}: {exc}") from None
    return str(path.resolve())
