"""What a step sees: the context its `{{ }}` references resolve in, and the `AttemptContext`
its handler is given (the `workflows.steps.StepContext` of one attempt).

The split follows Temporal's SDK (`temporalio/activity.py` beside `worker/_activity.py`): this
module is what a handler may touch, the executor is how a worker runs it. The handler only
touches memory here; the executor's supervising thread does every database write.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from resources.models import ResourceKind
from resources.services import StoredContent, resource_store
from workflows.engine.callback_tokens import callback_url
from workflows.engine.versions import connection_names
from workflows.models import Run, StepRun
from workflows.references import (
    ReferenceSyntaxError,
    ResourceScope,
    find_references,
    parse_reference,
)
from workflows.states import STEP_DONE
from workflows.steps import StepCanceled, StepFailed

# A handler that logs faster than the worker writes waits once this much is pending, so a
# 100 MB log never sits in memory (backpressure; the worker is woken at once to drain it).
LOG_BACKLOG_CHARS = 4 * 1024 * 1024


# --- what references see -----------------------------------------------------------------------

def step_outputs(run: Run, keys: Iterable[str]) -> dict[str, Any]:
    """{key: output} of the named steps that are done (one query; none when no keys)."""
    keys = list(keys)
    if not keys:
        return {}
    return dict(
        StepRun.objects.filter(run_id=run.pk, key__in=keys, status__in=STEP_DONE)
        .values_list("key", "output")
    )


def referenced_steps(value: Any) -> set[str]:
    """Keys of the steps whose output `value` refers to."""
    keys = set()
    for _, expr in find_references(value):
        try:
            parts = parse_reference(expr)
        except ReferenceSyntaxError:
            continue
        if len(parts) >= 3 and parts[0] == "steps" and parts[2] == "output":
            keys.add(str(parts[1]))
    return keys


def resolution_context(run: Run, steps: Iterable[StepRun], value: Any) -> dict[str, Any]:
    """What the `{{ }}` references in `value` see: the run's input, the outputs of the done
    steps it refers to, and every wait step's callback URL."""
    outputs = step_outputs(run, referenced_steps(value))
    step_values: dict[str, Any] = {}
    for s in steps:
        entry: dict[str, Any] = {}
        if s.key in outputs:
            entry["output"] = outputs[s.key]
        if s.type == "wait" and s.callback_nonce:
            entry["callback_url"] = callback_url(s.callback_nonce)
        step_values[s.key] = entry
    names = connection_names(run)
    return {"input": run.input, "steps": step_values, "connections": {n: n for n in names}}


def resource_scope(run: Run) -> ResourceScope:
    """The runs whose resources `run`'s references may load: its own, and those its reused
    steps' outputs came from (a retry or replay reuses the original step run's output, whose
    descriptors name the original run's resources). One query, on the first load only."""

    def runs() -> set[int]:
        return {run.pk, *StepRun.objects.filter(run_id=run.pk, reused_from__isnull=False)
                .values_list("reused_from__run_id", flat=True)}

    return ResourceScope(runs)


# --- what a handler sees -----------------------------------------------------------------------

class AttemptContext:
    """Implements `workflows.steps.StepContext` for one attempt. Handler-thread safe: the
    handler only touches memory; the executor's supervising thread does all database work."""

    def __init__(self, *, step: dict[str, Any], run_id: int, step_key: str, attempt_number: int,
                 connections: dict[str, Any], secrets: dict[str, dict[str, Any]],
                 traceparent: str | None = None, tracestate: str | None = None):
        self.step = step
        self.traceparent = traceparent  # the attempt's span, for what the step calls
        self.tracestate = tracestate  # the run's caller's W3C tracestate, sent with it
        self.run_id = run_id
        self.step_key = step_key
        self.attempt_number = attempt_number
        self.connections = connections
        self._secrets = secrets
        self._logs: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._backlog = 0
        self._wake = threading.Event()  # the worker's thread has something to do now
        self._cancel = threading.Event()
        self.stored: list[tuple[StoredContent, str]] = []  # (bytes in storage, kind)

    def log(self, text: str, stream: str = "stdout") -> None:
        """Queue `text` for the worker's thread; waits while LOG_BACKLOG_CHARS are pending
        (never once the attempt is canceled or abandoned)."""
        if not text:
            return
        text = str(text)
        with self._lock:
            self._logs.append((stream, text))
            self._backlog += len(text)
            while self._backlog >= LOG_BACKLOG_CHARS and not self._cancel.is_set():
                self._wake.set()
                self._drained.wait(0.5)

    def take_logs(self) -> list[tuple[str, str]]:
        with self._lock:
            logs, self._logs = self._logs, []
            self._backlog = 0
            self._wake.clear()
            self._drained.notify_all()
        return logs

    def take_stored(self) -> list[tuple[StoredContent, str]]:
        """What the handler streamed into storage since the last call, for the worker's
        thread to record."""
        with self._lock:
            stored, self.stored = self.stored, []
        return stored

    def wait_for_work(self, timeout: float) -> None:
        """Sleep until the handler ends, its log backlog is full, or `timeout` passes."""
        self._wake.wait(timeout)

    def wake(self) -> None:
        self._wake.set()

    def cancel(self) -> None:
        self._cancel.set()
        with self._lock:
            self._drained.notify_all()

    @property
    def canceled(self) -> bool:
        return self._cancel.is_set()

    def heartbeat(self) -> None:
        if self._cancel.is_set():
            raise StepCanceled("the step was canceled")

    def sleep(self, seconds: float) -> None:
        if self._cancel.wait(max(float(seconds), 0.0)):
            raise StepCanceled("the step was canceled")

    def resource(self, content: bytes | str, *, name: str = "",
                 content_type: str = "application/octet-stream") -> str:
        """Keep an artifact as a resource; returns its res:// ref for the output."""
        data = content.encode() if isinstance(content, str) else bytes(content)
        return self.resource_store(content=data, name=name, content_type=content_type).uri

    def resource_store(self, *, content: Any, name: str = "",
                       content_type: str = "application/octet-stream",
                       max_bytes: int | None = None, max_bytes_setting: str = "",
                       kind: str = ResourceKind.ARTIFACT) -> StoredContent:
        """Stream `content` into storage now, from the handler's thread (constant memory; size
        and SHA-256 computed on the way; no database work). The worker's thread records the
        rows when the attempt ends (`take_stored`)."""
        stored = resource_store(content=content, name=name, content_type=content_type,
                                max_bytes=max_bytes, max_bytes_setting=max_bytes_setting)
        with self._lock:
            self.stored.append((stored, kind))
        return stored

    def secret(self, connection_name: str) -> dict[str, Any]:
        if connection_name not in self._secrets:
            raise StepFailed(f"the step does not name connection {connection_name!r}",
                             error_type="ConnectionNotNamed", retryable=False)
        return self._secrets[connection_name]
