"""/runs: search across flows; a run, its events, steps and logs; cancel, retry, replay, rerun
on the live version, compare, explain."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Query, Router, Status

from workflows.api.documents import (
    attempt_document,
    event_document,
    instance_document,
    log_document,
    log_ref_fields,
    run_document,
    step_detail_document,
)
from workflows.api.errors import invalid
from workflows.api.lookups import can_view_runs, get_run, get_step
from workflows.api.openapi import errors
from workflows.api.pagination import clamp_limit, keyset_page
from workflows.api.params import CompareTarget, Cursor, Limit, RunId, StepKey
from workflows.api.schemas import (
    CancelIn,
    CompareOut,
    EventPage,
    ExplainOut,
    InstanceDetailOut,
    InstancePage,
    LogPage,
    RerunIn,
    RetryIn,
    RunOut,
    RunPage,
    StepDetailOut,
)
from workflows.document_selectors import (
    RUN_PREFETCH,
    runs_queryset,
    step_attempt_numbers,
    step_attempts,
)
from workflows.errors import NotFound
from workflows.instance_selectors import (
    instance_attempts,
    instance_counts_of,
    instance_get,
    instance_logs,
    instances_query,
    run_has_fan_out,
)
from workflows.investigation import run_baseline, run_explain, runs_search, search_matches
from workflows.selectors import (
    run_compare,
    run_events,
    step_log_latest,
    step_log_resources,
    step_logs,
)
from workflows.services.runs import run_cancel, run_replay, run_rerun, run_retry
from workflows.states import ErrorKind, RunStatus, StepStatus

router = Router(tags=["runs"])

LOG_DEFAULT_LIMIT = 500
LOG_MAX_LIMIT = 1000


FLOW_FILTER = Query(None, max_length=100, description="A flow slug.")
COMPARE_TO = Query(..., max_length=30)
FINISHED_AFTER = Query(None, description="Finished at or after this time (ISO 8601).")
FINISHED_BEFORE = Query(None, description="Finished before this time (ISO 8601).")


@router.get("", response={200: RunPage, **errors()},
            summary="Search runs across flows, newest first", operation_id="runs_across_flows")
def runs_across_flows(
    request: HttpRequest,
    status: RunStatus | None = None,
    flow: str | None = FLOW_FILTER,
    finished_after: datetime | None = FINISHED_AFTER,
    finished_before: datetime | None = FINISHED_BEFORE,
    error_kind: ErrorKind | None = None,
    q: str | None = Query(None, max_length=500, description=(
        "A run id (`12`, `#12`; a number that is a run's id finds that run, not text), "
        "`A<approval id>`, text in the input or error, an idempotency or webhook delivery key, "
        "an approver's username, a callback URL or token, or a flow slug. Each item then has "
        "`match`: the field that matched and a snippet.")),
    cursor: Cursor = None,
    limit: Limit = 50,
):
    runs = runs_search(
        actor=request.auth, status=status, flow=flow, finished_after=finished_after,
        finished_before=finished_before, error_kind=error_kind, q=q,
    ).prefetch_related(*RUN_PREFETCH)
    page, next_cursor = keyset_page(runs, cursor=cursor, limit=limit)
    matches = search_matches(list(page), q) if q else {}
    return {"items": [{**run_document(r), "match": matches.get(r.pk)} for r in page],
            "next_cursor": next_cursor}


@router.get("/{int:run_id}", response={200: RunOut, **errors()}, summary="Get a run",
            operation_id="runs_get")
def runs_get(request: HttpRequest, run_id: RunId):
    can_view_runs(request.auth)
    return run_document(get_run(run_id))


@router.get("/{int:run_id}/events", response={200: EventPage, **errors()}, by_alias=True,
            summary="Every transition of the run, oldest first", operation_id="runs_events")
def runs_events(request: HttpRequest, run_id: RunId, cursor: Cursor = None, limit: Limit = 50,
                after: int | None = Query(None, ge=0, le=2**63 - 1,
                                          description="Only events whose id is greater (for "
                                                      "following a run: the last id seen)")):
    can_view_runs(request.auth)
    run = get_run(run_id, with_steps=False)
    events, next_cursor = keyset_page(run_events(run=run, after=after), cursor=cursor,
                                      limit=limit, descending=False)
    return {"items": [event_document(e) for e in events], "next_cursor": next_cursor}


@router.get("/{int:run_id}/steps/{key}", response={200: StepDetailOut, **errors()},
            summary="One step run with its attempts", operation_id="runs_step")
def runs_step(request: HttpRequest, run_id: RunId, key: StepKey):
    can_view_runs(request.auth)
    run = get_run(run_id, with_steps=False)
    step = get_step(run, key)
    attempts = step_attempts(step)
    counts = instance_counts_of(step) if run_has_fan_out(run) else None
    return step_detail_document(step, attempts, step_log_resources(step_run=step),
                                instances=counts)


@router.get("/{int:run_id}/steps/{key}/instances", response={200: InstancePage, **errors(422)},
            summary="A for_each step's instances, in item order")
def runs_step_instances(request: HttpRequest, run_id: RunId, key: StepKey,
                        status: StepStatus | None = None, cursor: str | None = None,
                        limit: int = 50):
    """Keyset pages on the item index (one query a page, whatever the number of instances);
    `status` keeps the instances of one status."""
    can_view_runs(request.auth)
    step = get_step(get_run(run_id, with_steps=False), key)
    rows, next_cursor = keyset_page(instances_query(step, status=status), cursor=cursor,
                                    limit=limit, key="index", descending=False)
    return {"items": [instance_document(i) for i in rows], "next_cursor": next_cursor}


@router.get("/{int:run_id}/steps/{key}/instances/{int:index}",
            response={200: InstanceDetailOut, **errors()},
            summary="One instance of a for_each step, with its attempts and log",
            operation_id="runs_step_instance")
def runs_step_instance(request: HttpRequest, run_id: RunId, key: StepKey, index: int):
    can_view_runs(request.auth)
    step = get_step(get_run(run_id, with_steps=False), key)
    instance = instance_get(step, index) if 0 <= index < 2**31 else None
    if instance is None:
        raise NotFound(f"step {key!r} of run {run_id} has no instance {index}")
    attempts = instance_attempts(instance)
    numbers = {a.pk: a.number for a in attempts}
    return {**instance_document(instance),
            "attempt_list": [attempt_document(a) for a in attempts],
            "logs": [log_document(c, numbers) for c in instance_logs(instance)]}


@router.get("/{int:run_id}/steps/{key}/logs", response={200: LogPage, **errors()},
            summary="Log chunks after seq N, oldest first", operation_id="runs_step_logs")
def runs_step_logs(request: HttpRequest, run_id: RunId, key: StepKey,
                   after: int = Query(0, ge=0, le=2**31 - 1), limit: int = LOG_DEFAULT_LIMIT):
    can_view_runs(request.auth)
    step = get_step(get_run(run_id, with_steps=False), key)
    size = clamp_limit(limit, default=LOG_DEFAULT_LIMIT, maximum=LOG_MAX_LIMIT)
    chunks = step_logs(step_run=step, after=after, limit=size + 1)
    more = len(chunks) > size
    chunks = chunks[:size]
    numbers = step_attempt_numbers(step)
    last_seq = chunks[-1].seq if chunks else after
    return {
        "items": [log_document(c, numbers) for c in chunks],
        "next_cursor": str(last_seq) if more else None,
        "last_seq": last_seq,
        "step_status": step.status,
        **log_ref_fields(step_log_latest(step_run=step)),
    }


@router.post("/{int:run_id}/cancel", response={200: RunOut, **errors(409)},
             summary="Cancel the run and its unfinished steps", operation_id="runs_cancel")
def runs_cancel(request: HttpRequest, run_id: RunId, payload: CancelIn | None = None):
    run = get_run(run_id)
    run_cancel(run=run, actor=request.auth, reason=payload.reason if payload else "")
    return run_document(get_run(run_id))


@router.post("/{int:run_id}/retry", response={201: RunOut, **errors(409)},
             summary="A new run that reuses completed steps and starts at the failed one",
             operation_id="runs_retry")
def runs_retry(request: HttpRequest, run_id: RunId, payload: RetryIn | None = None):
    run = get_run(run_id)
    new = run_retry(run=run, actor=request.auth,
                    from_step=payload.from_step if payload else None)
    return Status(201, run_document(runs_queryset().get(pk=new.pk)))


@router.post("/{int:run_id}/replay", response={201: RunOut, **errors(409)},
             summary="A new run from the start, same version and input",
             operation_id="runs_replay")
def runs_replay(request: HttpRequest, run_id: RunId):
    run = get_run(run_id)
    new = run_replay(run=run, actor=request.auth)
    return Status(201, run_document(runs_queryset().get(pk=new.pk)))


@router.post("/{int:run_id}/rerun", response={201: RunOut, **errors(409, 422)},
             summary="A new run of the same input on the flow's live version (or on `version`)",
             operation_id="runs_rerun")
def runs_rerun(request: HttpRequest, run_id: RunId, payload: RerunIn | None = None):
    run = get_run(run_id, with_steps=False)
    new = run_rerun(run=run, actor=request.auth,
                    version=payload.version if payload is not None else None)
    return Status(201, run_document(runs_queryset().get(pk=new.pk)))


@router.get("/{int:run_id}/explain", response={200: ExplainOut, **errors(409)}, by_alias=True,
            summary="Why the run's failing step broke: the last good and first bad run",
            operation_id="runs_explain")
def runs_explain(request: HttpRequest, run_id: RunId):
    can_view_runs(request.auth)
    return run_explain(run=get_run(run_id, with_steps=False))


@router.get("/{int:run_id}/compare", response={200: CompareOut, **errors()},
            summary="Differences with another run (an id, or last_good)",
            operation_id="runs_compare")
def runs_compare(request: HttpRequest, run_id: RunId,
                 to: CompareTarget = COMPARE_TO):
    can_view_runs(request.auth)
    run = get_run(run_id)
    target = to.strip()
    if target == "last_good":  # the explanation's baseline for a failed run (run_baseline)
        other = run_baseline(run=run)
        if other is None:
            raise NotFound(f"no completed run of flow {run.flow.slug} before run {run.pk}")
    elif target.isascii() and target.isdigit():
        other = get_run(int(target))
    else:
        raise invalid("query.to", "must be a run id or last_good")
    return run_compare(run=run, other=other)

