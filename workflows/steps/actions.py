"""Registered python actions. A flow names an action; it never carries code.

    @action("core.echo")
    def echo(ctx, **args): return args
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workflows.steps.base import StepFailed

ActionFunc = Callable[..., Any]
_ACTIONS: dict[str, ActionFunc] = {}


def action(name: str) -> Callable[[ActionFunc], ActionFunc]:
    def register(func: ActionFunc) -> ActionFunc:
        _ACTIONS[name] = func
        return func

    return register


def get_action(name: str) -> ActionFunc | None:
    return _ACTIONS.get(name)


def action_names() -> list[str]:
    return sorted(_ACTIONS)


@action("core.echo")
def core_echo(ctx, **args: Any) -> Any:
    """Returns its args as its output."""
    return args


@action("core.sleep")
def core_sleep(ctx, seconds: float = 1, **_: Any) -> dict[str, Any]:
    """Sleeps `seconds`, heartbeating; stops early when the step is canceled."""
    try:
        seconds = float(seconds)
    except (TypeError, ValueError) as exc:
        raise StepFailed(f"seconds must be a number, got {seconds!r}",
                         error_type="ValueError", retryable=False) from exc
    ctx.log(f"sleeping {seconds:g}s\n")
    ctx.sleep(seconds)
    return {"slept_seconds": seconds}


@action("core.fail")
def core_fail(ctx, message: str = "failed on purpose", **_: Any) -> None:
    """Fails with `message`."""
    raise StepFailed(str(message), error_type="ActionFailed")


@action("core.write_resource")
def core_write_resource(ctx, content: str = "", name: str = "artifact.txt",
                        content_type: str = "text/plain", **_: Any) -> dict[str, Any]:
    """Stores `content` as a resource; the output carries its res:// ref, not the bytes."""
    data = str(content).encode()
    return {"ref": ctx.resource(data, name=name, content_type=content_type), "size": len(data)}


@action("core.flaky")
def core_flaky(ctx, fail_times: int = 1, message: str = "transient failure", **_: Any) -> dict:
    """Fails its first `fail_times` attempts, then succeeds: the demo of retries."""
    if ctx.attempt_number <= int(fail_times):
        raise StepFailed(f"{message} (attempt {ctx.attempt_number})", error_type="Transient")
    return {"succeeded_on_attempt": ctx.attempt_number}


@action("core.poll")
def core_poll(ctx, ready_after: int = 2, **args: Any) -> dict[str, Any]:
    """Reports `ready: true` from its `ready_after`-th attempt on (with its other args): what
    a step polled with `until:` sees of a job that finishes meanwhile. The demo of polling."""
    return {**args, "attempt": ctx.attempt_number, "ready": ctx.attempt_number >= int(ready_after)}
