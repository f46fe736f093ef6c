"""Commands on runs: start, cancel, retry, replay, rerun on the live version (DESIGN.md §5). They check permissions and
build the runs; admission, cancellation and moving runs on are the engine's (`workflows.engine`)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ops import tracing
from workflows import engine
from workflows.definitions import validate_run_input
from workflows.definitions.base import promotion_approval
from workflows.errors import Conflict, NotFound, NotPermitted
from workflows.investigation.plans import retry_reuse
from workflows.models import ActorKind, Flow, FlowVersion, Run, StepRun, TriggerKind
from workflows.permissions import OPERATE_RUN, actor_name, require_permission
from workflows.references import ReferenceUnresolved, ResourceScope, resolve
from workflows.states import RUN_TERMINAL, EventKind, RunStatus, StepStatus

TRIGGER_ACTOR_KIND = {
    TriggerKind.MANUAL: ActorKind.USER,
    TriggerKind.RETRY: ActorKind.USER,
    TriggerKind.REPLAY: ActorKind.USER,
    TriggerKind.RERUN: ActorKind.USER,
    TriggerKind.SCHEDULE: ActorKind.SCHEDULE,
    TriggerKind.WEBHOOK: ActorKind.WEBHOOK,
}


def run_start(
    *, flow: Flow, input: dict[str, Any] | None = None, actor=None,
    trigger_kind: str = TriggerKind.MANUAL, trigger_payload: dict[str, Any] | None = None,
    idempotency_key: str | None = None, draft: bool = False, trigger_delivery=None,
    key_is_new: bool = False, traceparent: str | None = None, tracestate: str | None = None,
    parent_step: StepRun | None = None,
) -> tuple[Run, bool]:
    """Start a run of the flow's live release (or of the draft, a rehearsal).

    Validates the input against the declared inputs (InputInvalid), pins the version, creates
    every step run as not_started, mints wait callback tokens, applies the concurrency policy and
    queues the first ready steps; their tasks are enqueued when the transaction commits.
    Returns (run, created); a repeated idempotency key returns the existing run, created=False.
    `trigger_delivery` is the webhook delivery (WebhookDelivery) the run starts from;
    `key_is_new` skips the look-up of the idempotency key when the caller has just claimed it
    (a race or an older run with the key still ends on the unique constraint: created=False).
    With tracing on, the run's trace is the child of `traceparent` (a caller's W3C header; a
    malformed one is ignored and the run starts a fresh trace), and keeps the caller's
    `tracestate` (a malformed one is ignored) to send on with it.
    `parent_step`: the `flow` step run this run is a subflow of (services.subflows).
    """
    require_permission(actor, OPERATE_RUN)
    if idempotency_key and not key_is_new:
        existing = Run.objects.filter(flow=flow, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    if draft:
        version = FlowVersion.objects.get(flow=flow, number__isnull=True)
        _rehearsal_allowed(flow, version.definition)
    else:
        if flow.live_version_id is None:
            raise Conflict(f"flow {flow.slug} has no live release; release and promote one, "
                           "or start a rehearsal run on the draft")
        version = engine.version_get(flow.live_version_id)  # released: cached per process
    definition = version.definition
    full_input = validate_run_input(definition, input if input is not None else {})
    try:
        with transaction.atomic(), engine.events_batched():
            run = _run_create(
                flow=flow, version=version, definition=definition, input=full_input,
                actor=actor, draft=draft,
                trigger_kind=trigger_kind, trigger_payload=trigger_payload or {},
                idempotency_key=idempotency_key or None, trigger_delivery=trigger_delivery,
                traceparent=traceparent, tracestate=tracestate, parent_step=parent_step,
            )
            engine.run_admit(run, steps=run.created_steps)
    except IntegrityError:
        if idempotency_key:
            existing = Run.objects.filter(flow=flow, idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing, False
        raise
    return run, True


class RehearsalNotAllowed(NotPermitted):
    """A flow under the two-person rule runs only what a second person approved: no rehearsal
    (draft) run, whoever asks."""

    code = "rehearsal_not_allowed"


def _rehearsal_allowed(flow: Flow, *definitions: dict[str, Any]) -> None:
    """Refuse a rehearsal run (a start on the draft, or a retry or replay of one) of a flow whose
    live release or draft requires promotion approval (`promotion: {requires_approval: true}`),
    or whose pinned draft copy did. The draft is the builders' to edit and a rehearsal runs it
    with the flow's connections, so a rehearsal would run code no second person approved; the
    live release's rule counts too, so a draft that drops the rule cannot lift it."""
    live = engine.version_get(flow.live_version_id) if flow.live_version_id else None
    for definition in (live.definition if live is not None else None, *definitions):
        if promotion_approval(definition) is not None:
            raise RehearsalNotAllowed(
                f"flow {flow.slug} requires approval to promote (two-person rule), so its draft "
                "does not run: release it and have the release approved, then run it")


def _run_create(*, flow: Flow, version: FlowVersion, definition: dict[str, Any],
                input: dict[str, Any], actor, draft: bool, trigger_kind: str,
                trigger_payload: dict[str, Any], idempotency_key: str | None = None,
                retry_of: Run | None = None, replay_of: Run | None = None,
                rerun_of: Run | None = None,
                reuse: dict[str, StepRun] | None = None, trigger_delivery=None,
                parent_step: StepRun | None = None,
                traceparent: str | None = None, tracestate: str | None = None) -> Run:
    concurrency_key = _concurrency_key(definition, input)
    # No concurrency limit: nothing to wait for, so the run is written queued (its run_created
    # and run_queued events both below); `engine.run_admit` then only queues its first steps.
    admitted = concurrency_key is None
    run = Run.objects.create(
        flow=flow, version=version, is_rehearsal=draft, input=input,
        rehearsal_definition=definition if draft else None,
        trigger_kind=trigger_kind, trigger_actor=actor_name(actor) or trigger_kind,
        trigger_payload=trigger_payload, idempotency_key=idempotency_key,
        concurrency_key=concurrency_key, retry_of=retry_of,
        replay_of=replay_of, rerun_of=rerun_of, created_by=actor,
        trigger_delivery=trigger_delivery, parent_step=parent_step,
        status=RunStatus.QUEUED if admitted else RunStatus.CREATED,
        queued_at=timezone.now() if admitted else None,
        **tracing.run_ids(traceparent, tracestate),
    )
    reuse = reuse or {}
    now = timezone.now()
    step_runs = []
    for position, step in enumerate(definition["steps"]):
        nonce, token_hash = engine.callback_mint() if step["type"] == "wait" else ("", None)
        original = reuse.get(step["key"])
        step_runs.append(StepRun(
            run=run, key=step["key"], type=step["type"], position=position, needs=step["needs"],
            callback_nonce=nonce, callback_token_hash=token_hash,
            callback_issued_at=now if token_hash else None,
            status=StepStatus.COMPLETED if original else StepStatus.NOT_STARTED,
            output=original.output if original else None,
            reused_from=original.reused_from or original if original else None,
            started_at=original.started_at if original else None,
            finished_at=original.finished_at if original else None,
        ))
    StepRun.objects.bulk_create(step_runs)
    actor_kind = TRIGGER_ACTOR_KIND.get(trigger_kind, ActorKind.SYSTEM)
    source = retry_of or replay_of or rerun_of
    engine.event_record(
        run_id=run.pk, kind=EventKind.RUN_CREATED, to_status=RunStatus.CREATED, actor_kind=actor_kind,
        actor=run.trigger_actor,
        reason=f"{trigger_kind} trigger" + (f" of run {source.pk}" if source else ""),
        data={"version": version.number, "draft": draft,
              "reused_steps": sorted(reuse)} if reuse else
             {"version": version.number, "draft": draft},
    )
    if admitted:
        engine.event_record(run_id=run.pk, kind=EventKind.RUN_QUEUED, from_status=RunStatus.CREATED,
                            to_status=RunStatus.QUEUED, reason="admitted")
    # What was just written, in definition order: admission and the API answer use it as is.
    run.created_steps = {s.key: s for s in step_runs}
    return run


def _draft_definition(flow: Flow) -> dict[str, Any] | None:
    draft = FlowVersion.objects.filter(flow=flow, number__isnull=True).only("definition").first()
    return draft.definition if draft is not None else None


def _concurrency_key(definition: dict[str, Any], input: dict[str, Any]) -> str | None:
    concurrency = definition.get("concurrency")
    if not concurrency or concurrency.get("policy") == "allow":
        return None
    template = concurrency.get("key") or ""
    try:
        # The run does not exist yet: it owns no resource, so a path into a descriptor-shaped
        # input value loads nothing (it stays the template, as for any unresolved key).
        value = resolve(template, {"input": input, "steps": {}, "connections": {}},
                        scope=ResourceScope(frozenset))
    except ReferenceUnresolved:
        value = template
    return str(value)


def run_cancel(*, run: Run, actor=None, reason: str = "") -> Run:
    """Cancel the run and every non-terminal step. A running handler notices at its next
    heartbeat. Raises TransitionNotAllowed when the run has already ended."""
    require_permission(actor, OPERATE_RUN)
    with transaction.atomic():
        locked = engine.lock_run(run.pk)
        engine.run_cancel(locked, actor=actor, reason=reason or "canceled")
    return locked


def run_retry(*, run: Run, actor=None, from_step: str | None = None) -> Run:
    """A new run linked by retry_of: same version and input; completed steps are reused with
    their outputs, and it starts at the failed step(s) — or at `from_step`, reusing only the
    completed steps that do not depend on it ("redo from here")."""
    require_permission(actor, OPERATE_RUN)
    run = Run.objects.select_related("flow", "version").get(pk=run.pk)
    definition = run.definition
    if run.is_rehearsal:
        _rehearsal_allowed(run.flow, definition, _draft_definition(run.flow))
    reuse = retry_reuse(run=run, from_step=from_step)
    with transaction.atomic():
        new = _run_create(
            flow=run.flow, version=run.version, definition=definition, input=run.input,
            actor=actor, draft=run.is_rehearsal, trigger_kind=TriggerKind.RETRY,
            trigger_payload={"retry_of": run.pk, "from_step": from_step}, retry_of=run,
            reuse=reuse,
        )
        for key in reuse:
            engine.event_record(run_id=new.pk, kind=EventKind.STEP_REUSED, to_status=StepStatus.COMPLETED,
                         actor_kind=ActorKind.SYSTEM,
                         step_run_id=StepRun.objects.get(run=new, key=key).pk,
                         reason=f"output reused from run {run.pk}")
        engine.run_admit(new)
    return new


def run_rerun(*, run: Run, actor=None, version: int | None = None) -> Run:
    """A new run of the same input on the flow's live version, linked by rerun_of ("run this
    input on the live version": the fix is released, the failed run's input deserves another
    go). With `version`, on that release instead ("run this input on v1": the live release
    fails and v1 was the last good one). Nothing is reused. Recorded on both runs (events
    run_rerun and run_rerun_of).

    Same permission as retry and replay (operate_run). Raises Conflict when the run is still
    active or the flow has no live version; NotFound for an unknown `version`; InputInvalid
    when the input does not fit that version's declared inputs."""
    require_permission(actor, OPERATE_RUN)
    run = Run.objects.select_related("flow", "version").get(pk=run.pk)
    if run.status not in RUN_TERMINAL:
        raise Conflict(f"run {run.pk} is still {run.status}; cancel it first or wait for it")
    flow = run.flow
    if version is not None:
        target = FlowVersion.objects.filter(flow=flow, number=version).first()
        if target is None:
            raise NotFound(f"flow {flow.slug} has no release {version}")
    elif flow.live_version_id is None:
        raise Conflict(f"flow {flow.slug} has no live version; release and promote one "
                       "before rerunning on it")
    else:
        target = FlowVersion.objects.get(pk=flow.live_version_id)
    where = (f"live v{target.number}" if target.pk == flow.live_version_id
             else f"v{target.number}")
    definition = target.definition
    run_input = validate_run_input(definition, run.input or {})
    payload: dict[str, Any] = {"rerun_of": run.pk}
    if version is not None:
        payload["version"] = target.number
    with transaction.atomic():
        new = _run_create(
            flow=flow, version=target, definition=definition, input=run_input, actor=actor,
            draft=False, trigger_kind=TriggerKind.RERUN, trigger_payload=payload, rerun_of=run,
        )
        name = actor_name(actor) or "system"
        pinned = "draft" if run.is_rehearsal else f"v{run.version.number}"
        kind = ActorKind.USER if actor is not None else ActorKind.SYSTEM
        engine.event_record(
            run_id=run.pk, kind=EventKind.RUN_RERUN, actor_kind=kind, actor=name,
            reason=f"input rerun on {where} as run {new.pk}",
            data={"run": new.pk, "version": target.number},
        )
        engine.event_record(
            run_id=new.pk, kind=EventKind.RUN_RERUN_OF, actor_kind=kind, actor=name,
            reason=f"reruns the input of run {run.pk} ({pinned}) on {where}",
            data={"run": run.pk, "version": target.number},
        )
        engine.run_admit(new)
    return new


def run_replay(*, run: Run, actor=None) -> Run:
    """A new run from the start with the same version and input, linked by replay_of."""
    require_permission(actor, OPERATE_RUN)
    if run.is_rehearsal:
        _rehearsal_allowed(run.flow, run.definition, _draft_definition(run.flow))
    with transaction.atomic():
        new = _run_create(
            flow=run.flow, version=run.version, definition=run.definition, input=run.input,
            actor=actor, draft=run.is_rehearsal, trigger_kind=TriggerKind.REPLAY,
            trigger_payload={"replay_of": run.pk}, replay_of=run,
        )
        engine.run_admit(new)
    return new


