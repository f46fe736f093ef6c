"""Flow definitions: parse, validate, normalize, compare (CONTRACT.md "Flow definition", DESIGN.md §6).

`parse_definition` turns YAML or JSON text into a dict. `validate_definition` checks everything
that can be known before a run (fields, types, step parameters through each step type, needs and
cycles, references, schedules, and on request that named connections exist) and returns the
normalized definition that a FlowVersion stores; it raises DefinitionInvalid with every problem
found. The other functions read normalized definitions: run input, step graph, hash and diff.

Nothing here touches the database except `validate_definition(..., check_connections=True)`,
which makes one query.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import json
import logging
import math
import re
import zoneinfo
from typing import Any

import yaml
from croniter import croniter
from django.db import models

from workflows.errors import DefinitionInvalid, InputInvalid
from workflows.references import (
    ReferenceSyntaxError,
    find_references,
    find_unclosed,
    is_single_reference,
    parse_reference,
)
from workflows.steps import get_step_type, step_type_names
from workflows.steps.base import Problem, problem

__all__ = [
    "ConcurrencyPolicy",
    "InputType",
    "TriggerType",
    "content_hash",
    "definition_diff",
    "parse_definition",
    "step_ancestors",
    "step_descendants",
    "topological_order",
    "validate_definition",
    "validate_run_input",
]

logger = logging.getLogger(__name__)


class InputType(models.TextChoices):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"


class ConcurrencyPolicy(models.TextChoices):
    """What starting a run does when `limit` runs with the same concurrency key are active."""

    ALLOW = "allow"  # start anyway (the limit is not enforced)
    QUEUE = "queue"  # wait until one finishes
    SKIP = "skip"  # do not start the new run
    CANCEL_RUNNING = "cancel_running"  # cancel the active ones and start


class TriggerType(models.TextChoices):
    """Triggers a definition declares. Manual runs are always allowed, declared or not."""

    MANUAL = "manual"
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"


# The path of a problem with the document as a whole.
DOCUMENT = "(document)"

SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")
STEP_KEY_PATTERN = re.compile(r"[a-z0-9_]+")
INPUT_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_SLUG_LENGTH = 100
MAX_NAME_LENGTH = 200
MAX_STEP_KEY_LENGTH = 100
MAX_ATTEMPTS = 100
# Bounds on a parsed document, so YAML aliases cannot expand into something huge or recursive.
MAX_DOCUMENT_NODES = 100_000
MAX_DOCUMENT_DEPTH = 64

TOP_LEVEL_KEYS = ("slug", "name", "description", "input", "concurrency", "triggers", "steps")
INPUT_DECLARATION_KEYS = ("type", "required", "default", "description")
CONCURRENCY_KEYS = ("key", "limit", "policy")
TRIGGER_KEYS = {
    TriggerType.MANUAL: ("type",),
    TriggerType.SCHEDULE: ("type", "cron", "input", "timezone"),
    TriggerType.WEBHOOK: ("type",),
}
RETRY_DEFAULTS = {"max_attempts": 1, "backoff_seconds": 0, "backoff_factor": 2}
DEFAULT_CONCURRENCY = {"key": None, "limit": 1, "policy": ConcurrencyPolicy.QUEUE.value}
DEFAULT_TIMEZONE = "UTC"
REFERENCE_ROOTS = ("input", "steps", "connections")

_TYPE_DESCRIPTIONS = {
    InputType.STRING: "a string",
    InputType.INTEGER: "an integer",
    InputType.NUMBER: "a number",
    InputType.BOOLEAN: "true or false",
    InputType.OBJECT: "a mapping",
    InputType.ARRAY: "a list",
}


# --- parsing ----------------------------------------------------------------------------------


def parse_definition(source: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """The definition in `source` (YAML or JSON text, or an already parsed dict) as a new dict.

    Only the document's shape is checked here: it must parse and be a mapping (and stay within
    MAX_DOCUMENT_NODES / MAX_DOCUMENT_DEPTH once YAML aliases are expanded; the result shares no
    objects). Raises DefinitionInvalid with one problem at path "(document)" otherwise; YAML errors
    carry their line and column. Everything else is validate_definition's job.
    """
    if isinstance(source, dict):
        data: Any = source
    else:
        if isinstance(source, bytes):
            try:
                source = source.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise DefinitionInvalid([problem(DOCUMENT, f"not UTF-8 text: {exc}")]) from exc
        if not isinstance(source, str):
            raise DefinitionInvalid([problem(DOCUMENT, "expected YAML or JSON text")])
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise DefinitionInvalid([problem(DOCUMENT, _yaml_error_message(exc))]) from exc
    if data is None:
        raise DefinitionInvalid([problem(DOCUMENT, "the document is empty")])
    if not isinstance(data, dict):
        raise DefinitionInvalid(
            [
                problem(
                    DOCUMENT,
                    f"the top level must be a mapping (slug, name, steps, ...), got {_type_name(data)}",
                )
            ]
        )
    return _copy_tree(data)


def _yaml_error_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        what = "; ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        return f"YAML error at line {mark.line + 1}, column {mark.column + 1}: {what}"
    return f"YAML error: {exc}"


def _copy_tree(data: Any) -> Any:
    """A fresh copy of a parsed tree, refusing recursive or oversized (alias-expanded) ones."""
    count = 0

    def copy_node(value: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > MAX_DOCUMENT_NODES:
            raise DefinitionInvalid(
                [
                    problem(
                        DOCUMENT,
                        f"the document is too large (more than {MAX_DOCUMENT_NODES} values)",
                    )
                ]
            )
        if depth > MAX_DOCUMENT_DEPTH and isinstance(value, dict | list):
            raise DefinitionInvalid(
                [problem(DOCUMENT, f"the document nests deeper than {MAX_DOCUMENT_DEPTH} levels")]
            )
        if isinstance(value, dict):
            return {key: copy_node(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list):
            return [copy_node(item, depth + 1) for item in value]
        return value

    return copy_node(data, 0)


# --- small predicates -------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return _is_int(value)


def _has_input_type(value: Any, type_name: Any) -> bool:
    """Whether `value` is of the declared input type (True for an unknown type: reported elsewhere)."""
    checks = {
        InputType.STRING: lambda v: isinstance(v, str),
        InputType.INTEGER: _is_int,
        InputType.NUMBER: _is_number,
        InputType.BOOLEAN: lambda v: isinstance(v, bool),
        InputType.OBJECT: lambda v: isinstance(v, dict),
        InputType.ARRAY: lambda v: isinstance(v, list),
    }
    check = checks.get(type_name) if isinstance(type_name, str) else None
    return check is None or check(value)


def _valid_timezone(name: Any) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _json_problems(value: Any, path: str) -> list[Problem]:
    """Values a JSON document cannot hold (YAML dates, non-text keys such as `on:`, NaN)."""
    problems: list[Problem] = []
    if isinstance(value, dict):
        for key, item in value.items():
            item_path = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str):
                problems.append(
                    problem(
                        item_path, f"keys must be text, got {_type_name(key)} {key!r}; quote it"
                    )
                )
            elif "\x00" in key:
                problems.append(problem(item_path, "keys cannot contain NUL characters"))
            problems += _json_problems(item, item_path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += _json_problems(item, f"{path}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        problems.append(problem(path, f"{value} is not a JSON number"))
    elif isinstance(value, str) and "\x00" in value:
        # PostgreSQL cannot store NUL in text or JSON.
        problems.append(problem(path, "text cannot contain NUL characters"))
    elif value is not None and not isinstance(value, bool | int | float | str):
        problems.append(problem(path, f"a {_type_name(value)} is not JSON data; quote it"))
    return problems


def _run_input_problems(declared: dict[str, Any], value: Any, path: str) -> list[Problem]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return [problem(path, f"must be a mapping of input name to value, got {_type_name(value)}")]
    problems = [
        problem(f"{path}.{name}", f"unknown input; declared: {', '.join(declared) or 'none'}")
        for name in value
        if name not in declared
    ]
    for name, declaration in declared.items():
        given = value.get(name)
        type_name = declaration.get("type")
        if given is None:
            if declaration.get("required"):
                problems.append(problem(f"{path}.{name}", "required"))
        elif not _has_input_type(given, type_name):
            problems.append(
                problem(
                    f"{path}.{name}",
                    f"must be {_TYPE_DESCRIPTIONS[type_name]}, got {_type_name(given)}",
                )
            )
    return problems


# --- the step graph ---------------------------------------------------------------------------


def _closure(graph: dict[str, list[str]], start: list[str]) -> set[str]:
    """Every node reachable from `start` (inclusive) through `graph`; safe on cycles."""
    seen: set[str] = set()
    pending = list(start)
    while pending:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        pending.extend(graph.get(node, ()))
    return seen


def _find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Cycles through `needs`, each starting at its first node in `graph` order, without repeats."""
    order = {node: index for index, node in enumerate(graph)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []
    for root in graph:
        if root in state:
            continue
        path: list[str] = [root]
        iterators = [iter(graph[root])]
        state[root] = 1
        while iterators:
            child = next(iterators[-1], None)
            if child is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(child) == 1:
                cycle = path[path.index(child) :]
                first = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                cycle = cycle[first:] + cycle[:first]
                if cycle not in cycles:
                    cycles.append(cycle)
            elif child not in state and child in graph:
                state[child] = 1
                path.append(child)
                iterators.append(iter(graph[child]))
    return cycles


def _needs_graph(definition: dict[str, Any]) -> dict[str, list[str]]:
    return {step["key"]: list(step.get("needs") or []) for step in definition.get("steps") or []}


def step_ancestors(definition: dict[str, Any], key: str) -> set[str]:
    """Keys of every step `key` runs after (its needs, their needs, ...) in a normalized
    definition. Raises KeyError for an unknown key."""
    graph = _needs_graph(definition)
    if key not in graph:
        raise KeyError(key)
    return _closure(graph, graph[key]) - {key}


def step_descendants(definition: dict[str, Any], key: str) -> set[str]:
    """Keys of every step that runs after `key` (directly or indirectly needs it) in a
    normalized definition. Raises KeyError for an unknown key."""
    graph = _needs_graph(definition)
    if key not in graph:
        raise KeyError(key)
    dependents: dict[str, list[str]] = {node: [] for node in graph}
    for node, needs in graph.items():
        for need in needs:
            dependents.setdefault(need, []).append(node)
    return _closure(dependents, dependents[key]) - {key}


def topological_order(definition: dict[str, Any]) -> list[str]:
    """Step keys of a normalized definition so that every step comes after all it needs; among
    steps that are ready together, the one listed first in the definition comes first.
    Raises DefinitionInvalid when the needs form a cycle."""
    graph = _needs_graph(definition)
    position = {key: index for index, key in enumerate(graph)}
    waiting = {key: len(needs) for key, needs in graph.items()}
    dependents: dict[str, list[str]] = {key: [] for key in graph}
    for key, needs in graph.items():
        for need in needs:
            if need in dependents:
                dependents[need].append(key)
            else:  # a need outside the definition never completes
                waiting[key] += 1
    ready = [(position[key], key) for key, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _position, key = heapq.heappop(ready)
        order.append(key)
        for dependent in dependents[key]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, (position[dependent], dependent))
    if len(order) < len(graph):
        raise DefinitionInvalid(
            [
                problem("steps", "needs form a cycle: " + " -> ".join(cycle + cycle[:1]))
                for cycle in _find_cycles(graph)
            ]
            or [problem("steps", "some steps need steps that are not in the definition")]
        )
    return order


# --- validation -------------------------------------------------------------------------------


class _DefinitionCheck:
    """One pass over a definition, collecting problems and building the normalized copy."""

    def __init__(self, definition: dict[str, Any], *, check_connections: bool):
        self.definition = definition
        self.check_connections = check_connections
        self.problems: list[Problem] = []
        self.inputs: dict[str, dict[str, Any]] = {}
        # (path, connection name, step type name or None for a reference)
        self.connection_uses: list[tuple[str, str, str | None]] = []

    def add(self, path: str, message: str) -> None:
        entry = problem(path, message)
        if entry not in self.problems:
            self.problems.append(entry)

    def run(self) -> dict[str, Any]:
        definition = self.definition
        self.problems += _json_problems(definition, "")
        for key in definition:
            if key not in TOP_LEVEL_KEYS:
                self.add(str(key), f"unknown field; expected one of {', '.join(TOP_LEVEL_KEYS)}")
        normalized = {
            "slug": self.slug(definition.get("slug")),
            "name": self.name(definition.get("name")),
            "description": self.optional_text(definition.get("description"), "description"),
        }
        self.inputs = normalized["input"] = self.input_declarations(definition.get("input"))
        normalized["concurrency"] = self.concurrency(definition.get("concurrency"))
        normalized["triggers"] = self.triggers(definition.get("triggers"))
        normalized["steps"] = self.steps(definition.get("steps"))
        if self.check_connections and self.connection_uses:
            self.connections_exist()
        if self.problems:
            raise DefinitionInvalid(self.problems)
        return normalized

    # metadata

    def slug(self, value: Any) -> Any:
        if value is None:
            self.add("slug", "required")
        elif not isinstance(value, str):
            self.add("slug", f"must be a string, got {_type_name(value)}")
        elif not SLUG_PATTERN.fullmatch(value) or len(value) > MAX_SLUG_LENGTH:
            self.add(
                "slug",
                f"must be lowercase letters, digits and hyphens, starting with a letter"
                f" or digit, at most {MAX_SLUG_LENGTH} characters",
            )
        return value

    def name(self, value: Any) -> Any:
        if value is None:
            self.add("name", "required")
        elif not isinstance(value, str) or not value.strip():
            self.add("name", "must be a non-empty string")
        elif len(value) > MAX_NAME_LENGTH:
            self.add("name", f"at most {MAX_NAME_LENGTH} characters")
        return value

    def optional_text(self, value: Any, path: str) -> Any:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.add(path, f"must be a string, got {_type_name(value)}")
        return value

    def unknown_keys(self, mapping: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.add(f"{path}.{key}", f"unknown field; expected one of {', '.join(allowed)}")

    # input

    def input_declarations(self, raw: Any) -> dict[str, dict[str, Any]]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.add("input", "must be a mapping of input name to {type, required, default}")
            return {}
        declarations: dict[str, dict[str, Any]] = {}
        for name, declaration in raw.items():
            path = f"input.{name}"
            if not isinstance(name, str) or not INPUT_NAME_PATTERN.fullmatch(name):
                self.add(path, "an input name is letters, digits and _, not starting with a digit")
                continue
            # An entry with the right name stays known (type None) so references to it and
            # trigger input using it do not add problems of their own.
            entry: dict[str, Any] = {
                "type": None,
                "required": False,
                "default": None,
                "description": "",
            }
            declarations[name] = entry
            if not isinstance(declaration, dict):
                self.add(path, "must be a mapping like {type: string, required: true}")
                continue
            self.unknown_keys(declaration, INPUT_DECLARATION_KEYS, path)
            type_name = declaration.get("type")
            if type_name is None:
                self.add(f"{path}.type", f"required: one of {', '.join(InputType.values)}")
            elif not isinstance(type_name, str) or type_name not in InputType.values:
                self.add(
                    f"{path}.type",
                    f"unknown type {type_name!r}; one of {', '.join(InputType.values)}",
                )
            else:
                entry["type"] = type_name
            required = declaration.get("required", False)
            if not isinstance(required, bool):
                self.add(f"{path}.required", "must be true or false")
            else:
                entry["required"] = required
            default = declaration.get("default")
            if default is not None:
                if required is True:
                    self.add(f"{path}.default", "a required input takes no default")
                elif not _has_input_type(default, entry["type"]):
                    self.add(
                        f"{path}.default",
                        f"must be {_TYPE_DESCRIPTIONS[entry['type']]}, got {_type_name(default)}",
                    )
                entry["default"] = copy.deepcopy(default)
            entry["description"] = self.optional_text(
                declaration.get("description"), f"{path}.description"
            )
        return declarations

    # concurrency

    def concurrency(self, raw: Any) -> dict[str, Any] | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.add("concurrency", "must be a mapping {key, limit, policy}")
            return None
        self.unknown_keys(raw, CONCURRENCY_KEYS, "concurrency")
        normalized = dict(DEFAULT_CONCURRENCY)
        key = raw.get("key")
        if key is not None and not isinstance(key, str):
            self.add("concurrency.key", f"must be a string, got {_type_name(key)}")
        elif key:
            for suffix, expr in find_references(key):
                self.reference("concurrency.key" + suffix, expr, roots=("input",))
            for suffix in find_unclosed(key):
                self.add("concurrency.key" + suffix, "a '{{' is not closed by '}}'")
            normalized["key"] = key
        limit = raw.get("limit", 1)
        if not _is_int(limit) or limit < 1:
            self.add("concurrency.limit", "must be an integer of 1 or more")
        normalized["limit"] = limit
        policy = raw.get("policy", DEFAULT_CONCURRENCY["policy"])
        if not isinstance(policy, str) or policy not in ConcurrencyPolicy.values:
            self.add("concurrency.policy", f"must be one of {', '.join(ConcurrencyPolicy.values)}")
        normalized["policy"] = policy
        return normalized

    # triggers

    def triggers(self, raw: Any) -> list[dict[str, Any]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.add("triggers", "must be a list of {type: manual | schedule | webhook, ...}")
            return []
        normalized: list[dict[str, Any]] = []
        webhook_at: int | None = None
        for index, trigger in enumerate(raw):
            path = f"triggers[{index}]"
            if not isinstance(trigger, dict):
                self.add(path, "must be a mapping with a type")
                continue
            type_name = trigger.get("type")
            if not isinstance(type_name, str) or type_name not in TriggerType.values:
                self.add(f"{path}.type", f"must be one of {', '.join(TriggerType.values)}")
                continue
            self.unknown_keys(trigger, TRIGGER_KEYS[type_name], path)
            entry: dict[str, Any] = {"type": type_name}
            if type_name == TriggerType.SCHEDULE:
                entry.update(self.schedule(trigger, path))
            elif type_name == TriggerType.WEBHOOK:
                if webhook_at is not None:
                    self.add(
                        f"{path}.type",
                        f"a flow has one webhook URL; triggers[{webhook_at}]"
                        " is already a webhook trigger",
                    )
                webhook_at = index
            normalized.append(entry)
        return normalized

    def schedule(self, trigger: dict[str, Any], path: str) -> dict[str, Any]:
        cron = trigger.get("cron")
        if not isinstance(cron, str) or not cron.strip():
            self.add(f"{path}.cron", "required: a cron expression such as '0 2 * * *'")
        elif not croniter.is_valid(cron):
            self.add(f"{path}.cron", f"{cron!r} is not a valid cron expression")
        timezone = trigger.get("timezone")
        if timezone is None:
            timezone = DEFAULT_TIMEZONE
        elif not _valid_timezone(timezone):
            self.add(
                f"{path}.timezone",
                f"unknown time zone {timezone!r}; use a name such as Europe/Paris or UTC",
            )
        run_input = trigger.get("input")
        if run_input is None:
            run_input = {}
        elif isinstance(run_input, dict):
            for suffix, _expr in find_references(run_input):
                self.add(f"{path}.input.{suffix}", "references are not allowed in trigger input")
        self.problems += [
            p
            for p in _run_input_problems(self.inputs, run_input, f"{path}.input")
            if p not in self.problems
        ]
        return {"cron": cron, "timezone": timezone, "input": copy.deepcopy(run_input)}

    # steps

    def steps(self, raw: Any) -> list[dict[str, Any]]:
        if raw is None:
            self.add("steps", "required: a non-empty list of steps")
            return []
        if not isinstance(raw, list):
            self.add("steps", f"must be a list of steps, got {_type_name(raw)}")
            return []
        if not raw:
            self.add("steps", "a flow needs at least one step")
            return []

        # Keys first: needs may name any step, before or after.
        keys: dict[int, str] = {}  # index -> key, for the first step holding each valid key
        index_of: dict[str, int] = {}
        for index, step in enumerate(raw):
            if isinstance(step, dict):
                key = self.step_key(step.get("key"), f"steps[{index}].key", index_of)
                if key is not None:
                    keys[index] = key
                    index_of[key] = index

        normalized: list[dict[str, Any]] = []
        needs_at: dict[int, list[str]] = {}
        unsure: set[int] = set()  # steps whose needs had problems: their ancestry is unknown
        for index, step in enumerate(raw):
            path = f"steps[{index}]"
            if not isinstance(step, dict):
                self.add(path, f"must be a mapping with a key and a type, got {_type_name(step)}")
                continue
            previous = raw[index - 1] if index else None
            previous_key = previous.get("key") if isinstance(previous, dict) else None
            default_needs = (
                [previous_key] if isinstance(previous_key, str) and previous_key in index_of else []
            )
            before = len(self.problems)
            needs = self.needs(step, path, step.get("key"), index_of, default_needs)
            if len(self.problems) > before:
                unsure.add(index)
            needs_at[index] = needs
            self.step_type_params(step, path)
            entry = copy.deepcopy(step)
            entry["needs"] = needs
            entry["retry"] = self.retry(step.get("retry"), f"{path}.retry")
            self.step_common(step, path)
            normalized.append(entry)

        graph = {key: needs_at[index] for index, key in keys.items()}
        for cycle in _find_cycles(graph):
            self.add(
                f"steps[{index_of[cycle[0]]}].needs",
                "needs form a cycle: " + " -> ".join(cycle + cycle[:1]),
            )

        types = {key: raw[index].get("type") for index, key in keys.items()}
        unsure_keys = {keys[index] for index in unsure if index in keys}
        for index, step in enumerate(raw):
            if index in needs_at:
                closure = _closure(graph, needs_at[index])
                # Ancestry built on broken needs would only repeat their problem.
                ancestors = (
                    None
                    if index in unsure or closure & unsure_keys
                    else closure - {keys.get(index)}
                )
                self.step_references(step, f"steps[{index}]", keys.get(index), ancestors, types)
        return normalized

    def step_key(self, key: Any, path: str, index_of: dict[str, int]) -> str | None:
        if key is None:
            self.add(path, "required")
        elif not isinstance(key, str):
            self.add(path, f"must be a string, got {_type_name(key)}")
        elif not STEP_KEY_PATTERN.fullmatch(key) or len(key) > MAX_STEP_KEY_LENGTH:
            self.add(
                path,
                "must be lowercase letters, digits and _, at most "
                f"{MAX_STEP_KEY_LENGTH} characters",
            )
        elif key in index_of:
            self.add(path, f"duplicate key {key!r}: steps[{index_of[key]}] has it already")
        else:
            return key
        return None

    def step_type_params(self, step: dict[str, Any], path: str) -> None:
        type_name = step.get("type")
        step_type = get_step_type(type_name) if isinstance(type_name, str) else None
        if step_type is None:
            known = ", ".join(step_type_names())
            if type_name is None:
                self.add(f"{path}.type", f"required: one of {known}")
            else:
                self.add(f"{path}.type", f"unknown step type {type_name!r}; known: {known}")
            return
        try:
            found = step_type.validate(step, path)
        except Exception as exc:  # a step type's bug must not hide the other problems
            logger.exception("step type %s failed validating %s", type_name, path)
            found = [problem(path, f"could not be checked by the {type_name} step type: {exc}")]
        for entry in found:
            self.add(entry["path"], entry["message"])
        if self.check_connections:
            for name in step_type.connection_names(step):
                if isinstance(name, str) and name:
                    where = f"{path}.connection" if step.get("connection") == name else path
                    self.connection_uses.append((where, name, type_name))
            for entry in step_type.release_problems(step, path):
                self.add(entry["path"], entry["message"])

    def needs(
        self,
        step: dict[str, Any],
        path: str,
        own_key: Any,
        index_of: dict[str, int],
        default: list[str],
    ) -> list[str]:
        raw = step.get("needs")
        if raw is None:
            return default
        if isinstance(raw, str):
            items = [(f"{path}.needs", raw)]
        elif isinstance(raw, list):
            items = [(f"{path}.needs[{i}]", name) for i, name in enumerate(raw)]
        else:
            self.add(f"{path}.needs", "must be a step key or a list of step keys")
            return []
        needs: list[str] = []
        for item_path, name in items:
            if not isinstance(name, str):
                self.add(item_path, f"must be a step key, got {_type_name(name)}")
            elif name == own_key:
                self.add(item_path, "a step cannot need itself")
            elif name not in index_of:
                self.add(item_path, f"no step {name!r} in this flow")
            elif name in needs:
                self.add(item_path, f"{name!r} is listed twice")
            else:
                needs.append(name)
        return needs

    def retry(self, raw: Any, path: str) -> dict[str, Any]:
        if raw is None:
            return dict(RETRY_DEFAULTS)
        if not isinstance(raw, dict):
            self.add(path, "must be a mapping {max_attempts, backoff_seconds, backoff_factor}")
            return dict(RETRY_DEFAULTS)
        self.unknown_keys(raw, tuple(RETRY_DEFAULTS), path)
        retry = {**RETRY_DEFAULTS, **{k: v for k, v in raw.items() if k in RETRY_DEFAULTS}}
        attempts = retry["max_attempts"]
        if not _is_int(attempts) or not 1 <= attempts <= MAX_ATTEMPTS:
            self.add(f"{path}.max_attempts", f"must be an integer from 1 to {MAX_ATTEMPTS}")
        if not _is_number(retry["backoff_seconds"]) or retry["backoff_seconds"] < 0:
            self.add(f"{path}.backoff_seconds", "must be a number of 0 or more")
        if not _is_number(retry["backoff_factor"]) or retry["backoff_factor"] < 1:
            self.add(f"{path}.backoff_factor", "must be a number of 1 or more")
        return retry

    def step_common(self, step: dict[str, Any], path: str) -> None:
        timeout = step.get("timeout_seconds")
        if timeout is not None and (not _is_number(timeout) or timeout <= 0):
            self.add(f"{path}.timeout_seconds", "must be a number of seconds above 0")
        when = step.get("when")
        if when is not None and not (isinstance(when, str) and is_single_reference(when)):
            self.add(
                f"{path}.when",
                "must be a single reference such as "
                "'{{ steps.check.output.ok }}'; the step is skipped when it"
                " resolves to false, null, 0 or empty",
            )
        for field in ("name", "description"):
            if field in step:
                self.optional_text(step[field], f"{path}.{field}")

    # references

    def step_references(
        self,
        step: dict[str, Any],
        path: str,
        key: str | None,
        ancestors: set[str] | None,
        types: dict[str, Any],
    ) -> None:
        """Check the references in one step. `ancestors` is None when unknown (broken needs)."""
        for suffix, expr in find_references(step):
            self.reference(
                f"{path}.{suffix}",
                expr,
                roots=REFERENCE_ROOTS,
                step_key=key,
                ancestors=ancestors,
                types=types,
            )
        for suffix in find_unclosed(step):
            self.add(f"{path}.{suffix}", "a '{{' is not closed by '}}'")
        redo_to = step.get("redo_to")
        if redo_to is not None:
            if not isinstance(redo_to, str) or redo_to not in types:
                self.add(f"{path}.redo_to", f"no step {redo_to!r} in this flow")
            elif ancestors is not None and redo_to not in ancestors:
                self.add(
                    f"{path}.redo_to",
                    f"step {redo_to!r} does not run before this one; "
                    "redo goes back to a step this one needs (directly "
                    "or indirectly)",
                )

    def reference(
        self,
        path: str,
        expr: str,
        *,
        roots: tuple[str, ...],
        step_key: str | None = None,
        ancestors: set[str] | None = None,
        types: dict[str, Any] | None = None,
    ) -> None:
        shown = f"{{{{ {expr} }}}}"
        try:
            segments = parse_reference(expr)
        except ReferenceSyntaxError as exc:
            self.add(path, f"invalid reference {shown}: {exc}")
            return
        root = segments[0]
        if root not in REFERENCE_ROOTS:
            self.add(path, f"unknown reference root {root!r} in {shown}; use {', '.join(roots)}")
            return
        if root not in roots:
            self.add(path, f"{shown}: only {', '.join(roots)} may be referred to here")
            return
        if root == "input":
            if len(segments) < 2 or not isinstance(segments[1], str):
                self.add(path, f"{shown}: name an input, as in {{{{ input.NAME }}}}")
            elif segments[1] not in self.inputs:
                declared = ", ".join(self.inputs) or "none"
                self.add(path, f"{shown}: no declared input {segments[1]!r}; declared: {declared}")
        elif root == "connections":
            if len(segments) != 2:
                self.add(
                    path,
                    f"{shown}: write {{{{ connections.NAME }}}}; it stands for the "
                    "connection's name, and the step gets its settings from the engine",
                )
            elif self.check_connections:
                self.connection_uses.append((path, str(segments[1]), None))
        else:
            self.step_reference(path, shown, segments, step_key, ancestors, types or {})

    def step_reference(
        self,
        path: str,
        shown: str,
        segments: list[str | int],
        step_key: str | None,
        ancestors: set[str] | None,
        types: dict[str, Any],
    ) -> None:
        if len(segments) < 3 or segments[2] not in ("output", "callback_url"):
            self.add(path, f"{shown}: write steps.KEY.output... or steps.KEY.callback_url")
            return
        target = str(segments[1])
        if target not in types:
            self.add(path, f"{shown}: no step {target!r} in this flow")
        elif segments[2] == "callback_url":
            if types[target] != "wait":
                self.add(
                    path,
                    f"{shown}: step {target!r} is a {types[target]} step; only wait"
                    " steps have a callback_url",
                )
            elif len(segments) > 3:
                self.add(path, f"{shown}: callback_url is a string; nothing can follow it")
        elif target == step_key:
            self.add(path, f"{shown}: a step cannot use its own output")
        elif ancestors is not None and target not in ancestors:
            self.add(
                path,
                f"{shown}: step {target!r} is not among the steps this one needs "
                "(directly or indirectly), so its output may not exist yet; add it "
                "to needs",
            )

    # connections

    def connections_exist(self) -> None:
        from connections.models import Connection

        names = {name for _path, name, _type in self.connection_uses}
        kinds = dict(Connection.objects.filter(name__in=names).values_list("name", "kind"))
        for path, name, type_name in self.connection_uses:
            if name not in kinds:
                self.add(path, f"no connection named {name!r}")
                continue
            if type_name is None:
                continue
            step_type = get_step_type(type_name)
            allowed = sorted(step_type.connection_kinds) if step_type else []
            if allowed and kinds[name] not in allowed:
                self.add(
                    path,
                    f"connection {name!r} is a {kinds[name]} connection; a {type_name}"
                    f" step needs {' or '.join(allowed)}",
                )


def validate_definition(
    definition: dict[str, Any], *, check_connections: bool = False
) -> dict[str, Any]:
    """The normalized copy of `definition`, or DefinitionInvalid listing every problem found.

    Problems carry paths such as `slug`, `input.limit.default`, `steps[2].args.x`,
    `steps[0].needs[1]`, `triggers[0].cron`, `concurrency.policy`. The normalized form has every
    top-level field (`description` "", `input` {}, `concurrency` None or filled, `triggers` []);
    each input declaration has type, required (False), default (None) and description (""); each
    step has `needs` as a list (default: the previous step; none for the first; `needs: []` means
    none) and `retry` with max_attempts, backoff_seconds, backoff_factor. Validating a normalized
    definition again returns an equal one. `definition` is not mutated.

    With `check_connections`, connections that steps name or refer to must exist, and a step's
    connection must be of a kind its type accepts: one query. This is the promotion check.
    """
    if not isinstance(definition, dict):
        raise DefinitionInvalid([problem(DOCUMENT, "must be a mapping")])
    return _DefinitionCheck(definition, check_connections=check_connections).run()


def validate_run_input(definition: dict[str, Any], value: Any) -> dict[str, Any]:
    """The complete input for a run of `definition` (normalized), from the caller's `value`.

    `value` is a mapping of declared input names (None counts as {}); a None value counts as not
    given. Unknown names, missing required ones and values of the wrong type raise InputInvalid
    with every problem at `input.NAME`. Booleans are not integers; integers are numbers. Missing
    optional inputs get their default, or None when they have none, so every declared name is
    present in the result.
    """
    declared = definition.get("input") or {}
    problems = _run_input_problems(declared, value, "input")
    if problems:
        raise InputInvalid(problems)
    value = value or {}
    complete: dict[str, Any] = {}
    for name, declaration in declared.items():
        given = value.get(name)
        complete[name] = copy.deepcopy(declaration.get("default") if given is None else given)
    return complete


# --- identity and comparison ------------------------------------------------------------------


def content_hash(definition: dict[str, Any]) -> str:
    """SHA-256 hex of the definition as canonical JSON (sorted keys, compact separators, UTF-8),
    so equal definitions hash equally whatever their key order."""
    canonical = json.dumps(
        definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _changes(a: dict[str, Any], b: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    return {
        field: {"from": a.get(field), "to": b.get(field)}
        for field in fields
        if a.get(field) != b.get(field)
    }


def _union(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return list(a) + [key for key in b if key not in a]


def definition_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What changed from normalized definition `a` to `b`, as JSON-serializable data:

        {"metadata": {field: {"from", "to"}},            # slug, name, description
         "input": {name: {"from", "to"}},                # a declaration, None when absent
         "concurrency": {"from", "to"} or {},
         "triggers": {"from", "to"} or {},
         "steps": {"added": [keys], "removed": [keys],
                   "changed": {key: {field: {"from", "to"}}},   # a field absent is None
                   "order": {"from": [keys], "to": [keys]} or {}}}  # steps in both, reordered

    Only what differs is listed; keys come in definition order (changed fields sorted), so the
    same two definitions always give the same diff.
    """
    a_steps = {step["key"]: step for step in a.get("steps") or []}
    b_steps = {step["key"]: step for step in b.get("steps") or []}
    changed: dict[str, Any] = {}
    for key, step in b_steps.items():
        if key in a_steps:
            fields = sorted(set(a_steps[key]) | set(step))
            step_changes = _changes(a_steps[key], step, fields)
            if step_changes:
                changed[key] = step_changes
    common_a = [key for key in a_steps if key in b_steps]
    common_b = [key for key in b_steps if key in a_steps]
    a_input = a.get("input") or {}
    b_input = b.get("input") or {}

    def whole(field: str) -> dict[str, Any]:
        if a.get(field) == b.get(field):
            return {}
        return {"from": a.get(field), "to": b.get(field)}

    return copy.deepcopy(
        {
            "metadata": _changes(a, b, ["slug", "name", "description"]),
            "input": _changes(a_input, b_input, _union(a_input, b_input)),
            "concurrency": whole("concurrency"),
            "triggers": whole("triggers"),
            "steps": {
                "added": [key for key in b_steps if key not in a_steps],
                "removed": [key for key in a_steps if key not in b_steps],
                "changed": changed,
                "order": {"from": common_a, "to": common_b} if common_a != common_b else {},
            },
        }
    )
