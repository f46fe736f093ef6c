"""Run and step run states, and the tables of allowed transitions (DESIGN.md §3).

Only `workflows.engine.transitions` moves a status; it checks every move against these tables
and raises `workflows.errors.TransitionNotAllowed` for a move they refuse.
"""

from __future__ import annotations

from django.db import models


class RunStatus(models.TextChoices):
    CREATED = "created"  # exists, not yet admitted (e.g. waiting for a concurrency slot)
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class StepStatus(models.TextChoices):
    NOT_STARTED = "not_started"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    REJECTED = "rejected"
    SKIPPED = "skipped"


class AttemptStatus(models.TextChoices):
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    REJECTED = "rejected"


class DeliveryOutcome(models.TextChoices):
    """What became of a webhook delivery that reached a flow (`WebhookDelivery.outcome`)."""

    STARTED = "started"  # verified, let through, a run started
    DUPLICATE = "duplicate"  # its delivery id already started a run: that run, nothing new
    FILTERED = "filtered"  # `events` / `when` left it out (or a handshake was answered)
    REJECTED = "rejected"  # not verified (signature, token, timestamp, replay): no body kept
    INVALID = "invalid"  # verified, but its body or the input it maps to is unusable


class ErrorKind(models.TextChoices):
    """Why a failed run failed (`Run.error_kind`; empty for runs that did not fail). A canceled
    run has no error kind: its status already says it. See `error_kind_of`."""

    REJECTED = "rejected"  # an approval was rejected (or timed out with on_timeout: reject)
    TIMEOUT = "timeout"  # a step, a wait or an approval ran out of time (on_timeout: fail)
    ERROR = "error"  # anything else: the step's handler failed, a worker was lost, ...
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"  # a wait's agent stopped heartbeating
    BUDGET_EXCEEDED = "budget_exceeded"  # a wait's agent reported usage beyond its budget


# Error types (`error.type`) that mean "ran out of time".
TIMEOUT_ERROR_TYPES = frozenset({"StepTimeout", "WaitTimeout", "ApprovalTimeout"})


# Error types of a wait whose remote agent was stopped, and the error kind each one is.
AGENT_ERROR_KINDS = {"HeartbeatTimeout": "heartbeat_timeout", "BudgetExceeded": "budget_exceeded"}


def error_kind_of(step_status: str | None, error: dict | None) -> str:
    """The error kind of a run that failed at a step in `step_status` with `error`: a rejected
    step is `rejected` whatever its error says; a timeout type is `timeout`; else `error`."""
    if step_status == StepStatus.REJECTED:
        return ErrorKind.REJECTED
    error_type = (error or {}).get("type") if isinstance(error, dict) else None
    if error_type == "Rejected":
        return ErrorKind.REJECTED
    if error_type in AGENT_ERROR_KINDS:
        return AGENT_ERROR_KINDS[error_type]
    if error_type in TIMEOUT_ERROR_TYPES:
        return ErrorKind.TIMEOUT
    return ErrorKind.ERROR


class EventKind(models.TextChoices):
    """What an Event records (docs/api.md lists each with its meaning). A status change without
    a kind of its own is `run_<to>` / `step_<to>` (see `EventKind.of_run` / `EventKind.of_step`).
    """

    # a run's status changed
    RUN_CREATED = "run_created"
    RUN_QUEUED = "run_queued"
    RUN_RUNNING = "run_running"
    RUN_WAITING = "run_waiting"
    RUN_WAITING_FOR_APPROVAL = "run_waiting_for_approval"
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCELED = "run_canceled"
    # a step run's status changed
    STEP_NOT_STARTED = "step_not_started"
    STEP_QUEUED = "step_queued"
    STEP_RUNNING = "step_running"
    STEP_WAITING = "step_waiting"
    STEP_WAITING_FOR_APPROVAL = "step_waiting_for_approval"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    STEP_CANCELED = "step_canceled"
    STEP_REJECTED = "step_rejected"
    STEP_SKIPPED = "step_skipped"
    # named moves and repairs
    RUN_HELD = "run_held"
    RUN_REDO = "run_redo"
    STEP_REUSED = "step_reused"
    STEP_REDO = "step_redo"
    STEP_RETRY_SCHEDULED = "step_retry_scheduled"
    STEP_REPEAT_SCHEDULED = "step_repeat_scheduled"  # `until:` did not hold yet
    SUBFLOW_STARTED = "subflow_started"  # a `flow` step started its child run
    STEP_REQUEUED = "step_requeued"
    LEASE_EXPIRED = "lease_expired"
    # for_each instances (engine/fan_out.py, engine/instances.py): each Event names its
    # instance (Event.instance) beside its step run
    INSTANCES_CREATED = "instances_created"
    INSTANCE_QUEUED = "instance_queued"
    INSTANCE_RUNNING = "instance_running"
    INSTANCE_COMPLETED = "instance_completed"
    INSTANCE_FAILED = "instance_failed"
    INSTANCE_CANCELED = "instance_canceled"
    INSTANCE_RETRY_SCHEDULED = "instance_retry_scheduled"
    INSTANCE_REQUEUED = "instance_requeued"
    INSTANCE_WAITING = "instance_waiting"  # paused: resolved from outside (a fanned `flow` step)
    WAIT_TIMED_OUT = "wait_timed_out"
    CALLBACK_RECEIVED_EARLY = "callback_received_early"
    HEARTBEAT_TIMED_OUT = "heartbeat_timed_out"  # a wait's agent missed its heartbeat
    BUDGET_EXCEEDED = "budget_exceeded"  # a wait's agent reported usage beyond its budget
    ON_CANCEL_RAN = "on_cancel_ran"  # a wait's on_cancel command ran (exit code in data)
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_APPROVED = "approval_approved"
    APPROVAL_REJECTED = "approval_rejected"
    APPROVAL_TIMED_OUT = "approval_timed_out"
    # notifications (workflows/services/notifications.py): one per try, never with a secret
    NOTIFICATION_SENT = "notification_sent"
    NOTIFICATION_FAILED = "notification_failed"
    RUN_RERUN = "run_rerun"  # on the original run: a rerun on the live version was started
    RUN_RERUN_OF = "run_rerun_of"  # on the new run: it reruns that run's input

    @classmethod
    def of_run(cls, status: str) -> EventKind:
        """The kind of a plain move of a run to `status`."""
        return cls(f"run_{status}")

    @classmethod
    def of_step(cls, status: str) -> EventKind:
        """The kind of a plain move of a step run to `status`."""
        return cls(f"step_{status}")


class FlowHistoryKind(models.TextChoices):
    """What a flow's history records (`FlowHistory`, GET /flows/{slug}/history)."""

    RELEASED = "released"  # the draft became release vN
    DRAFT_EDITED = "draft_edited"  # the draft changed (data: content_hash)
    PROMOTED = "promoted"  # vN went live, replacing an older (or no) live release
    ROLLED_BACK = "rolled_back"  # a release older than the live one went live again
    WEBHOOK_SECRET_ROTATED = "webhook_secret_rotated"
    NOTIFICATION_SECRET_ROTATED = "notification_secret_rotated"
    PROMOTION_REQUESTED = "promotion_requested"  # two-person rule: a request awaits approval
    PROMOTION_REJECTED = "promotion_rejected"  # the request was rejected (nothing went live)
    PROMOTION_EXPIRED = "promotion_expired"  # nobody decided before its timeout


class NotificationStatus(models.TextChoices):
    """A Notification (outbox row): waiting for its next try, delivered, or given up."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class NotificationChannel(models.TextChoices):
    EMAIL = "email"
    WEBHOOK = "webhook"


RUN_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
STEP_TERMINAL = frozenset(
    {StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.CANCELED, StepStatus.REJECTED,
     StepStatus.SKIPPED}
)
# Step states that satisfy a dependent's `needs`.
STEP_DONE = frozenset({StepStatus.COMPLETED, StepStatus.SKIPPED})
STEP_ACTIVE = frozenset(
    {StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.WAITING, StepStatus.WAITING_FOR_APPROVAL}
)
# The reason of the event of a step queued because its needs are done: the engine writes it
# (engine/progress.py), the run page's compact timeline hides it (admin_views/timeline.py).
READY_REASON = "needs satisfied"

_R = RunStatus
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    _R.CREATED: frozenset({_R.QUEUED, _R.CANCELED, _R.FAILED}),
    _R.QUEUED: frozenset({_R.RUNNING, _R.WAITING, _R.WAITING_FOR_APPROVAL, _R.COMPLETED,
                          _R.FAILED, _R.CANCELED}),
    _R.RUNNING: frozenset({_R.WAITING, _R.WAITING_FOR_APPROVAL, _R.COMPLETED, _R.FAILED,
                           _R.CANCELED}),
    _R.WAITING: frozenset({_R.RUNNING, _R.WAITING_FOR_APPROVAL, _R.COMPLETED, _R.FAILED,
                           _R.CANCELED}),
    _R.WAITING_FOR_APPROVAL: frozenset({_R.RUNNING, _R.WAITING, _R.COMPLETED, _R.FAILED,
                                        _R.CANCELED}),
    _R.COMPLETED: frozenset(),
    _R.FAILED: frozenset(),
    _R.CANCELED: frozenset(),
}

_S = StepStatus
STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    # not_started -> failed: its CEL `when` could not be evaluated (condition_error).
    _S.NOT_STARTED: frozenset({_S.QUEUED, _S.SKIPPED, _S.CANCELED, _S.FAILED}),
    _S.QUEUED: frozenset({_S.RUNNING, _S.CANCELED}),
    # running -> queued is an automatic retry (a new Attempt of the same step run).
    _S.RUNNING: frozenset({_S.COMPLETED, _S.FAILED, _S.CANCELED, _S.WAITING,
                           _S.WAITING_FOR_APPROVAL, _S.QUEUED}),
    _S.WAITING: frozenset({_S.RUNNING, _S.COMPLETED, _S.FAILED, _S.CANCELED}),
    # -> failed: the approval timed out (on_timeout: fail).
    _S.WAITING_FOR_APPROVAL: frozenset({_S.COMPLETED, _S.REJECTED, _S.CANCELED, _S.FAILED}),
    _S.COMPLETED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.SKIPPED: frozenset(),
}

# Redo (approvals) is the one sanctioned way back: a reviewer sends the run back to an earlier
# step. The steps from the redo target up to the approval get a fresh start; their attempts and
# events stay. These moves are allowed only through the redo service (EventKind.STEP_REDO).
STEP_REDO_TRANSITIONS: dict[str, frozenset[str]] = {
    _S.COMPLETED: frozenset({_S.QUEUED, _S.NOT_STARTED}),
    _S.SKIPPED: frozenset({_S.QUEUED, _S.NOT_STARTED}),
    _S.WAITING_FOR_APPROVAL: frozenset({_S.QUEUED, _S.NOT_STARTED}),
}


def run_transition_allowed(from_status: str, to_status: str) -> bool:
    return to_status in RUN_TRANSITIONS.get(from_status, frozenset())


def step_transition_allowed(from_status: str, to_status: str, *, redo: bool = False) -> bool:
    if to_status in STEP_TRANSITIONS.get(from_status, frozenset()):
        return True
    return redo and to_status in STEP_REDO_TRANSITIONS.get(from_status, frozenset())
