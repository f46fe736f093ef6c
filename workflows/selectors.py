"""Queries that read (STYLE.md: selectors). The admin and the API shape these the same way.

The admin pages (`workflows/admin_views/`) read only through here and `approvals.selectors`:
they pass ids and objects in and get rows or model instances back, never a query to refine."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, FloatField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from resources.logs import log_resource_id
from resources.models import Resource
from workflows import engine
from workflows.definitions import definition_diff
from workflows.errors import NotFound
from workflows.instance_selectors import INSTANCE_ENDED, instance_counts, worst_status
from workflows.models import (
    Attempt,
    Event,
    Flow,
    FlowHistory,
    FlowVersion,
    LogChunk,
    Run,
    ScheduleState,
    StepInstance,
    StepRun,
    WebhookDelivery,
)
from workflows.permissions import ACTION_LABELS, ROLES, has_permission
from workflows.states import (
    RUN_TERMINAL,
    STEP_TERMINAL,
    FlowHistoryKind,
    RunStatus,
    StepStatus,
)

MATRIX_MAX_RUNS = 200
MATRIX_MIN_RUNS = 5


def _ms(start, end) -> int | None:
    if start and end:
        return int((end - start).total_seconds() * 1000)
    return None


def run_matrix(*, flow: Flow, limit: int = 50, before: int | None = None,
               status: str | None = None, cell_budget: int | None = None) -> dict[str, Any]:
    """Steps down, runs across (newest first): a constant three queries whatever the history.

    Step rows are the union of the steps of the versions shown, in the order of the newest
    version, then steps only older versions had; a step a run's version lacks has no cell.
    `cell_budget` (the admin's page) lowers `limit` so that steps x runs stays near it (at
    least MATRIX_MIN_RUNS runs): a 500-step flow shows fewer runs per page, not 25,000 cells.
    The runs actually shown per page are returned as `limit`.
    """
    limit = max(1, min(int(limit), MATRIX_MAX_RUNS))
    runs_qs = Run.objects.filter(flow=flow)
    if status:
        runs_qs = runs_qs.filter(status=status)
    if before:
        runs_qs = runs_qs.filter(id__lt=before)
    runs = list(
        runs_qs.order_by("-id").values(
            "id", "status", "version_id", "trigger_kind", "created_at", "started_at",
            "finished_at", "retry_of_id", "replay_of_id", "is_rehearsal",
        )[: limit + 1]
    )
    has_more = len(runs) > limit
    runs = runs[:limit]
    version_ids = {r["version_id"] for r in runs}
    if flow.live_version_id:
        version_ids.add(flow.live_version_id)
    versions = {
        v["id"]: v for v in FlowVersion.objects.filter(id__in=version_ids).values(
            "id", "number", "definition")
    }
    steps: list[dict[str, Any]] = []
    seen: set[str] = set()
    ordered_versions = sorted(versions.values(), key=lambda v: -(v["number"] or 10**9))
    for version in ordered_versions:
        for step in version["definition"]["steps"]:
            if step["key"] not in seen:
                seen.add(step["key"])
                steps.append({"key": step["key"], "type": step["type"]})
    if cell_budget and steps and limit * len(steps) > cell_budget:
        limit = max(MATRIX_MIN_RUNS, cell_budget // len(steps))
        has_more = has_more or len(runs) > limit
        runs = runs[:limit]
    cells: dict[int, dict[str, Any]] = {r["id"]: {} for r in runs}
    for s in StepRun.objects.filter(run_id__in=list(cells)).order_by().values(
        "id", "run_id", "key", "status", "attempt_count", "started_at", "finished_at",
        "reused_from_id", "agent_report",
    ):
        cells[s["run_id"]][s["key"]] = {
            "step_run_id": s["id"], "status": s["status"], "attempts": s["attempt_count"],
            "duration_ms": _ms(s["started_at"], s["finished_at"]),
            "reused": s["reused_from_id"] is not None,
            # a waiting remote agent's {done, total} (its heartbeat's)
            "progress": (s["agent_report"] or {}).get("progress")
            if s["status"] == StepStatus.WAITING else None,
        }
    _matrix_instances(cells, versions)
    return {
        "steps": steps,
        "runs": [
            {
                "id": r["id"], "status": r["status"],
                "version": versions[r["version_id"]]["number"] if r["version_id"] in versions
                else None,
                "rehearsal": r["is_rehearsal"], "trigger_kind": r["trigger_kind"],
                "created_at": r["created_at"], "started_at": r["started_at"],
                "finished_at": r["finished_at"],
                "duration_ms": _ms(r["started_at"], r["finished_at"]),
                "retry_of": r["retry_of_id"], "replay_of": r["replay_of_id"],
                "cells": cells[r["id"]],
            }
            for r in runs
        ],
        "next_before": runs[-1]["id"] if has_more and runs else None,
        "limit": limit,
    }


def _matrix_instances(cells: dict[int, dict[str, Any]], versions: dict[int, Any]) -> None:
    """Add `instances` ({total, by_status, done, worst}) to the cells of for_each steps: one
    GROUP BY for the page, and none when no version shown fans out."""
    fan_keys = {s.get("key") for v in versions.values()
                for s in (v["definition"] or {}).get("steps", []) if s.get("for_each")}
    if not fan_keys:
        return
    counts = instance_counts(list(cells))
    for run_cells in cells.values():
        for key, cell in run_cells.items():
            found = counts.get(cell["step_run_id"]) if key in fan_keys else None
            if found:
                by_status = found["by_status"]
                cell["instances"] = {
                    **found, "worst": worst_status(by_status),
                    "done": sum(by_status.get(s, 0) for s in INSTANCE_ENDED)}


def flow_status_counts(*, flow: Flow) -> dict[str, int]:
    counts = dict(
        Run.objects.filter(flow=flow).values_list("status").annotate(n=Count("id")).order_by()
    )
    return {status: counts.get(status, 0) for status in RunStatus.values}


def run_events(*, run: Run, after: int | None = None) -> QuerySet[Event]:
    """The run's events, oldest first; only those after event id `after` when given."""
    events = Event.objects.filter(run=run).select_related("step_run").order_by("id")
    return events if after is None else events.filter(pk__gt=after)


def subflow_children(*, steps: list[StepRun],
                     counted: bool = False) -> dict[int, Any]:
    """{step run id: its newest child run} for the `flow` steps among `steps` (a reused one:
    the child of the step run it reuses); for a `for_each` flow step that has started, the
    list of its instances' child runs in item order (None for an instance that has not
    started its child yet; a reused instance's is the child it reuses) — with `counted`,
    `{"count": N}` of its children instead (a page that shows the count reads no 10,000 ids).
    Two queries, and none for a run without subflows."""
    flow_steps = [s for s in steps if s.type == "flow"]
    if not flow_steps:
        return {}
    source = {s.pk: s.reused_from_id or s.pk for s in flow_steps}
    newest: dict[int, Any] = {}
    fanned: dict[int, Any] = {}
    instances = StepInstance.objects.filter(step_run_id__in=set(source.values()))
    if counted:
        for step_run_id, children in (instances.values("step_run_id")
                                      .annotate(n=Count("child_run_id"))
                                      .values_list("step_run_id", "n")):
            fanned[step_run_id] = {"count": children}
    for step_run_id, child_id in ([] if counted else instances.order_by("step_run_id", "index")
                                  .values_list("step_run_id", "child_run_id")):
        fanned.setdefault(step_run_id, []).append(child_id)
    for parent_step_id, child_id in (Run.objects.filter(parent_step_id__in=set(source.values())
                                                        - set(fanned))
                                     .order_by("pk").values_list("parent_step_id", "pk")):
        newest[parent_step_id] = child_id
    newest.update(fanned)
    return {pk: newest[origin] for pk, origin in source.items() if origin in newest}


def subflow_parent(*, run: Run) -> dict[str, Any] | None:
    """`{run, step, instance}`: the run and step key of the `flow` step that started `run`,
    and the index of the instance it resolves when that step has `for_each` (else None); or
    None for a run that is not a subflow."""
    if run.parent_step_id is None:
        return None
    parent = run.parent_step  # select_related by the API's runs_queryset; else one query
    instance = (run.trigger_payload or {}).get("parent_instance") if isinstance(
        run.trigger_payload, dict) else None
    return {"run": parent.run_id, "step": parent.key,
            "instance": instance if isinstance(instance, int) else None}


def run_steps(*, run: Run) -> QuerySet[StepRun]:
    return StepRun.objects.filter(run=run).order_by("position")


def step_logs(*, step_run: StepRun, after: int = 0, limit: int = 500) -> list[LogChunk]:
    return list(LogChunk.objects.filter(step_run=step_run, instance=None, seq__gt=after).order_by("seq")[:limit])


def step_logs_before(*, step_run: StepRun, before: int, limit: int = 200) -> list[LogChunk]:
    """The `limit` chunks just before sequence number `before`, oldest first."""
    chunks = list(LogChunk.objects.filter(step_run=step_run, instance=None, seq__lt=before)
                  .order_by("-seq")[:limit])
    chunks.reverse()
    return chunks


def step_logs_tail(*, step_run: StepRun, limit: int = 200) -> list[LogChunk]:
    """The last `limit` chunks, oldest first (a page shows the tail, earlier on demand)."""
    chunks = list(LogChunk.objects.filter(step_run=step_run, instance=None).order_by("-seq")[:limit])
    chunks.reverse()
    return chunks


def run_last_good(*, run: Run) -> Run | None:
    """The newest completed run of the same flow before this one."""
    return (Run.objects.filter(flow_id=run.flow_id, status=RunStatus.COMPLETED, id__lt=run.pk)
            .order_by("-id").first())


def run_compare(*, run: Run, other: Run) -> dict[str, Any]:
    """What differs between two runs: version, input, and per step status, output, duration."""

    mine = {s.key: s for s in run_steps(run=run)}
    theirs = {s.key: s for s in run_steps(run=other)}
    keys = list(mine) + [k for k in theirs if k not in mine]
    step_changes = []
    for key in keys:
        a, b = theirs.get(key), mine.get(key)
        entry: dict[str, Any] = {"key": key}
        if a is None or b is None:
            entry["only_in"] = "run" if a is None else "other"
        else:
            if a.status != b.status:
                entry["status"] = {"from": a.status, "to": b.status}
            if a.output != b.output:
                entry["output"] = {"from": a.output, "to": b.output}
            if a.error != b.error:
                entry["error"] = {"from": a.error, "to": b.error}
            entry["duration_ms"] = {"from": a.duration_ms, "to": b.duration_ms}
        step_changes.append(entry)
    input_keys = sorted(set(run.input) | set(other.input))
    return {
        "run": run.pk,
        "other": other.pk,
        "version": {"from": other.version.number, "to": run.version.number,
                    "changed": other.version_id != run.version_id,
                    "definition": definition_diff(other.definition, run.definition)},
        "input": {k: {"from": other.input.get(k), "to": run.input.get(k)}
                  for k in input_keys if other.input.get(k) != run.input.get(k)},
        "steps": step_changes,
    }


# --- what the admin pages read ---------------------------------------------------------------


def flow_get(*, flow_id: int) -> Flow | None:
    """A flow with its live release joined (None when there is no such flow)."""
    return Flow.objects.select_related("live_version").filter(pk=flow_id).first()


def flow_draft(*, flow: Flow) -> FlowVersion | None:
    return FlowVersion.objects.filter(flow=flow, number__isnull=True).first()


def flow_releases(*, flow: Flow, limit: int) -> list[FlowVersion]:
    """The newest `limit` releases, newest first, without their definitions."""
    return list(
        FlowVersion.objects.filter(flow=flow, number__isnull=False).defer("definition")
        .select_related("created_by").order_by("-number")[:limit]
    )


def flow_schedule_states(*, flow: Flow) -> dict[int, ScheduleState]:
    """The flow's schedule states by trigger index."""
    return {s.trigger_index: s for s in ScheduleState.objects.filter(flow=flow)}


def run_matrix_newer_before(*, flow: Flow, newest_shown: int, status: str | None,
                            page: int) -> int | None:
    """For a matrix page of older runs: the `before` id of the page just newer than the one
    whose newest run is `newest_shown`, or None when that page is the first one."""
    newer = Run.objects.filter(flow=flow, id__gt=newest_shown)
    if status:
        newer = newer.filter(status=status)
    beyond = list(newer.order_by("id").values_list("id", flat=True)[page:page + 1])
    return beyond[0] if beyond else None


def run_get(*, run_id: int) -> Run | None:
    """A run with its flow, pinned version and webhook delivery (not its body) joined (None
    when there is no such run)."""
    return Run.objects.select_related("flow", "version", "trigger_delivery").defer(
        "trigger_delivery__payload", "trigger_delivery__headers").filter(pk=run_id).first()


def run_in_flow(*, run_id: int, flow_id: int) -> Run | None:
    return Run.objects.filter(pk=run_id, flow_id=flow_id).first()


def run_with_version(*, run_id: int) -> Run:
    return Run.objects.select_related("version").get(pk=run_id)


def run_last_event_id(*, run: Run) -> int | None:
    return Event.objects.filter(run=run).order_by("-id").values_list("id", flat=True).first()


CHAIN_FIELDS = ("id", "status", "retry_of_id", "replay_of_id", "rerun_of_id", "created_at",
                "trigger_kind")
CHAIN_LINKS = (("retry", "retry_of_id"), ("replay", "replay_of_id"), ("rerun", "rerun_of_id"))


def chain_link(row: Any) -> tuple[str, int | None]:
    """How a run (a dict of CHAIN_FIELDS, or a Run) was made from another: (link, source id)."""
    for link, attr in CHAIN_LINKS:
        source = row[attr] if isinstance(row, dict) else getattr(row, attr)
        if source:
            return link, source
    return "", None


def run_chain(*, run: Run, max_hops: int) -> tuple[list[dict], list[dict]]:
    """The runs this one retries, replays or reruns (oldest first, each with the `link` that
    made the next: "retry", "replay" or "rerun") and the runs made from it that way (breadth
    first, with `link` and `of`, the run they come from). One query per generation, at most
    `max_hops` up and `max_hops * 4` runs down."""
    ancestors: list[dict] = []
    link, parent_id = chain_link(run)
    while parent_id and len(ancestors) < max_hops:
        parent = Run.objects.filter(pk=parent_id).values(*CHAIN_FIELDS).first()
        if parent is None:
            break
        ancestors.append({**parent, "link": link})
        link, parent_id = chain_link(parent)
    ancestors.reverse()
    descendants: list[dict] = []
    frontier = [run.pk]
    while frontier and len(descendants) < max_hops * 4:
        children = list(
            Run.objects.filter(Q(retry_of_id__in=frontier) | Q(replay_of_id__in=frontier)
                               | Q(rerun_of_id__in=frontier))
            .order_by("id").values(*CHAIN_FIELDS)[: max_hops * 4]
        )
        for child in children:
            child["link"], child["of"] = chain_link(child)
        descendants.extend(children)
        frontier = [c["id"] for c in children]
    return ancestors, descendants


def step_get(*, run: Run, key: str) -> StepRun | None:
    return StepRun.objects.filter(run=run, key=key).first()


def step_reused_source(*, step_run: StepRun) -> StepRun | None:
    """The step run whose output `step_run` reused (a retry's earlier steps), with its run's
    id and key loaded: the panel links to that step of that run."""
    if step_run.reused_from_id is None:
        return None
    return StepRun.objects.filter(pk=step_run.reused_from_id).only("id", "run_id", "key").first()


def step_attempts(*, step_run: StepRun) -> list[Attempt]:
    return list(Attempt.objects.filter(step_run=step_run, instance=None).order_by("number"))


def step_attempt_numbers(*, step_run: StepRun) -> dict[int, int]:
    """Attempt number by attempt id, to mark where each attempt's logs begin."""
    return dict(Attempt.objects.filter(step_run=step_run, instance=None).values_list("id", "number"))


# --- release history, diffs and promotion (issue 13) --------------------------------------------


def flow_history(*, flow: Flow, limit: int, numbers: list[int]
                 ) -> tuple[list[FlowHistory], dict[int, FlowHistory]]:
    """The newest `limit` history entries (newest first) and, for each release number in
    `numbers`, the last entry that made it live (promoted or rolled back). One query: the
    union of both sets, ordered newest first; its first `limit` rows are the newest `limit`
    entries, since every one of those is in it."""
    newest = FlowHistory.objects.filter(flow=flow).order_by("-id").values("id")[:limit]
    rows = list(FlowHistory.objects.filter(flow=flow).filter(
        Q(pk__in=newest) | Q(to_version__in=numbers,
                             kind__in=[FlowHistoryKind.PROMOTED, FlowHistoryKind.ROLLED_BACK])
    ).order_by("-id"))
    went_live: dict[int, FlowHistory] = {}
    for entry in rows:  # newest first: the first one seen per number is the last to go live
        if entry.kind in (FlowHistoryKind.PROMOTED, FlowHistoryKind.ROLLED_BACK):
            went_live.setdefault(entry.to_version, entry)
    return rows[:limit], {n: e for n, e in went_live.items() if n in numbers}


def flow_versions(*, flow: Flow) -> list[FlowVersion]:
    """The draft and every release (newest first), without definitions: the choices of the
    diff page."""
    return list(FlowVersion.objects.filter(flow=flow).defer("definition")
                .order_by("-number"))


def flow_version_by_label(*, flow: Flow, label: str) -> FlowVersion | None:
    """`draft`, `live`, `3` or `v3` (None when there is no such version)."""
    text = (label or "").strip().lower()
    if text == "draft":
        return FlowVersion.objects.filter(flow=flow, number__isnull=True).first()
    if text == "live":
        return FlowVersion.objects.filter(pk=flow.live_version_id).first() \
            if flow.live_version_id else None
    digits = text.removeprefix("v")
    if not digits.isascii() or not digits.isdigit() or len(digits) > 9:
        return None
    return FlowVersion.objects.filter(flow=flow, number=int(digits)).first()


def flow_release_facts(*, flow: Flow) -> dict[str, Any]:
    """What a promotion page says beside the diff (issue 24): `previous_live`, the release that
    was live before the current one (from the last promotion or rollback in the history), and
    `last_good`, `{run, version}` of the newest completed run (not a rehearsal). Two queries."""
    entry = (FlowHistory.objects.filter(
        flow=flow, kind__in=[FlowHistoryKind.PROMOTED, FlowHistoryKind.ROLLED_BACK])
        .order_by("-id").values("from_version", "at").first())
    good = (Run.objects.filter(flow=flow, status=RunStatus.COMPLETED, is_rehearsal=False)
            .order_by("-id").values("id", "version__number", "finished_at").first())
    return {
        "previous_live": entry["from_version"] if entry else None,
        "live_since": entry["at"] if entry else None,
        "last_good": {"run": good["id"], "version": good["version__number"],
                      "finished_at": good["finished_at"]} if good else None,
    }


def flow_runs_in_flight_elsewhere(*, flow: Flow, version: FlowVersion) -> int:
    """How many of the flow's runs are still in flight on a release other than `version`
    (rehearsals excluded): promoting `version` leaves them pinned where they are."""
    return (Run.objects.filter(flow=flow, is_rehearsal=False)
            .exclude(status__in=list(RUN_TERMINAL)).exclude(version=version).count())


def flow_latest_run_statuses(*, flow: Flow) -> tuple[int | None, dict[str, str]]:
    """The newest run of `flow` and its step statuses by key (the flow page's graph colours):
    one query; (None, {}) when the flow has no run."""
    newest = Run.objects.filter(flow=flow).order_by("-id").values("id")[:1]
    rows = list(StepRun.objects.filter(run_id=Subquery(newest))
                .values_list("run_id", "key", "status"))
    if not rows:  # no run (every run has its step runs)
        return None, {}
    return rows[0][0], {key: status for _, key, status in rows}


def step_log_resources(*, step_run: StepRun) -> dict[int, Resource]:
    """The whole-log resource of each attempt that has finished its log, by attempt number
    (one query, by primary key: a log resource's id derives from the step run and the
    attempt number). An attempt still running has none yet; its window is in LogChunks."""
    ids = {log_resource_id(step_run_id=step_run.pk, attempt_number=number): number
           for number in range(1, step_run.attempt_count + 1)}
    if not ids:
        return {}
    rows = Resource.objects.filter(pk__in=ids).only("id", "size", "name", "content_type")
    return {ids[row.pk]: row for row in rows}


def step_log_latest(*, step_run: StepRun) -> Resource | None:
    """The whole log of the step run's latest attempt that has one."""
    logs = step_log_resources(step_run=step_run)
    return logs[max(logs)] if logs else None


def step_callback_url(*, step_run: StepRun) -> str | None:
    """The callback URL of a wait step that can still be resumed (None otherwise). Whoever
    holds it can complete the wait: edges show it to operators only."""
    if step_run.type != "wait" or not step_run.callback_nonce \
            or step_run.callback_received_at is not None or step_run.status in STEP_TERMINAL:
        return None
    return engine.callback_url(step_run.callback_nonce)


def user_profile(*, user: Any) -> dict[str, Any]:
    """Who `user` is and what they may do (`GET /me`, `wf auth status`): their role groups
    (plus `admin` for a superuser) and the workflow permissions those give. Two queries."""
    roles = sorted(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    if user.is_superuser:
        roles.append("admin")
    return {
        "username": user.get_username(),
        "email": user.email or "",
        "name": user.get_full_name(),
        "is_superuser": user.is_superuser,
        "roles": roles,
        "permissions": sorted(perm for perm in ACTION_LABELS if has_permission(user, perm)),
    }


def flow_deliveries(*, flow: Flow, outcome: str | None = None) -> QuerySet[WebhookDelivery]:
    """The flow's webhook deliveries, newest first (index delivery_flow_newest /
    delivery_flow_outcome); without the stored bodies, which lists never show."""
    deliveries = WebhookDelivery.objects.filter(flow=flow).defer("payload", "headers")
    if outcome:
        deliveries = deliveries.filter(outcome=outcome)
    return deliveries.order_by("-id")


def flow_delivery(*, flow: Flow, delivery_id: int) -> WebhookDelivery:
    """One delivery of the flow; NotFound otherwise (another flow's delivery too)."""
    delivery = WebhookDelivery.objects.filter(flow=flow, pk=delivery_id).first() \
        if 0 < delivery_id < 2**63 else None
    if delivery is None:
        raise NotFound(f"no delivery {delivery_id} of flow {flow.slug}")
    return delivery


def flow_agent_costs(*, flow: Flow, limit: int = 50) -> list[dict[str, Any]]:
    """Cost reported by remote agents per run, for the flow's last `limit` runs (oldest
    first, for a chart): [{run, cost_usd}]. One aggregate query; runs without a report cost
    0."""
    cost = Cast(KT("agent_report__usage__cost_usd"), FloatField())
    per_run = (StepRun.objects.order_by().filter(run=OuterRef("pk"))
               .filter(agent_report__usage__has_key="cost_usd")
               .values("run").annotate(total=Sum(cost)).values("total"))
    rows = list(Run.objects.filter(flow=flow).order_by("-id")
                .annotate(total=Subquery(per_run)).values_list("id", "total")[:limit])
    return [{"run": run_id, "cost_usd": round(float(total or 0), 6)}
            for run_id, total in reversed(rows)]


def usage_total(steps) -> dict[str, float] | None:
    """A run's usage: its steps' reported usage summed (None when no step reported any)."""
    total: dict[str, float] = {}
    for step in steps:
        for key, value in (step.agent_usage or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    if "cost_usd" in total:
        total["cost_usd"] = round(total["cost_usd"], 6)
    return total or None
