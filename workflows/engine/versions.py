"""What the engine keeps per process about flow versions: released versions once read, and
what is derived from a definition (its steps by key, the connections it names).

Released versions are immutable, so a worker or a web process reads each one once (a draft,
which can change, is read every time: `run_start` of a rehearsal, `locking.lock_run`). Tests
roll back and reuse primary keys, so they call `forget_versions` around each test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workflows.models import FlowVersion, Run
from workflows.steps import get_step_type

_released_versions: dict[int, FlowVersion] = {}

# What is derived from a definition, kept while the same definition object is in use (a
# released version is one object per process: see version_get). Keyed by id() and checked
# by identity, so a new object (a draft read again) is never served an old entry.
_derived: dict[tuple[int, str], tuple[dict, Any]] = {}
_DERIVED_MAX = 512


def forget_versions() -> None:
    """Drop the cache of released versions (tests roll back and reuse primary keys)."""
    _released_versions.clear()
    _derived.clear()


def version_get(version_id: int) -> FlowVersion:
    """The flow version; a released one (immutable) from this process's cache once read."""
    version = _released_versions.get(version_id)
    if version is None:
        version = FlowVersion.objects.get(pk=version_id)
        if version.number is not None:
            _released_versions[version.pk] = version
    return version


def _derive(definition: dict, what: str, compute: Callable[[dict], Any]) -> Any:
    entry = _derived.get((id(definition), what))
    if entry is not None and entry[0] is definition:
        return entry[1]
    value = compute(definition)
    if len(_derived) >= _DERIVED_MAX:
        _derived.clear()
    _derived[(id(definition), what)] = (definition, value)
    return value


def step_definitions(run: Run) -> dict[str, dict[str, Any]]:
    """{key: step definition} of the run's definition. Shared: callers must not change it."""
    return steps_of_definition(run.definition)


def steps_of_definition(definition: dict) -> dict[str, dict[str, Any]]:
    """{key: step definition} of `definition` (derived once per definition object)."""
    return _derive(definition, "steps", lambda d: {step["key"]: step for step in d["steps"]})


def connection_names(run: Run) -> list[str]:
    """The names of the connections the run's steps use, sorted."""
    return _derive(run.definition, "connection names", _names_of_connections)


def _names_of_connections(definition: dict) -> list[str]:
    names: set[str] = set()
    for step in definition["steps"]:
        step_type = get_step_type(step["type"])
        if step_type is not None:
            names.update(step_type.connection_names(step))
    return sorted(names)
