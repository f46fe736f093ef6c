"""What a retry would do, before it is done: the rule `services.runs.run_retry` applies and the
confirmations show ("runs v1 again, reuses fetch and build").

`reusable` is the one place the rule lives, over step runs already loaded; `retry_reuse` adds
the run's checks and the query (`run_retry` builds its run from it, `run_retry_plan` shapes it
for a page), and the run page applies `reusable` to the step runs it has for each "from step"
choice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workflows.definitions import step_descendants
from workflows.errors import Conflict, NotFound
from workflows.models import Run, StepRun
from workflows.states import RUN_TERMINAL, RunStatus, StepStatus


def reusable(steps: Iterable[Any], *, definition: dict[str, Any],
             from_step: str | None = None) -> list[Any]:
    """The steps of `steps` (step runs, in order) a retry reuses: the completed ones, or with
    `from_step` only the completed ones that do not depend on it."""
    redo = ({from_step} | step_descendants(definition, from_step)) if from_step else set()
    return [s for s in steps if s.status == StepStatus.COMPLETED and s.key not in redo]


def retry_reuse(*, run: Run, from_step: str | None = None) -> dict[str, StepRun]:
    """The completed step runs of `run` a retry reuses, by key, in definition order: every
    completed step (a retry starts at the failed ones), or with `from_step` only the completed
    steps that do not depend on it ("redo from here").

    Raises Conflict while the run is active, or when it completed and no `from_step` is named;
    NotFound for an unknown `from_step`. One query (two with the run's version)."""
    if run.status not in RUN_TERMINAL:
        raise Conflict(f"run {run.pk} is still {run.status}; cancel it first or wait for it")
    originals = {s.key: s for s in StepRun.objects.filter(run_id=run.pk).order_by("position")}
    if from_step is not None and from_step not in originals:
        raise NotFound(f"run {run.pk} has no step {from_step!r}")
    if from_step is None and run.status == RunStatus.COMPLETED:
        raise Conflict(f"run {run.pk} completed; name from_step to redo part of it, "
                       "or replay it")
    return {s.key: s for s in reusable(originals.values(), definition=run.definition,
                                       from_step=from_step)}


def run_retry_plan(*, run: Run, from_step: str | None = None) -> dict[str, Any]:
    """What `run_retry(run=run, from_step=from_step)` would do: `{version, rehearsal, reuse:
    [{key, from_run}], rerun: [keys], from_step}`. A retry (and a replay) runs the version the
    run is pinned to, never the live one. Raises what `run_retry` raises."""
    reuse = retry_reuse(run=run, from_step=from_step)
    source_runs = dict(
        StepRun.objects.filter(pk__in=[s.reused_from_id or s.pk for s in reuse.values()])
        .values_list("pk", "run_id")
    ) if reuse else {}
    keys = [step["key"] for step in run.definition["steps"]]
    return {
        "version": run.version.number,
        "rehearsal": run.is_rehearsal,
        "from_step": from_step,
        "reuse": [
            {"key": key, "from_run": source_runs.get(s.reused_from_id or s.pk, run.pk)}
            for key, s in reuse.items()
        ],
        "rerun": [key for key in keys if key not in reuse],
    }


def run_replay_plan(*, run: Run) -> dict[str, Any]:
    """What `run_replay` would do: every step again on the pinned version, nothing reused."""
    return {
        "version": run.version.number,
        "rehearsal": run.is_rehearsal,
        "from_step": None,
        "reuse": [],
        "rerun": [step["key"] for step in run.definition["steps"]],
    }
