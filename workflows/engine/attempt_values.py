"""The storage rule applied to what one attempt writes: its input, output and error.

Called by the executor outside the outcome's transaction (storing a resource takes time and
must not hold the run's row lock), after redaction (the resource keeps what it is given). Each
value goes through `resources.payloads`: inline when both databases can store it and it is at
most WF_INLINE_OUTPUT_BYTES, else kept whole as a resource with a descriptor inline. A value
that cannot be kept at all ends the attempt as failed with `OutputNotStorable` (never retried:
the same data would come back).
"""

from __future__ import annotations

from typing import Any

from resources.payloads import storable_json, storable_text
from workflows.errors import OutputNotStorable
from workflows.steps import StepCanceled, StepFailed

__all__ = ["ERROR_TEXT_CHARS", "error_document", "input_storable", "not_storable",
           "result_storable"]

# An error's message and traceback stay inline up to this many characters each; a longer
# error is kept whole as a resource and the inline copy says where.
ERROR_TEXT_CHARS = 16_000


def not_storable(message: str) -> StepFailed:
    """The failure an attempt ends with when what it produced cannot be stored."""
    return StepFailed(message, error_type="OutputNotStorable", retryable=False)


def _where(claimed: Any) -> dict[str, Any]:
    # The Attempt row may not exist yet (a fast attempt is written once, when it ends).
    return {"run": claimed.run, "step_run": claimed.step, "attempt": None}


def input_storable(claimed: Any) -> StepFailed | None:
    """Make the attempt's (already redacted) input storable; the failure when it cannot be."""
    value = claimed.attempt.input
    if value is None:
        return None
    try:
        claimed.attempt.input = storable_json(value, name=f"{claimed.step.key}-input.json",
                                              **_where(claimed))
    except OutputNotStorable as exc:
        claimed.attempt.input = None
        return not_storable(f"the step's input cannot be stored: {exc}")
    return None


def error_document(claimed: Any, exc: BaseException, trace: str) -> dict[str, Any]:
    """`{type, message, traceback}` of a failure, redacted and storable; a message or a
    traceback longer than ERROR_TEXT_CHARS is cut inline and the whole error is kept as a
    resource (`full` holds its descriptor), so nothing is lost."""
    redact = claimed.redactor.redact
    error = redact({
        "type": storable_text(getattr(exc, "error_type", None) or type(exc).__name__),
        "message": storable_text(str(exc)),
        "traceback": storable_text(trace if not isinstance(exc, StepFailed) else ""),
    })
    if max(len(error["message"]), len(error["traceback"])) <= ERROR_TEXT_CHARS:
        return error
    try:
        full = storable_json(error, name=f"{claimed.step.key}-error.json", limit=0,
                             **_where(claimed))
    except OutputNotStorable:
        full = None
    cut = {key: _cut(error[key], full) for key in ("message", "traceback")}
    return {**error, **cut, "full": full}


def _cut(text: str, full: Any) -> str:
    if len(text) <= ERROR_TEXT_CHARS:
        return text
    where = f"; the whole error is kept as {full['$resource']}" if full else ""
    return text[:ERROR_TEXT_CHARS] + f" … [{len(text) - ERROR_TEXT_CHARS:,} characters more{where}]"


def result_storable(claimed: Any, result: Any) -> None:
    """Apply the storage rule to an attempt's result in place: a completed output becomes
    storable (or the attempt fails with OutputNotStorable); a failure gets its storable error
    document (`result.error_doc`) and output (`result.output`)."""
    redact = claimed.redactor.redact
    key = claimed.step.key
    outcome = result.outcome
    if outcome is not None and result.error is None:
        if outcome.kind != "completed":
            return
        try:
            outcome.output = storable_json(redact(outcome.output), name=f"{key}-output.json",
                                           **_where(claimed))
            return
        except OutputNotStorable as exc:
            result.outcome = None
            result.error = not_storable(f"the step's output cannot be stored: {exc}")
            result.trace = ""
    exc = result.error
    if exc is None or isinstance(exc, StepCanceled):
        return
    result.error_doc = error_document(claimed, exc, result.trace)
    output = getattr(exc, "output", None)
    if output is None:
        return
    try:
        result.output = storable_json(redact(output), name=f"{key}-output.json",
                                      **_where(claimed))
    except OutputNotStorable as problem:
        result.output = None
        result.error_doc["message"] += f" (its output could not be stored: {problem})"
