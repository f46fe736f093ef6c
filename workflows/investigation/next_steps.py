"""What happens next, for a run page: which version the run is pinned to, which is live,
whether the draft differs from live, and what retry, replay and rerun would run. Also what a
wait step's callback went through (issued, expires, received, from whom).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from workflows.errors import WorkflowError
from workflows.investigation.explain import failed_step_key, last_good_run_id
from workflows.investigation.plans import run_replay_plan, run_retry_plan
from workflows.models import Event, FlowVersion, Run, StepRun
from workflows.states import RUN_TERMINAL, EventKind, RunStatus


def _plan(build, **kwargs) -> dict[str, Any]:
    try:
        return {"allowed": True, **build(**kwargs)}
    except WorkflowError as exc:
        return {"allowed": False, "reason": str(exc)}


def run_rollback(*, run: Run, live: FlowVersion | None) -> dict[str, Any] | None:
    """`{version, last_good_run}` when rolling back is the cure (issue 24): `run` failed on the
    release that is live, and the last run where its failing step completed ran on another
    release. None otherwise (then retry, replay or a rerun on live is what is left). Two or
    three small queries."""
    if run.status != RunStatus.FAILED or run.is_rehearsal or live is None \
            or run.version_id != live.pk:
        return None
    key = failed_step_key(run)
    good_id = last_good_run_id(run, key) if key else None
    if good_id is None:
        return None
    good = Run.objects.filter(pk=good_id).values(
        "id", "status", "version_id", "version__number", "is_rehearsal").first()
    if good is None or good["is_rehearsal"] or good["version_id"] == live.pk \
            or good["version__number"] is None:
        return None
    return {"version": good["version__number"], "last_good_run": good["id"],
            "failing_step": key}


def run_reruns(*, run: Run) -> list[dict[str, Any]]:
    """The runs started from `run` by a rerun, oldest first: `[{id, status, version}]`."""
    return [{"id": r["id"], "status": r["status"], "version": r["version__number"]}
            for r in Run.objects.filter(rerun_of_id=run.pk).order_by("id")
            .values("id", "status", "version__number")]


def run_next_steps(*, run: Run) -> dict[str, Any]:
    """`{pinned_version, rehearsal, live_version, pinned_is_live, draft_equals_live,
    diff: {flow, from, to} | None, draft_diff: {...} | None, retry, replay, rerun, rollback,
    reruns}`.

    `diff` is the link data of the value diff between the pinned and the live version
    (`GET /flows/{flow}/diff?from=&to=`, None when they are the same); `draft_diff` between
    live and the draft (None when equal or missing). `retry` / `replay` are the plans of
    `run_retry_plan` / `run_replay_plan` with `allowed` (or `allowed: False` and `reason`);
    `rerun` names the live version a rerun would start on; `rollback` is `run_rollback`
    (None unless rolling back is the cure); `reruns` lists the reruns already made of this
    run (`run_reruns`: a page asks before a second one). Three to six queries."""
    flow = run.flow
    versions = {v.pk: v for v in FlowVersion.objects.filter(flow_id=flow.pk).filter(
        Q(pk=flow.live_version_id or 0) | Q(number__isnull=True)).only(
        "id", "number", "content_hash", "flow_id")}
    live = versions.get(flow.live_version_id) if flow.live_version_id else None
    draft = next((v for v in versions.values() if v.number is None), None)
    pinned = None if run.is_rehearsal else run.version.number
    live_number = live.number if live else None
    draft_equals_live = (draft.content_hash == live.content_hash) if draft and live else None
    terminal = run.status in RUN_TERMINAL
    if live is None:
        rerun = {"allowed": False, "reason": f"flow {flow.slug} has no live version"}
    elif not terminal:
        rerun = {"allowed": False, "reason": f"run {run.pk} is still {run.status}"}
    else:
        rerun = {"allowed": True, "version": live_number}
    return {
        "pinned_version": pinned,
        "rehearsal": run.is_rehearsal,
        "live_version": live_number,
        "pinned_is_live": bool(live and not run.is_rehearsal and run.version_id == live.pk),
        "draft_equals_live": draft_equals_live,
        "live_hash": live.content_hash if live else None,
        "draft_hash": draft.content_hash if draft else None,
        "diff": None if live is None or (pinned is not None and run.version_id == live.pk) else {
            "flow": flow.slug, "from": "draft" if pinned is None else str(pinned),
            "to": str(live_number)},
        "draft_diff": None if live is None or draft is None or draft_equals_live else {
            "flow": flow.slug, "from": str(live_number), "to": "draft"},
        "retry": _plan(run_retry_plan, run=run),
        "replay": ({"allowed": True, **run_replay_plan(run=run)} if terminal else
                   {"allowed": False, "reason": f"run {run.pk} is still {run.status}"}),
        "rerun": rerun,
        "rollback": run_rollback(run=run, live=live),
        "reruns": run_reruns(run=run) if terminal else [],
    }


CALLBACK_EVENTS = (EventKind.STEP_COMPLETED, EventKind.CALLBACK_RECEIVED_EARLY)


def wait_step_info(*, step_run: StepRun) -> dict[str, Any]:
    """`{issued_at, expires_at, received_at, remote_addr, user_agent}` of a wait step's
    callback: when the current token was minted (run start or the last redo), when the wait
    gives up (set once the wait is reached), when the callback arrived and the sender's address
    and user agent. Never the token or its URL. Runs created before the sender was stored on
    the step run read it from the callback's event (one more query)."""
    issued_at = step_run.callback_issued_at
    if issued_at is None:
        issued_at = Run.objects.filter(pk=step_run.run_id).values_list(
            "created_at", flat=True).first()
    remote_addr, user_agent = step_run.callback_remote_addr, step_run.callback_user_agent
    if step_run.callback_received_at and not (remote_addr or user_agent):
        data = (Event.objects.filter(step_run_id=step_run.pk, kind__in=CALLBACK_EVENTS,
                                     actor_kind="callback")
                .order_by("-id").values_list("data", flat=True).first()) or {}
        remote_addr = data.get("remote_addr", "")
        user_agent = data.get("user_agent", "")
    return {
        "issued_at": issued_at,
        "expires_at": step_run.timeout_at,
        "received_at": step_run.callback_received_at,
        "remote_addr": remote_addr or None,
        "user_agent": user_agent or None,
    }
