"""Domain errors. Edges (API, admin, CLI) map each type to a status code in one place."""

from workflows.states import TransitionNotAllowed

__all__ = [
    "CallbackExpired",
    "CallbackUnknown",
    "CallbackUsed",
    "Conflict",
    "DefinitionInvalid",
    "NotFound",
    "NotPermitted",
    "TransitionNotAllowed",
    "WorkflowError",
]


class WorkflowError(Exception):
    """Base of the errors a caller can act on."""


class DefinitionInvalid(WorkflowError):
    """A flow definition (or a run's input) is wrong. Carries every problem found, each with the
    path of the offending value, e.g. {"path": "steps[2].args.x", "message": "..."}."""

    def __init__(self, problems: list[dict[str, str]], message: str = "definition is invalid"):
        self.problems = problems
        summary = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5])
        super().__init__(f"{message}: {summary}" if summary else message)


class InputInvalid(DefinitionInvalid):
    """A run's input does not match the flow's declared inputs."""

    def __init__(self, problems: list[dict[str, str]]):
        super().__init__(problems, "input is invalid")


class NotPermitted(WorkflowError):
    """The actor may not do this (role or assignee check in a service)."""


class Conflict(WorkflowError):
    """The request is well-formed but the current state refuses it (e.g. nothing to retry)."""


class CallbackUnknown(WorkflowError):
    """No wait step has this callback token."""


class CallbackUsed(WorkflowError):
    """The callback token was already used; tokens are single-use."""


class CallbackExpired(WorkflowError):
    """The wait this token belongs to timed out or its run ended."""


class NotFound(WorkflowError):
    """The named object does not exist (or the caller may not see it)."""
