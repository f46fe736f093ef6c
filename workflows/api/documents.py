"""The public shapes of flows, runs, steps, events, logs and approvals (CONTRACT.md).

Functions here only shape rows already loaded; the querysets that load them for lists without
one query per item are here too, next to the shapes that need them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from approvals.models import Approval
from workflows import selectors
from workflows.document_selectors import flow_drafts, run_rerun_ids, run_steps
from workflows.instance_selectors import instance_counts, run_has_fan_out
from workflows.models import (
    Attempt,
    Event,
    Flow,
    FlowHistory,
    FlowVersion,
    LogChunk,
    Run,
    StepInstance,
    StepRun,
    WebhookDelivery,
)
from workflows.permissions import actor_name
from workflows.selectors import usage_total
from workflows.services.webhooks import webhook_url
from workflows.states import StepStatus, error_kind_of


def flow_admin_url(flow_id: int) -> str:
    return f"{settings.PUBLIC_BASE_URL}/admin/workflows/flow/{flow_id}/change/"


def run_admin_url(run_id: int) -> str:
    return f"{settings.PUBLIC_BASE_URL}/admin/workflows/run/{run_id}/change/"


# --- flows --------------------------------------------------------------------------------------


def flow_document(flow: Flow) -> dict[str, Any]:
    drafts = getattr(flow, "drafts", None)
    if drafts is None:
        drafts = flow_drafts(flow)
    draft = drafts[0] if drafts else None
    live = flow.live_version if flow.live_version_id else None
    triggers = list((live.definition or {}).get("triggers") or []) if live else []
    return {
        "slug": flow.slug,
        "name": flow.name,
        "description": flow.description,
        "live_version": live.number if live else None,
        "draft": {
            "hash": draft.content_hash, "updated_at": draft.updated_at,
            "definition": draft.definition,
        } if draft else None,
        "triggers": triggers,
        "webhook_url": webhook_url(flow=flow),
        "webhook_enabled": any(t.get("type") == "webhook" for t in triggers
                               if isinstance(t, dict)),
        "created_at": flow.created_at,
        "updated_at": flow.updated_at,
        "admin_url": flow_admin_url(flow.pk),
    }


def release_document(version: FlowVersion, *, live_id: int | None) -> dict[str, Any]:
    return {
        "version": version.number,
        "content_hash": version.content_hash,
        "notes": version.notes,
        "live": version.pk == live_id,
        "created_by": actor_name(version.created_by) if version.created_by_id else None,
        "created_at": version.created_at,
        "released_at": version.released_at,
        "definition": version.definition,
    }


# --- runs ---------------------------------------------------------------------------------------


def rerun_ids(run: Run) -> list[int]:
    """The ids of the runs started from `run` by a rerun, oldest first (prefetched by
    `runs_queryset`; a run just created has none; else one query)."""
    prefetched = getattr(run, "rerun_list", None)
    if prefetched is not None:
        return [r.pk for r in prefetched]
    if hasattr(run, "created_steps"):
        return []
    return run_rerun_ids(run)


def step_document(step: StepRun, *, child_run: int | list[int | None] | None = None,
                  instances: dict[str, Any] | None = None) -> dict[str, Any]:
    """`instances`: {total, by_status} of a for_each step, else None."""
    return {
        "key": step.key,
        "type": step.type,
        "status": step.status,
        "attempts": step.attempt_count,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "duration_ms": step.duration_ms,
        "output": step.output,
        "error": step.error,
        "reused": step.is_reused,
        "error_kind": _step_error_kind(step),
        **agent_fields(step),
        "child_run": child_run,
        "instances": instances,
    }


def _step_error_kind(step: StepRun) -> str | None:
    if step.status not in (StepStatus.FAILED, StepStatus.REJECTED):
        return None
    return error_kind_of(step.status, step.error) or None


def agent_fields(step: StepRun) -> dict[str, Any]:
    """What a wait's remote agent reported (null for other steps): heartbeat, message,
    progress, usage, artifacts, and what its on_cancel command did."""
    return {
        "heartbeat_at": step.heartbeat_at,
        "message": step.agent_message or None,
        "progress": step.agent_progress,
        "usage": step.agent_usage,
        "artifacts": step.agent_artifacts,
        "on_cancel": step.on_cancel_result if step.on_cancel_state else None,
    }


def run_document(run: Run) -> dict[str, Any]:
    steps = getattr(run, "ordered_steps", None)
    if steps is None:
        steps = run_steps(run)
    children = selectors.subflow_children(steps=steps)
    # One GROUP BY, and only for a run whose definition fans out.
    counts = instance_counts([run.pk]) if run_has_fan_out(run) else {}
    return {
        "id": run.pk,
        "flow": run.flow.slug,
        "version": run.version.number,
        "rehearsal": run.is_rehearsal,
        "status": run.status,
        "trigger": {"kind": run.trigger_kind, "actor": run.trigger_actor,
                    "payload": run.trigger_payload or {},
                    "delivery": run.trigger_delivery_id},
        "input": run.input or {},
        "output": run.output,
        "error": run.error,
        "error_kind": run.error_kind or None,
        "idempotency_key": run.idempotency_key,
        "created_at": run.created_at,
        "queued_at": run.queued_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_ms": run.duration_ms,
        "retry_of": run.retry_of_id,
        "replay_of": run.replay_of_id,
        "rerun_of": run.rerun_of_id,
        "reruns": rerun_ids(run),
        "trace_id": run.trace_id or None,
        "parent": selectors.subflow_parent(run=run),
        "steps": [step_document(s, child_run=children.get(s.pk), instances=counts.get(s.pk))
                  for s in steps],
        "usage": usage_total(steps),
        "admin_url": run_admin_url(run.pk),
    }


def event_document(event: Event) -> dict[str, Any]:
    return {
        "id": event.pk,
        "at": event.at,
        "kind": event.kind,
        "step": event.step_run.key if event.step_run_id else None,
        "from": event.from_status,
        "to": event.to_status,
        "actor": event.actor,
        "actor_kind": event.actor_kind,
        "reason": event.reason,
        "data": event.data or {},
    }


def log_ref_fields(log: Any) -> dict[str, Any]:
    """`log_ref` (the res:// uri of the whole log) and `log_size` (bytes), or nulls."""
    return {"log_ref": log.uri if log is not None else None,
            "log_size": log.size if log is not None else None}


def attempt_document(attempt: Attempt, log: Any = None) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "status": attempt.status,
        "worker": attempt.worker,
        "input": attempt.input,
        "output": attempt.output,
        "error": attempt.error,
        "exit_code": attempt.exit_code,
        "started_at": attempt.started_at,
        "finished_at": attempt.finished_at,
        "duration_ms": attempt.duration_ms,
        **log_ref_fields(log),
    }


def step_detail_document(step: StepRun, attempts: list[Attempt],
                         logs: dict[int, Any] | None = None,
                         instances: dict[str, Any] | None = None) -> dict[str, Any]:
    logs = logs or {}
    return {
        "run": step.run_id,
        "key": step.key,
        "type": step.type,
        "status": step.status,
        "needs": list(step.needs or []),
        "attempt_count": step.attempt_count,
        "attempts": [attempt_document(a, logs.get(a.number)) for a in attempts],
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "duration_ms": step.duration_ms,
        "output": step.output,
        "error": step.error,
        "reused": step.is_reused,
        "child_run": selectors.subflow_children(steps=[step]).get(step.pk),
        **log_ref_fields(logs[max(logs)] if logs else None),
        "instances": instances,
    }


def instance_document(instance: StepInstance) -> dict[str, Any]:
    return {
        "index": instance.index,
        "item": instance.item,
        "status": instance.status,
        "attempts": instance.attempt_count,
        "reused": instance.reused,
        "started_at": instance.started_at,
        "finished_at": instance.finished_at,
        "duration_ms": instance.duration_ms,
        "output": instance.output,
        "error": instance.error,
        "child_run": instance.child_run_id,
    }


def log_document(chunk: LogChunk, attempt_numbers: dict[int, int]) -> dict[str, Any]:
    return {
        "seq": chunk.seq,
        "at": chunk.at,
        "stream": chunk.stream,
        "text": chunk.text,
        "attempt": attempt_numbers.get(chunk.attempt_id, 0),
    }


# --- approvals ----------------------------------------------------------------------------------


def approval_admin_url(approval_id: int) -> str:
    return f"{settings.PUBLIC_BASE_URL}/admin/approvals/approval/{approval_id}/change/"


def approval_document(approval: Approval) -> dict[str, Any]:
    """Both kinds: a step's approval (run, step) and a promotion request (version,
    requested_by; run and step null)."""
    flow = approval.flow if approval.flow_id else approval.run.flow
    return {
        "id": approval.pk,
        "kind": approval.kind,
        "run": approval.run_id,
        "flow": flow.slug,
        "step": approval.step_run.key if approval.step_run_id else None,
        "version": approval.version.number if approval.version_id else None,
        "requested_by": actor_name(approval.requested_by) if approval.requested_by_id
        else None,
        "status": approval.status,
        "instructions": approval.instructions,
        "data": approval.data,
        "assignees": approval.assignees or {},
        "redo_to": approval.redo_to,
        "redo_step": approval.redo_step,
        "decided_by": actor_name(approval.decision_actor) if approval.decision_actor_id
        else None,
        "comment": approval.comment,
        "created_at": approval.created_at,
        "timeout_at": approval.timeout_at,
        "decided_at": approval.decided_at,
        "run_admin_url": run_admin_url(approval.run_id) if approval.run_id else None,
        "admin_url": approval_admin_url(approval.pk),
    }


# --- flow history -------------------------------------------------------------------------------


def delivery_document(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.pk,
        "received_at": delivery.received_at,
        "verify": delivery.verify,
        "event": delivery.event,
        "delivery_id": delivery.delivery_id,
        "outcome": delivery.outcome,
        "reason": delivery.reason,
        "run": delivery.run_id,
    }


def history_document(entry: FlowHistory) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "kind": entry.kind,
        "actor": entry.actor_name or None,
        "at": entry.at,
        "from_version": entry.from_version,
        "to_version": entry.to_version,
        "comment": entry.comment,
        "data": entry.data or {},
    }
