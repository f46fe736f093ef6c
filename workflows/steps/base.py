"""The one small interface every step type implements.

A step type validates its own parameters (at definition time) and runs one attempt (in a
worker) with a `StepContext` that can log, heartbeat and see cancellation. It reports how the
attempt ended by returning a `StepOutcome` or raising `StepFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol


class StepFailed(Exception):
    """The attempt failed in a way the step understands (bad status, non-zero exit, ...)."""

    def __init__(self, message: str, *, error_type: str = "StepFailed",
                 exit_code: int | None = None, output: Any = None, retryable: bool = True):
        super().__init__(message)
        self.error_type = error_type
        self.exit_code = exit_code
        self.output = output
        self.retryable = retryable


class StepCanceled(Exception):
    """Raised from a heartbeat when the step run was canceled (or lost its lease)."""


@dataclass
class StepOutcome:
    """How an attempt ended when it did not fail.

    kind "completed": `output` is the step's output.
    kind "wait": the step waits for a callback (or a timer when `wake_at` is set).
    kind "approval": the step waits for a human decision; the engine creates the Approval.
    """

    kind: str
    output: Any = None
    exit_code: int | None = None
    wake_at: Any = None
    timeout_seconds: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def completed(cls, output: Any = None, *, exit_code: int | None = None) -> StepOutcome:
        return cls("completed", output=output, exit_code=exit_code)


class StepContext(Protocol):
    """What a handler may use. Implemented by the engine's executor."""

    step: dict[str, Any]  # the step's definition, references resolved
    run_id: int
    step_key: str
    attempt_number: int
    connections: dict[str, Any]
    # W3C traceparent of this attempt's span when tracing is on (ops.tracing), else None: http
    # steps send it, ssh steps export it as TRACEPARENT; `tracestate` (TRACESTATE) goes with it
    # when the run's caller sent one.
    traceparent: str | None
    tracestate: str | None

    def log(self, text: str, stream: str = "stdout") -> None: ...

    def heartbeat(self) -> None:
        """Extend the lease; raises StepCanceled if the step run was canceled meanwhile."""

    @property
    def canceled(self) -> bool: ...

    def sleep(self, seconds: float) -> None:
        """Sleep, heartbeating; raises StepCanceled as soon as the step is canceled."""

    def secret(self, connection_name: str) -> dict[str, Any]:
        """The decrypted secret of a connection this step names (registered for redaction)."""

    def resource(self, content: bytes | str, *, name: str = "",
                 content_type: str = "application/octet-stream") -> str:
        """Store a large artifact as a resource; returns its res:// ref for the output."""

    def resource_store(self, *, content: Any, name: str = "",
                       content_type: str = "application/octet-stream",
                       max_bytes: int | None = None, max_bytes_setting: str = "",
                       kind: str = "artifact") -> Any:
        """Stream `content` (bytes, a file-like object with read(n), an iterator of chunks)
        into a resource with constant memory, size and SHA-256 computed on the way; over
        `max_bytes` it raises ResourceTooLarge and keeps nothing. Returns the stored content
        (`.uri`, `.size`, `.sha256`, `.content_type`); the row is recorded when the attempt
        ends."""


Problem = dict[str, str]


def problem(path: str, message: str) -> Problem:
    return {"path": path, "message": message}


class StepType:
    """Base class for step types. Subclasses set `name` and implement `validate` and `execute`."""

    name: ClassVar[str]
    # Parameters every step may carry, besides the ones its type declares.
    common_keys: ClassVar[frozenset[str]] = frozenset(
        {"key", "type", "needs", "retry", "timeout_seconds", "when", "name", "description",
         "until", "continue_on_error",
         "for_each", "max_parallel", "fail_fast"}
    )
    # Parameters of this type (validate() reports any other key as unknown).
    param_keys: ClassVar[frozenset[str]] = frozenset()
    # Parameters that must not be resolved before the step runs (resolved by the handler).
    deferred_keys: ClassVar[frozenset[str]] = frozenset()
    # Parameters that carry the data a step receives (what a reader calls its input); the
    # others configure it. None: every parameter of the type is input.
    input_keys: ClassVar[frozenset[str] | None] = None

    def validate(self, step: dict[str, Any], path: str) -> list[Problem]:
        """Problems with this step's own parameters (the definition checks common ones)."""
        allowed = self.common_keys | self.param_keys
        return [
            problem(f"{path}.{k}", f"unknown parameter for a {self.name} step")
            for k in step if k not in allowed
        ]

    def execute(self, ctx: StepContext) -> StepOutcome:
        raise NotImplementedError

    def split_input(self, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A step's parameters as (input, configuration): the data it receives, and how it is
        set up (key, needs, retry, timeout and the type's other parameters). For readers: the
        step panel shows an attempt's resolved input apart from its configuration."""
        inputs = self.param_keys if self.input_keys is None else self.input_keys
        received = {k: v for k, v in params.items() if k in inputs}
        configuration = {k: v for k, v in params.items() if k not in inputs}
        return received, configuration

    # --- engine hooks -------------------------------------------------------------------------
    # The engine knows a step type only through these; an app above the engine (approvals)
    # implements them instead of the engine importing it. Each runs inside the engine's
    # transaction with the run's row lock held. The defaults do nothing.

    def on_pause(self, *, run: Any, step_run: Any, steps: dict[str, Any],
                 params: dict[str, Any], attempt_number: int) -> None:
        """The attempt ended paused (outcome "wait" or "approval"); `params` is the step's
        definition with its references resolved, `steps` the run's step runs by key."""

    def on_cancel(self, *, run: Any, step_run: Any) -> None:
        """The step was canceled while paused (its run failed or was canceled), or, for a type
        that `pauses_instances`, a fanned-out step ended early (canceled, failed fast)."""

    # Whether an instance of a `for_each` step of this type may pause: its handler's "wait"
    # outcome moves the instance to `waiting` (its worker is free at once) and
    # `on_instance_pause` starts what resolves it later through `engine.instance_resolve` (a
    # `flow` step: its child run). Other types' instances cannot pause (InstanceCannotPause).
    pauses_instances: ClassVar[bool] = False

    def on_instance_pause(self, *, run: Any, step_run: Any, instance: Any,
                          params: dict[str, Any]) -> dict[str, Any]:
        """An instance of this type paused (engine/instance_pauses.py), in the transaction that
        moved it to `waiting`, without the run's lock; `params` are its parameters resolved
        with its item. Returns fields of the instance row to set (`child_run`); raises
        StepFailed to fail the instance instead (its failure is its end, as any instance's).
        Canceling the step (`on_cancel`, called with the step `running`) must release what
        the paused instances hold."""
        raise StepFailed(f"instances of a {self.name} step cannot pause",
                         error_type="InstanceCannotPause", retryable=False)

    def on_timeout(self, *, run: Any, step_run: Any, params: dict[str, Any]) -> bool:
        """The step's `timeout_at` passed while it waited for approval: resolve it. Returns
        whether anything was done (False: nothing was pending)."""
        return False

    # Connection kinds this type accepts (the definition checks them at release).
    connection_kinds: ClassVar[frozenset[str]] = frozenset()

    def connection_names(self, step: dict[str, Any]) -> list[str]:
        name = step.get("connection")
        return [name] if isinstance(name, str) and name else []

    def connections_to_load(self, step: dict[str, Any]) -> list[str]:
        """The connections (with secrets) a worker loads for this step: the ones it names, plus
        any they lead to (an ssh connection's jump hosts). May query the database."""
        return self.connection_names(step)

    def release_problems(self, step: dict[str, Any], path: str) -> list[Problem]:
        """Problems only the stored connections reveal (a jump chain, a URL outside a
        connection's base_url), checked at release. May query the database."""
        return []


_STEP_TYPES: dict[str, StepType] = {}


def register_step_type(cls: type[StepType]) -> type[StepType]:
    _STEP_TYPES[cls.name] = cls()
    return cls


def get_step_type(name: str) -> StepType | None:
    return _STEP_TYPES.get(name)


def step_type_names() -> list[str]:
    return sorted(_STEP_TYPES)
