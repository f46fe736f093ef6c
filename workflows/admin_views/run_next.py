"""The run page's "what happens next" box (`data-section="next"`, failed runs) and the
confirmations of the run actions.

- `next_context`: pinned vN, live vM, whether the draft equals live, the link to the value diff,
  and why it broke (`run_explain`: failing since the first bad run, what changed since the last
  good one). When the live release fails and the last good run ran on another one, the first
  action is "Roll back to vN (last good: #8)" (the promote confirmation of vN: the same
  promotion service, two-person rule included), then "Run this input on vN" (a rerun pinned
  to that release). Read through `workflows.investigation` (`run_next_steps`, `run_explain`).
- `action_confirmations`: what Retry (for each "from step" choice), Replay and "Run this input
  on the live version" / "on vN" will run, named in their confirmation questions: the version
  and the steps they reuse, and the rerun already made of this run when there is one.
- `version_diff_url`: the one place the value diff is linked from; it points at the API's diff
  (`GET /api/v1/flows/{slug}/diff`) until the admin has a diff page of its own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from workflows.admin_views.diff_page import diff_url
from workflows.admin_views.edge import run_url
from workflows.errors import WorkflowError
from workflows.investigation import run_explain, run_next_steps
from workflows.investigation.plans import reusable
from workflows.models import Flow, Run
from workflows.states import RUN_TERMINAL, RunStatus
from workflows.templatetags.wf_render import status_label


def version_diff_url(*, flow: Flow, before: str, after: str) -> str:
    """Where "value diff" links go: the admin's diff page between two versions of a flow
    (`before` / `after`: a release number or "draft")."""
    return diff_url(flow, str(before), str(after))


def version_name(number: int | None) -> str:
    return "the draft" if number is None else f"v{number}"


def reuse_phrase(plan: dict[str, Any]) -> str:
    reused = [r["key"] for r in plan.get("reuse", [])]
    again = plan.get("rerun", [])
    text = f"reuses {', '.join(reused)}" if reused else "reuses no step"
    return text + (f" and runs {', '.join(again)} again" if again else "")


def retry_from_plan(*, run: Run, steps: list[Any], from_step: str) -> dict[str, Any]:
    """`{reuse: [{key}], rerun: [keys]}` of a retry from `from_step`, read off the step runs
    the page already has (no query per choice) with the rule retries apply (`reusable`).
    tests/admin/test_run_next.py checks it against `run_retry_plan` for every step."""
    reuse = [s.key for s in reusable(steps, definition=run.definition, from_step=from_step)]
    return {"reuse": [{"key": key} for key in reuse],
            "rerun": [s.key for s in steps if s.key not in reuse]}


def action_confirmations(*, run: Run, steps: list[Any], next_steps: dict[str, Any] | None
                         ) -> dict[str, Any]:
    """The confirmation questions of Retry (the failed-step default and each "from step"
    choice), Replay and the rerun on the live version. Only for an ended run: a retry needs
    one. A choice the service would refuse (a completed run with no step named) says why."""
    if run.status not in RUN_TERMINAL or next_steps is None:
        return {}
    pinned = "the draft" if run.is_rehearsal else f"v{run.version.number}"
    live = next_steps.get("live_version")
    pinned_note = (f"{pinned}, the version it is pinned to"
                   + (f" (live is v{live})" if live and not next_steps.get("pinned_is_live")
                      else ""))
    retry = next_steps.get("retry") or {}
    confirms: dict[str, Any] = {"retry_default": "", "retry_from": {}}
    if retry.get("allowed"):
        confirms["retry_default"] = (f"Retry run {run.pk} on {pinned_note}: "
                                     f"{reuse_phrase(retry)}?")
    for step in steps:
        plan = retry_from_plan(run=run, steps=steps, from_step=step.key)
        confirms["retry_from"][step.key] = (f"Retry run {run.pk} from {step.key} on "
                                            f"{pinned_note}: {reuse_phrase(plan)}?")
    replay = next_steps.get("replay") or {}
    confirms["replay"] = (f"Replay run {run.pk} from the start on {pinned_note} with the same "
                          f"input: {reuse_phrase(replay)}?" if replay.get("allowed") else "")
    rerun = next_steps.get("rerun") or {}
    reruns = next_steps.get("reruns") or []
    again = rerun_again_phrase(reruns)
    confirms["rerun"] = (f"{again}Start a new run of this input on the live version, "
                         f"v{rerun.get('version')}: it reuses no step?"
                         if rerun.get("allowed") else "")
    confirms["rerun_reason"] = rerun.get("reason", "")
    confirms["rerun_again"] = reruns[-1]["id"] if reruns else ""
    rollback = next_steps.get("rollback")
    confirms["rerun_version"] = (
        f"{again}Start a new run of this input on v{rollback['version']}, the version of the "
        f"last good run #{rollback['last_good_run']} (live stays v{live}): it reuses no step?"
        if rollback and run.status in RUN_TERMINAL else "")
    return confirms


def rerun_again_phrase(reruns: list[dict[str, Any]]) -> str:
    """"Run #18 (failed) already reran this input. " for a second rerun's confirmation."""
    if not reruns:
        return ""
    first = reruns[0]
    more = f" and {len(reruns) - 1} more" if len(reruns) > 1 else ""
    return (f"Run #{first['id']} ({status_label(first['status'])}){more} already reran this "
            "input, and its side effects happened again. ")


def next_context(*, run: Run) -> dict[str, Any]:
    """What the "what happens next" box shows for a failed run (None otherwise): the version
    facts with diff links, and the explanation of the first bad run."""
    next_steps = run_next_steps(run=run)
    box: dict[str, Any] = {"steps": next_steps, "pinned": version_name(
        next_steps["pinned_version"]), "live": version_name(next_steps["live_version"])
        if next_steps["live_version"] is not None else None}
    diff = next_steps.get("diff")
    box["diff_url"] = version_diff_url(flow=run.flow, before=diff["from"],
                                       after=diff["to"]) if diff else ""
    draft_diff = next_steps.get("draft_diff")
    box["draft_diff_url"] = version_diff_url(
        flow=run.flow, before=draft_diff["from"], after=draft_diff["to"]
    ) if draft_diff else ""
    box["explain"] = explain_context(run) if run.status == RunStatus.FAILED else None
    rollback = next_steps.get("rollback")
    box["rollback"] = {
        **rollback, "good_url": run_url(rollback["last_good_run"]),
        "url": rollback_url(run=run, rollback=rollback),
    } if rollback else None
    return box


def rollback_url(*, run: Run, rollback: dict[str, Any]) -> str:
    """The promote confirmation of the last good version, saying it is a rollback and why."""
    return (reverse("admin:workflows_flow_promote", args=[run.flow_id]) + "?"
            + urlencode({"number": rollback["version"], "run": run.pk}))


def explain_context(run: Run) -> dict[str, Any] | None:
    """`run_explain` shaped for the box: links to the first bad and last good runs, the changed
    paths of the release (the failing step's first), input keys and connections."""
    try:
        explained = run_explain(run=run)
    except WorkflowError:
        return None
    bad, good = explained["first_bad_run"], explained["last_good_run"]
    version = explained["changes"]["version"]
    paths = [c["path"] for c in (version or {}).get("definition_value_changes", [])]
    return {
        **explained,
        "bad_url": run_url(bad["id"]) if bad else "",
        "good_url": run_url(good["id"]) if good else "",
        "version_label": version["to_label"] if version else "",
        "version_paths": paths[:3], "version_more": max(0, len(paths) - 3),
        "version_diff_url": version_diff_url(
            flow=run.flow, before=str(version["from"] or "draft"),
            after=str(version["to"] or "draft")) if version else "",
        "input_keys": [c["key"] for c in explained["changes"]["input"]],
        "nothing_changed": bool(good and bad) and not (
            version or explained["changes"]["input"] or explained["changes"]["connections"]),
    }
