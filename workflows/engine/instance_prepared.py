"""What every instance of one step run shares in a worker process, and one claimed instance
(engine/instances.py): the step's definition, the context its parameters resolve against,
its connections and their secrets are computed once per step run (`prepared`); each claimed
instance gets its parameters resolved with `item` and `item_index` and its Attempt, not yet
saved (`claimed`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from connections.selectors import connection_redactor
from workflows.engine.context import resolution_context, resource_scope
from workflows.engine.executor import Claimed, step_connections, worker_id
from workflows.engine.locking import load_steps
from workflows.engine.versions import step_definitions, version_get
from workflows.models import Attempt, Run, StepInstance, StepRun
from workflows.references import ReferenceUnresolved, resolve
from workflows.states import AttemptStatus
from workflows.steps import StepFailed, get_step_type

__all__ = ["Claim", "Prepared", "claimed", "prepared"]

_PREPARED_KEEP = 8

@dataclass
class Prepared:
    """What every instance of one step run shares in this process."""

    run: Run
    step: StepRun
    definition: dict[str, Any]
    immediate: dict[str, Any]
    deferred: dict[str, Any]
    context: dict[str, Any]
    connections: dict[str, Any]
    secrets: dict[str, dict[str, Any]]
    redactor: Any
    setup_error: StepFailed | None


_cache: OrderedDict[tuple[int, Any], Prepared] = OrderedDict()
_lock = threading.Lock()


def prepared(step_run_id: int, started_at: Any) -> Prepared:
    """Keyed by the step run's id and start: an id SQLite reuses after a prune, or a step run
    started again (a redo), is never served what an earlier one prepared."""
    key = (step_run_id, started_at)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    step = StepRun.objects.select_related("run").get(pk=step_run_id)
    run = step.run
    run.version = version_get(run.version_id)
    definition = step_definitions(run)[step.key]
    step_type = get_step_type(step.type)
    setup_error: StepFailed | None = None
    connections: dict[str, Any] = {}
    secrets: dict[str, dict[str, Any]] = {}
    redactor = connection_redactor(secrets=[])
    deferred = {k: v for k, v in definition.items()
                if step_type is not None and k in step_type.deferred_keys}
    immediate = {k: v for k, v in definition.items() if k not in deferred and k != "for_each"}
    context: dict[str, Any] = {}
    try:
        steps = load_steps(run)
        connections, secrets, redactor = step_connections(step, step_type, definition, steps)
        context = resolution_context(run, steps.values(), immediate)
    except StepFailed as exc:
        setup_error = exc
    made = Prepared(run=run, step=step, definition=definition, immediate=immediate,
                    deferred=deferred, context=context, connections=connections,
                    secrets=secrets, redactor=redactor, setup_error=setup_error)
    with _lock:
        _cache[key] = made
        while len(_cache) > _PREPARED_KEEP:
            _cache.popitem(last=False)
    return made


@dataclass
class Claim:
    prepared: Prepared
    instance: StepInstance
    claimed: Claimed  # what the storage rule and the error document read (run, step, attempt)
    logs: list[tuple[str, str]] = field(default_factory=list)


def claimed(shared: Prepared, instance: StepInstance, now: Any) -> Claim:
    attempt = Attempt(step_run_id=instance.step_run_id, instance=instance,
                      number=instance.attempt_count, status=AttemptStatus.RUNNING,
                      worker=worker_id(), started_at=now)
    doc = Claimed(run=shared.run, step=shared.step, attempt=attempt,
                  definition=shared.definition, resolved=None,
                  connections=shared.connections, secrets=shared.secrets,
                  redactor=shared.redactor, setup_error=shared.setup_error)
    if doc.setup_error is None:
        try:
            resolved = resolve(
                shared.immediate,
                {**shared.context, "item": instance.item, "item_index": instance.index},
                scope=resource_scope(shared.run))
            resolved.update(shared.deferred)
            doc.resolved = resolved
            attempt.input = shared.redactor.redact(resolved)
        except ReferenceUnresolved as exc:
            doc.setup_error = StepFailed(str(exc), error_type="ReferenceUnresolved",
                                         retryable=False)
    return Claim(prepared=shared, instance=instance, claimed=doc)

