"""A wait's callback siblings: what the remote agent it was handed to posts while it works
(CONTRACT.md "Remote agents", DESIGN.md §9).

- `agent_heartbeat`: message, progress and usage (a running total). Once a process has read
  and checked a token (the indexed read by its hash, with the run's status: a prepared `Wait`
  tuple), the token's later heartbeats are one statement: `engine.agent_beat`, a conditional
  UPDATE of the step run's liveness columns that re-checks the wait in its WHERE clause;
  never the run lock. Usage beyond the wait's `budget` ends the wait (`budget_exceeded`)
  through `engine.step_resolve`, under the run lock — the rare path.
- `agent_log`: text appended to the wait's log as stream `remote`, by the log storage rule: the
  whole log to storage (a part per post, one `log` resource when the wait's attempt ends:
  `resources.logs.remote_log_close`), LogChunks of the wait's attempt kept by
  `resources.logs.LogWindow` (head and newest tail inline, the marker naming the resource).
  The step run's row is locked for the append (not the run), so concurrent posts get
  consecutive sequence numbers.
- `agent_artifact`: a body streamed into a `res://` resource (sha256 computed while streaming,
  capped at WF_ARTIFACT_MAX_BYTES) before any transaction; then, under the step run's row lock,
  the step's `artifacts` gains `{name: descriptor}`. A wait that ended meanwhile keeps nothing.

Every one of them refreshes the wait's heartbeat deadline. The token is checked as a callback's
is (lookup by its hash, constant-time comparison of the recomputed token): an unknown token is
404 (`callback_unknown`), a wait that has ended for any reason 410 (`callback_expired`).
"""

from __future__ import annotations

import hmac
import math
import re
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, Max, Q
from django.utils import timezone

from ops import tracing
from resources.logs import LogWindow, remote_log_part, remote_log_resource_id
from resources.models import Resource, ResourceKind
from resources.payloads import describe_resource, text_storable
from resources.services import header_safe, resource_record, resource_store
from workflows import engine
from workflows.errors import CallbackExpired, CallbackUnknown, WorkflowError
from workflows.models import ActorKind, Attempt, LogChunk, StepRun
from workflows.prepared_queries import PreparedQuery
from workflows.services.webhooks import json_loads_strict
from workflows.states import RUN_TERMINAL, EventKind, StepStatus

HEARTBEAT_MAX_BYTES = 16 * 1024
LOG_MAX_BYTES = 1024 * 1024
MESSAGE_MAX_CHARS = 1000
REMOTE_STREAM = "remote"
ARTIFACT_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")
USAGE_KEYS = ("input_tokens", "output_tokens", "cost_usd")
PROGRESS_KEYS = ("done", "total")


class AgentInvalid(WorkflowError):
    """A heartbeat, log post or artifact that is malformed (names the field)."""

    code = "bad_request"
    http_status = 400

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")

    @property
    def details(self) -> list[dict[str, str]]:
        return [{"path": self.field, "message": str(self).split(": ", 1)[-1]}]


class WaitNotReached(WorkflowError):
    """A log line posted before the wait step was reached has no attempt to belong to yet."""

    code = "wait_not_reached"
    http_status = 409


@dataclass(frozen=True)
class Heartbeat:
    message: str | None = None
    progress: dict[str, float] | None = None
    usage: dict[str, float] | None = None


# --- the token ----------------------------------------------------------------------------------

class Wait(NamedTuple):
    """What a heartbeat or a log post needs of the token's wait: read in one prepared statement
    (no model instances, no run's values)."""

    id: int
    run_id: int
    key: str
    status: str
    callback_nonce: str
    callback_received_at: Any
    timeout_at: Any
    run_status: str
    version_id: int
    rehearsal: bool


# The wait of a token (by its unique hash) with its run's status, in one indexed statement,
# compiled once per process (prepared on PostgreSQL).
_wait_by_hash = PreparedQuery(
    StepRun,
    lambda digest: StepRun.objects.filter(callback_token_hash=digest).order_by()
    .annotate(rehearsal=ExpressionWrapper(Q(run__rehearsal_definition__isnull=False),
                                          output_field=BooleanField()))
    .values_list("id", "run_id", "key", "status", "callback_nonce", "callback_received_at",
                 "timeout_at", "run__status", "run__version_id", "rehearsal"),
    sentinel=engine.token_hash("prepared query sentinel"),
)


def _wait_of(token: str) -> Wait:
    if not token or len(token) > 200:
        raise CallbackUnknown("unknown callback token")
    rows = _wait_by_hash.rows(engine.token_hash(token))
    if not rows:
        raise CallbackUnknown("unknown callback token")
    found = Wait(*rows[0])
    if not hmac.compare_digest(engine.callback_token(found.callback_nonce), token):
        raise CallbackUnknown("unknown callback token")
    _open_check(found)
    return found


def _open_check(wait: Wait) -> None:
    if (wait.callback_received_at is not None or wait.run_status in RUN_TERMINAL
            or wait.status not in engine.AGENT_OPEN_STATUSES):
        raise CallbackExpired("the wait this callback belongs to has ended")
    if wait.timeout_at and wait.timeout_at <= timezone.now():
        raise CallbackExpired("the wait this callback belongs to timed out")


def _params(wait: Wait) -> dict[str, Any]:
    return engine.wait_params(run_id=wait.run_id, version_id=wait.version_id,
                              rehearsal=bool(wait.rehearsal), key=wait.key)


def _touch(wait: Wait, *, now, fields: dict[str, Any] | None = None) -> None:
    deadline = engine.heartbeat_deadline_of(_params(wait), now) \
        if wait.status == StepStatus.WAITING else None
    if not engine.agent_touch(wait.id, now=now, deadline=deadline, fields=fields):
        raise CallbackExpired("the wait this callback belongs to has ended")


def _traced(wait: Wait, traceparent: str | None, name: str) -> AbstractContextManager:
    """With tracing on, a post carrying a `traceparent` is linked to the wait's span (the rare
    path: the run and the step are read for it)."""
    if not traceparent or not tracing.enabled():
        return nullcontext()
    step = StepRun.objects.select_related("run").get(pk=wait.id)
    return engine.trace_inbound(step.run, step, traceparent, name)


# --- heartbeat ----------------------------------------------------------------------------------

def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AgentInvalid(field, "must be a number")
    if not math.isfinite(value):
        raise AgentInvalid(field, "must be a finite number")
    if value < 0:
        raise AgentInvalid(field, "must not be negative")
    return value


def heartbeat_parse(payload: Any) -> Heartbeat:
    """A heartbeat body, checked field by field (AgentInvalid names the first bad one)."""
    if not isinstance(payload, dict):
        raise AgentInvalid("(body)", "must be a JSON object")
    unknown = sorted(set(payload) - {"message", "progress", "usage"})
    if unknown:
        raise AgentInvalid(unknown[0], "unknown field (message, progress, usage)")
    message = payload.get("message")
    if message is not None:
        if not isinstance(message, str):
            raise AgentInvalid("message", "must be a string")
        if not text_storable(message):
            raise AgentInvalid("message", "must not hold NUL or unpaired surrogates")
        message = message[:MESSAGE_MAX_CHARS]
    return Heartbeat(message=message,
                     progress=_numbers(payload.get("progress"), "progress", PROGRESS_KEYS),
                     usage=_numbers(payload.get("usage"), "usage", USAGE_KEYS))


def _numbers(value: Any, field: str, keys: tuple[str, ...]) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AgentInvalid(field, f"must be an object with {', '.join(keys)}")
    extra = sorted(set(value) - set(keys))
    if extra:
        raise AgentInvalid(f"{field}.{extra[0]}", f"unknown field ({', '.join(keys)})")
    numbers = {k: _number(v, f"{field}.{k}") for k, v in value.items()}
    if field == "progress" and "done" in numbers and numbers.get("total") not in (None, 0) \
            and numbers["done"] > numbers["total"]:
        raise AgentInvalid("progress.done", "must not be larger than progress.total")
    return numbers


def agent_heartbeat(*, token: str, payload: Any, traceparent: str | None = None) -> Wait:
    """Record a heartbeat; raises CallbackUnknown, CallbackExpired (also when this heartbeat's
    usage went over the wait's budget, which ends the wait), AgentInvalid.

    One statement once this process knows the token (`engine.agent_beat`, which re-checks the
    wait in its WHERE clause); the first heartbeat of a token in a process, or one the statement
    refuses, reads the token first (`_wait_of`: 404 or 410 precisely). Fields a heartbeat
    leaves out keep their last value: `agent_report` is merged key by key in the UPDATE."""
    beat = heartbeat_parse(payload)
    given = {k: v for k, v in (("message", beat.message), ("progress", beat.progress),
                               ("usage", beat.usage)) if v is not None}
    digest = engine.token_hash(token) if token and len(token) <= 200 else ""
    wait = _known_waits.get(digest)
    if wait is None or not _beat(wait, digest, given, beat.usage, traceparent):
        _known_waits.forget(digest)
        wait = _wait_of(token)
        if not _beat(wait, digest, given, beat.usage, traceparent):
            raise CallbackExpired("the wait this callback belongs to has ended")
        _known_waits.remember(digest, wait)
    return wait


def _beat(wait: Wait, digest: str, report: dict[str, Any], usage: dict[str, float] | None,
          traceparent: str | None) -> bool:
    """The heartbeat's write and, when it landed, its budget check (usage beyond the budget
    ends the wait: CallbackExpired). False when the write matched nothing."""
    now = timezone.now()
    params = _params(wait)
    with _traced(wait, traceparent, "heartbeat"):
        if not engine.agent_beat(wait.id, token_hash=digest, now=now, report=report or None,
                                 deadline=engine.heartbeat_deadline_of(params, now)):
            return False
        over = _over_budget(params.get("budget"), usage)
        if over and _budget_end(wait, over):
            raise CallbackExpired(f"the wait ended: {over}")
    return True


class _KnownWaits:
    """The waits whose token this process has read and checked (by the token's hash), so a
    heartbeat after the first is one statement. Bounded: the oldest half goes when it is full.
    Only the fields that never change for a token are read from a kept `Wait` (the step run,
    its run, key and version: `_params`, `_traced`, `_budget_end`); its status fields are as
    the first read saw them, and whether the wait is still open is checked by every
    heartbeat's UPDATE, not here."""

    def __init__(self, size: int):
        self.size = size
        self.waits: dict[str, Wait] = {}
        self.lock = threading.Lock()

    def get(self, digest: str) -> Wait | None:
        return self.waits.get(digest) if digest else None

    def remember(self, digest: str, wait: Wait) -> None:
        with self.lock:
            if len(self.waits) >= self.size:
                self.waits = dict(list(self.waits.items())[self.size // 2:])
            self.waits[digest] = wait

    def forget(self, digest: str) -> None:
        with self.lock:
            self.waits.pop(digest, None)


_known_waits = _KnownWaits(10_000)


def _over_budget(budget: Any, usage: dict[str, float] | None) -> str:
    if not isinstance(budget, dict) or not usage:
        return ""
    cost = usage.get("cost_usd")
    if budget.get("cost_usd") is not None and cost is not None and cost > budget["cost_usd"]:
        return f"usage cost_usd {cost:g} is beyond the budget of {budget['cost_usd']:g}"
    tokens = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
    if budget.get("tokens") is not None and tokens > budget["tokens"]:
        return f"usage of {tokens:g} tokens is beyond the budget of {budget['tokens']:g}"
    return ""


def _budget_end(wait: Wait, reason: str) -> bool:
    """Over budget: fail the wait (error kind `budget_exceeded`) under the run lock; its
    on_cancel then runs. Only a waiting step is ended here: a wait not reached yet keeps the
    usage, and the first heartbeat after its pause ends it."""
    with transaction.atomic():
        run = engine.lock_run(wait.run_id)
        step = StepRun.objects.get(pk=wait.id)
        if step.status != StepStatus.WAITING or step.callback_received_at is not None:
            return False
        outcome = engine.Failed(error={"type": "BudgetExceeded", "kind": "budget_exceeded",
                                       "message": reason},
                                kind=EventKind.BUDGET_EXCEEDED, reason=reason, run_reason=reason)
        return engine.step_resolve(
            run=run, step_run=step, actor_kind=ActorKind.CALLBACK,
            outcome=engine.WaitEnded(outcome=outcome,
                                     params=engine.agent_params(run, step.key)))


# --- logs ---------------------------------------------------------------------------------------

def log_text(body: bytes, content_type: str) -> str:
    """The text of a log post: text/plain (UTF-8), or JSON `{"text": ...}`."""
    if content_type.split(";")[0].strip().lower() == "application/json":
        payload = _json(body)
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            raise AgentInvalid("text", "must be a string (a JSON body is {\"text\": ...})")
        text = payload["text"]
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AgentInvalid("(body)", f"must be UTF-8 text (byte {exc.start})") from None
    if not text_storable(text):
        raise AgentInvalid("text", "must not hold NUL or unpaired surrogates")
    return text


def _json(body: bytes) -> Any:
    try:
        return json_loads_strict(body)
    except (ValueError, RecursionError) as exc:
        raise AgentInvalid("(body)", f"not valid JSON: {exc}") from None


def agent_log(*, token: str, text: str, traceparent: str | None = None) -> int:
    """Append `text` to the wait's log (stream `remote`); the number of the last chunk."""
    wait = _wait_of(token)
    with _traced(wait, traceparent, "log"):
        if not text:
            _touch(wait, now=timezone.now())
            return 0
        with transaction.atomic():
            _touch(wait, now=timezone.now())  # also locks the step run's row until commit
            attempt = (Attempt.objects.filter(step_run_id=wait.id).order_by("-number")
                       .only("id", "number").first())
            if attempt is None:
                raise WaitNotReached("the wait has not been reached yet; post its log once "
                                     "it is")
            last = LogChunk.objects.filter(step_run_id=wait.id).aggregate(m=Max("seq"))["m"]
            first = (last or 0) + 1
            # The whole log goes to storage (a part per post; one resource when the wait's
            # attempt ends), the window keeps its head and newest tail inline.
            whole = remote_log_resource_id(step_run_id=wait.id, attempt_number=attempt.number,
                                           nonce=wait.callback_nonce)
            part = remote_log_part(resource_id=whole, seq=first, text=text)
            try:
                ref = f"res://{whole}"
                return LogWindow(step_run_id=wait.id, log_ref=ref).keep(
                    [(REMOTE_STREAM, text)], attempt_id=attempt.pk, first_seq=first) - 1
            except BaseException:
                default_storage.delete(part)
                raise


# --- artifacts ----------------------------------------------------------------------------------

# An artifact's resource names its run and step: read without their large values.
_HEAVY = ("output", "error", "callback_payload", "needs", "on_cancel_result", "agent_artifacts",
          "run__input", "run__output", "run__error", "run__trigger_payload")


def artifact_name_check(name: str) -> None:
    if not ARTIFACT_NAME.match(name or "") or name in (".", ".."):
        raise AgentInvalid("name", "must be 1 to 128 of A-Z a-z 0-9 . _ - (not . or ..)")


def agent_artifact(*, token: str, name: str, content: Any, content_type: str) -> dict[str, Any]:
    """Stream `content` into a resource and add it to the wait's artifacts; its descriptor.
    The file is stored under its resource id (never `name`): no path from the request."""
    artifact_name_check(name)
    wait = _wait_of(token)
    step = StepRun.objects.select_related("run").defer(*_HEAVY).get(pk=wait.id)
    stored = resource_store(content=content, name=name,
                            content_type=header_safe(content_type)
                            or "application/octet-stream",
                            max_bytes=int(settings.WF_ARTIFACT_MAX_BYTES),
                            max_bytes_setting="WF_ARTIFACT_MAX_BYTES")
    try:
        with transaction.atomic():
            _touch(wait, now=timezone.now())  # row locked: the artifacts merge is serial
            current = StepRun.objects.filter(pk=step.pk).values_list(
                "agent_artifacts", flat=True).first() or {}
            resource = resource_record(stored=stored, run=step.run, step_run=step,
                                       kind=ResourceKind.ARTIFACT)
            descriptor = describe_resource(resource, reason="artifact")
            StepRun.objects.filter(pk=step.pk).update(
                agent_artifacts={**current, name: descriptor})
    except BaseException:
        storage = Resource._meta.get_field("file").storage
        if storage.exists(stored.file_name):
            storage.delete(stored.file_name)
        raise
    return descriptor
