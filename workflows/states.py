"""Run and step run states, and the tables of allowed transitions (DESIGN.md §3).

Only `workflows.services.transitions` moves a status; it checks every move against these tables.
"""

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
    _S.NOT_STARTED: frozenset({_S.QUEUED, _S.SKIPPED, _S.CANCELED}),
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
# events stay. These moves are allowed only through the redo service (kind="redo").
STEP_REDO_TRANSITIONS: dict[str, frozenset[str]] = {
    _S.COMPLETED: frozenset({_S.QUEUED, _S.NOT_STARTED}),
    _S.SKIPPED: frozenset({_S.QUEUED, _S.NOT_STARTED}),
    _S.WAITING_FOR_APPROVAL: frozenset({_S.QUEUED, _S.NOT_STARTED}),
}


class TransitionNotAllowed(Exception):
    """An illegal move for the state machine: the caller asked for something the table refuses."""

    def __init__(self, entity: str, from_status: str, to_status: str, detail: str = ""):
        self.entity = entity
        self.from_status = from_status
        self.to_status = to_status
        message = f"{entity} cannot go from {from_status} to {to_status}"
        super().__init__(f"{message}: {detail}" if detail else message)


def run_transition_allowed(from_status: str, to_status: str) -> bool:
    return to_status in RUN_TRANSITIONS.get(from_status, frozenset())


def step_transition_allowed(from_status: str, to_status: str, *, redo: bool = False) -> bool:
    if to_status in STEP_TRANSITIONS.get(from_status, frozenset()):
        return True
    return redo and to_status in STEP_REDO_TRANSITIONS.get(from_status, frozenset())
