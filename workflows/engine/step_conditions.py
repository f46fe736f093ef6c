"""The CEL side of a step's definition, as the engine reads it: `when` (is the step to run?),
`until` (is a repeated step done?) and `continue_on_error` (does its failure count?).

The expressions are compiled and evaluated by `workflows.conditions` (CEL, no eval, bounded);
this module only gathers the values they may read. A `when` that is one `{{ ref }}` keeps its
old meaning (truthy) and is not handled here. The values of `steps` are read only when a
condition mentions `steps`, so a flow without CEL conditions runs the same statements as
before (tests/workflows/engine/test_statements.py).
"""

from __future__ import annotations

from typing import Any

from workflows.conditions import (
    ConditionFailed,
    ConditionInvalid,
    condition_compile,
    condition_evaluate,
)
from workflows.models import Run, StepRun
from workflows.states import STEP_TERMINAL, StepStatus

__all__ = ["ConditionError", "optional", "step_failed_counts", "until_holds", "when_holds"]

UNTIL_EVERY_SECONDS = 10


class ConditionError(Exception):
    """A condition could not be evaluated; `error` is the step's error document
    (`type: condition_error`, naming the expression)."""

    def __init__(self, field: str, source: str, reason: str) -> None:
        super().__init__(f"{field}: {source!r}: {reason}")
        self.error = {"type": "condition_error",
                      "message": f"{field} condition {source!r} could not be evaluated: {reason}",
                      "expression": source}


def _evaluate(field: str, source: str, variables: dict[str, Any]) -> bool:
    try:
        return condition_evaluate(condition_compile(source), variables)
    except (ConditionFailed, ConditionInvalid) as exc:
        raise ConditionError(field, source, str(exc)) from None


def _ended_steps(run: Run, steps: dict[str, StepRun]) -> dict[str, dict[str, Any]]:
    """`steps` as a condition sees it: `{key: {output, status}}` of each ended step (one
    query for the outputs: the step runs in memory were loaded without them)."""
    ended = [s.key for s in steps.values() if s.status in STEP_TERMINAL]
    if not ended:
        return {}
    outputs = dict(StepRun.objects.filter(run_id=run.pk, key__in=ended)
                   .values_list("key", "output"))
    return {key: {"output": outputs.get(key), "status": steps[key].status} for key in ended}


def when_holds(run: Run, steps: dict[str, StepRun], source: str,
               item: Any = None) -> bool:
    """Whether the CEL `when` holds over `input`, `steps` and `item` (null outside a
    `for_each`). Raises ConditionError."""
    variables = {"input": run.input if run.input is not None else {},
                 "steps": _ended_steps(run, steps) if "steps" in source else {},
                 "item": item}
    return _evaluate("when", source, variables)


def until_holds(run: Run, until: dict[str, Any], output: Any) -> bool:
    """Whether a repeated step is done: its `until.condition` over `output` (and the run's
    `input`). Raises ConditionError."""
    return _evaluate("until", until["condition"],
                     {"output": output, "input": run.input if run.input is not None else {}})


def optional(definition: dict[str, Any] | None) -> bool:
    """A step whose failure does not fail the run (`continue_on_error: true`)."""
    return bool(definition and definition.get("continue_on_error") is True)


def step_failed_counts(status: str, definition: dict[str, Any] | None) -> bool:
    """Whether a step in `status` fails its run: failed or rejected, and not optional."""
    return status in (StepStatus.FAILED, StepStatus.REJECTED) and not (
        status == StepStatus.FAILED and optional(definition))
