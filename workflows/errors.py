"""Domain errors: the bottom of the stack, imported by every layer.

Each error class carries its `code` (the machine-readable name in an error body) and its
`http_status` as class attributes, the way Zulip's `zerver/lib/exceptions.py` does: the edges
(`workflows.api.errors.describe`, the admin's `call_service`) read them instead of matching
types one by one. A subclass that needs another status or code overrides the attributes; one
that does not inherits its parent's. `details` lists problems as `{"path", "message"}`.
"""

from __future__ import annotations

__all__ = [
    "CallbackExpired",
    "CallbackUnknown",
    "CallbackUsed",
    "Conflict",
    "DefinitionInvalid",
    "InputInvalid",
    "NotFound",
    "NotPermitted",
    "OutputNotStorable",
    "TransitionNotAllowed",
    "WorkflowError",
]


class WorkflowError(Exception):
    """Base of the errors a caller can act on."""

    code: str = "bad_request"
    http_status: int = 400
    # The message an edge shows when the error was raised without one.
    default_message: str = ""

    @property
    def details(self) -> list[dict[str, str]]:
        return []


class TransitionNotAllowed(WorkflowError):
    """An illegal move for the state machine: the caller asked for something the table refuses."""

    code = "transition_not_allowed"
    http_status = 409

    def __init__(self, entity: str, from_status: str, to_status: str, detail: str = ""):
        self.entity = entity
        self.from_status = from_status
        self.to_status = to_status
        message = f"{entity} cannot go from {from_status} to {to_status}"
        super().__init__(f"{message}: {detail}" if detail else message)


class DefinitionInvalid(WorkflowError):
    """A flow definition (or a run's input) is wrong. Carries every problem found, each with the
    path of the offending value, e.g. {"path": "steps[2].args.x", "message": "..."}."""

    code = "definition_invalid"
    http_status = 422

    def __init__(self, problems: list[dict[str, str]], message: str = "definition is invalid"):
        self.problems = problems
        summary = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5])
        super().__init__(f"{message}: {summary}" if summary else message)

    @property
    def details(self) -> list[dict[str, str]]:
        return list(self.problems)


class InputInvalid(DefinitionInvalid):
    """A run's input does not match the flow's declared inputs."""

    code = "input_invalid"

    def __init__(self, problems: list[dict[str, str]]):
        super().__init__(problems, "input is invalid")


class NotPermitted(WorkflowError):
    """The actor may not do this (role or assignee check in a service)."""

    code = "forbidden"
    http_status = 403


class Conflict(WorkflowError):
    """The request is well-formed but the current state refuses it (e.g. nothing to retry)."""

    code = "conflict"
    http_status = 409


class CallbackUnknown(WorkflowError):
    """No wait step has this callback token."""

    code = "callback_unknown"
    http_status = 404


class CallbackUsed(WorkflowError):
    """The callback token was already used; tokens are single-use."""

    code = "callback_used"
    http_status = 409


class CallbackExpired(WorkflowError):
    """The wait this token belongs to timed out or its run ended."""

    code = "callback_expired"
    http_status = 410


class NotFound(WorkflowError):
    """The named object does not exist (or the caller may not see it)."""

    code = "not_found"
    http_status = 404
    default_message = "not found"


class OutputNotStorable(WorkflowError):
    """A value could be neither written inline nor kept as a resource (not JSON at all, nested
    too deeply, circular, the storage refused it, or the database refused the write: a
    non-finite number such as a remote `1e400`, a NUL character on PostgreSQL). The engine ends
    the attempt as failed with this error (never retried: the same request would give the same
    value) rather than leaving the step running for the sweeper to re-run as a lost worker.
    Raised by `resources.payloads` and by the executor's last-resort guard."""

    code = "output_not_storable"
    http_status = 422
    error_type = "OutputNotStorable"
    retryable = False
