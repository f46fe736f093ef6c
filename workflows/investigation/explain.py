"""Why it broke: where the failing step of a run last went from `completed` to failing, and
what changed between those two runs (issue 12 §6).

From the flow's history (its released runs; rehearsals run drafts and are left out, unless the
run explained is one), for the step that failed in `run`:
- `last_good_run`: the newest earlier run where that step ran and completed (a step reused by a
  retry did not run, so it is no evidence);
- `first_bad_run`: the first run after it where the step failed (or was rejected);
- `failing_since_count`: how many runs from the first bad one on (up to now, this run and any
  later one included) the step failed in;
- `changes` between the last good and the first bad run: `version` (from/to numbers and the
  value diff, the failing step's paths first), `input` (the keys whose values differ), and
  `connections` (audit entries of the connections the step uses, between the two runs' start
  times: edits and secret changes by name, never a value). All empty means nothing we control
  changed: look at the outside world.
A run that did not fail has nothing to explain: `run_explain` raises Conflict (HTTP 409).
Five to seven queries, whatever the length of the history.
"""

from __future__ import annotations

from typing import Any

from connections.models import ConnectionAudit
from workflows.definitions import definition_value_changes
from workflows.errors import Conflict
from workflows.models import Run, StepRun
from workflows.states import RunStatus, StepStatus
from workflows.steps import get_step_type

FAILING = (StepStatus.FAILED, StepStatus.REJECTED)
SUMMARY_PATHS = 3


def failed_step_key(run: Run) -> str | None:
    """The key of the step `run` failed at (its error names it; else its first failed step)."""
    error = run.error if isinstance(run.error, dict) else {}
    if error.get("step"):
        return str(error["step"])
    return (StepRun.objects.filter(run_id=run.pk, status__in=FAILING).order_by("position")
            .values_list("key", flat=True).first())


def run_summary(run: Run | None, step_status: str | None = None) -> dict[str, Any] | None:
    """A small document of a run for explanations: id, version, status, times."""
    if run is None:
        return None
    return {
        "id": run.pk,
        "version": None if run.is_rehearsal else run.version.number,
        "rehearsal": run.is_rehearsal,
        "status": run.status,
        "error_kind": run.error_kind or None,
        "step_status": step_status,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def _history(run: Run, key: str):
    """The step runs of `key` in the flow's history that count as evidence."""
    steps = StepRun.objects.filter(run__flow_id=run.flow_id, key=key)
    if not run.is_rehearsal:
        steps = steps.filter(run__is_rehearsal=False)
    return steps


def last_good_run_id(run: Run, key: str) -> int | None:
    """The newest run before `run` where step `key` ran and completed (reused steps did not
    run; rehearsals count only for a rehearsal): the one baseline of the explanation, the
    comparison and the rollback offer (issue 24). One indexed query."""
    return (_history(run, key).filter(status=StepStatus.COMPLETED, reused_from__isnull=True,
                                      run_id__lt=run.pk)
            .order_by("-run_id").values_list("run_id", flat=True).first())


def run_baseline(*, run: Run) -> Run | None:
    """The run `run` is compared with by default ("last good"): for a failed run, the last run
    where its failing step completed (as the explanation says), else the newest completed run
    of the flow before it. With flow and version loaded."""
    key = failed_step_key(run) if run.status == RunStatus.FAILED else None
    if key is not None:
        good = last_good_run_id(run, key)
        return Run.objects.select_related("flow", "version").filter(pk=good).first() \
            if good else None
    return (Run.objects.select_related("flow", "version")
            .filter(flow_id=run.flow_id, status=RunStatus.COMPLETED, id__lt=run.pk)
            .order_by("-id").first())


def _step_first(changes: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    prefix = f"steps.{key}"
    mine = [c for c in changes if c["path"] == prefix or c["path"].startswith(prefix + ".")]
    return mine + [c for c in changes if c not in mine]


def _version_change(good: Run, bad: Run, key: str) -> dict[str, Any] | None:
    if good.version_id == bad.version_id and not (good.is_rehearsal or bad.is_rehearsal):
        return None
    values = definition_value_changes(good.definition, bad.definition)
    if not values and good.version_id == bad.version_id:
        return None
    return {
        "from": None if good.is_rehearsal else good.version.number,
        "to": None if bad.is_rehearsal else bad.version.number,
        "from_label": "draft" if good.is_rehearsal else f"v{good.version.number}",
        "to_label": "draft" if bad.is_rehearsal else f"v{bad.version.number}",
        "definition_value_changes": _step_first(values, key),
    }


def _input_changes(good: Run, bad: Run) -> list[dict[str, Any]]:
    before, after = good.input or {}, bad.input or {}
    keys = list(before) + [k for k in after if k not in before]
    return [{"key": k, "before": before.get(k), "after": after.get(k)}
            for k in keys if before.get(k) != after.get(k)]


def _step_connections(run: Run, key: str) -> set[str]:
    names: set[str] = set()
    for step in run.definition["steps"]:
        if step["key"] == key:
            step_type = get_step_type(step["type"])
            if step_type is not None:
                names.update(step_type.connection_names(step))
    return names


def _connection_changes(good: Run, bad: Run, key: str) -> list[dict[str, Any]]:
    names = _step_connections(good, key) | _step_connections(bad, key)
    since = good.started_at or good.created_at
    until = bad.started_at or bad.created_at
    if not names or since is None or until is None:
        return []
    audits = (ConnectionAudit.objects.filter(connection_name__in=sorted(names), at__gt=since,
                                             at__lte=until)
              .select_related("actor").order_by("at", "id"))
    return [{
        "name": a.connection_name,
        "action": a.action,
        "change": "rotated" if "secret" in (a.fields or []) else "edited",
        "fields": list(a.fields or []),
        "at": a.at,
        "actor": a.actor.get_username() if a.actor_id else None,
    } for a in audits]


def _summary(key: str, good: Run | None, bad: Run | None, count: int,
             changes: dict[str, Any], first_on_version: bool) -> str:
    if bad is None:
        return f"step {key} has not failed before"
    head = (f"#{good.pk}, last good → #{bad.pk}, first bad: " if good is not None else "") \
        + f"{key} failing since #{bad.pk}"
    version = changes["version"]
    if version and first_on_version:
        head += f", the first run on {version['to_label']}"
    head += f" ({count} failed run{'s' if count != 1 else ''} since)"
    if good is None:
        return head + f"; it never completed before #{bad.pk}"
    parts = []
    if version:
        paths = [c["path"] for c in version["definition_value_changes"][:SUMMARY_PATHS]]
        more = len(version["definition_value_changes"]) - len(paths)
        changed = ", ".join(paths) + (f" and {more} more" if more > 0 else "")
        parts.append(f"{version['to_label']} changed {changed}" if paths
                     else f"{version['to_label']} replaced {version['from_label']}")
    if changes["input"]:
        parts.append("input changed: " + ", ".join(c["key"] for c in changes["input"]))
    for c in changes["connections"]:
        parts.append(f"connection {c['name']} was {c['change']}")
    if not parts:
        parts.append(f"nothing changed in the release, the input or the step's connections "
                     f"since #{good.pk} (last good): look outside (services it calls, data it "
                     "reads)")
    return head + "; " + "; ".join(parts)


def run_explain(*, run: Run) -> dict[str, Any]:
    """`{step, last_good_run, first_bad_run, failing_since_count, changes: {version, input,
    connections}, first_on_version, summary}` for the step that failed in `run` (see the module
    docstring); `first_on_version`: the first bad run was the first run on its release.
    Raises Conflict when the run did not fail."""
    if run.status != RunStatus.FAILED:
        raise Conflict(f"run {run.pk} is {run.status}, not failed: there is nothing to explain")
    key = failed_step_key(run)
    if key is None:
        raise Conflict(f"run {run.pk} failed before any step did: there is no step to explain")
    history = _history(run, key)
    good_step = last_good_run_id(run, key)
    bad_steps = history.filter(status__in=FAILING)
    if good_step is not None:
        bad_steps = bad_steps.filter(run_id__gt=good_step)
    bad_step = (bad_steps.filter(run_id__lte=run.pk).order_by("run_id")
                .values_list("run_id", "status").first())
    runs = {r.pk: r for r in Run.objects.select_related("version").filter(
        pk__in=[pk for pk in (good_step, bad_step[0] if bad_step else None) if pk])}
    good = runs.get(good_step) if good_step else None
    bad = runs.get(bad_step[0]) if bad_step else None
    count = bad_steps.count() if bad is not None else 0
    changes: dict[str, Any] = {"version": None, "input": [], "connections": []}
    first_on_version = False
    if good is not None and bad is not None:
        changes = {
            "version": _version_change(good, bad, key),
            "input": _input_changes(good, bad),
            "connections": _connection_changes(good, bad, key),
        }
    if bad is not None and not bad.is_rehearsal:
        first_on_version = not Run.objects.filter(
            flow_id=run.flow_id, version_id=bad.version_id, is_rehearsal=False, pk__lt=bad.pk
        ).exists()
    return {
        "step": key,
        "last_good_run": run_summary(good, StepStatus.COMPLETED if good else None),
        "first_bad_run": run_summary(bad, bad_step[1] if bad_step else None),
        "failing_since_count": count,
        "changes": changes,
        "first_on_version": first_on_version,
        "summary": _summary(key, good, bad, count, changes, first_on_version),
    }
