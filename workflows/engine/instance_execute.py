"""Running a batch of claimed instances (engine/instances.py): their handlers at once, each in
a handler thread, while the calling thread heartbeats their leases (one UPDATE for the batch),
takes their logs and watches their timeouts, as executor.execute does for a step."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from resources.services import resource_record
from workflows.engine import attempt_values, attempts, handler_threads
from workflows.engine.context import AttemptContext
from workflows.engine.executor import Result, worker_id
from workflows.engine.instance_pauses import pauses
from workflows.engine.instance_prepared import Claim
from workflows.models import StepInstance
from workflows.states import StepStatus
from workflows.steps import StepFailed, get_step_type

__all__ = ["execute"]

CANCEL_GRACE_SECONDS = 5.0


@dataclass
class _Running:
    claim: Claim
    ctx: AttemptContext
    result: Result
    done: threading.Event
    timeout: float
    canceled_at: float | None = None


def execute(batch: list[Claim]) -> list[Result]:
    """The batch's handlers at once, each in a handler thread, while this thread heartbeats
    their leases (one UPDATE for the batch), takes their logs and watches their timeouts (as
    executor.execute does for a step)."""
    results: list[Result] = []
    running: list[_Running] = []
    for claim in batch:
        claimed = claim.claimed
        if claimed.setup_error is None:
            claimed.setup_error = attempt_values.input_storable(claimed)
        if claimed.setup_error is not None:
            result = Result(error=claimed.setup_error)
            attempt_values.result_storable(claimed, result)
            results.append(result)
            continue
        result = Result()
        results.append(result)
        running.append(_start(claim, result))
    started = last_beat = time.monotonic()
    while (waiting := next((r for r in running if not r.done.is_set()), None)) is not None:
        # Wait on a handler still running: its end wakes this thread at once (a handler that
        # already ended would leave it to sleep the whole timeout, once per handler).
        waiting.ctx.wait_for_work(0.05 if len(running) > 1 else 0.25)
        now = time.monotonic()
        for r in running:
            r.claim.logs.extend(r.ctx.take_logs())
            if r.done.is_set():
                continue
            if r.canceled_at is not None:
                if now - r.canceled_at > CANCEL_GRACE_SECONDS:
                    r.done.set()  # abandoned: its thread ends on its own
                continue
            if now - started > r.timeout:
                r.result.timed_out = True
                r.ctx.cancel()
                r.canceled_at = now
        if now - last_beat >= settings.WF_HEARTBEAT_SECONDS:
            last_beat = now
            for r in _heartbeat([r for r in running if not r.done.is_set()]):
                r.result.lost = True
                r.ctx.cancel()
                r.canceled_at = now
    for r in running:
        _ended_attempt(r)
    return results


def _start(claim: Claim, result: Result) -> _Running:
    claimed = claim.claimed
    step_type = get_step_type(claimed.step.type)
    ctx = AttemptContext(step=claimed.resolved or {}, run_id=claimed.run.pk,
                         step_key=claimed.step.key, attempt_number=claimed.attempt.number,
                         connections=claimed.connections, secrets=claimed.secrets)
    timeout = float(claimed.definition.get("timeout_seconds") or attempts.default_step_timeout())
    done = handler_threads.handler_start(lambda: step_type.execute(ctx), ctx, result,
                                         name=f"instance-{claim.instance.pk}")
    return _Running(claim=claim, ctx=ctx, result=result, done=done, timeout=timeout)


def _ended_attempt(r: _Running) -> None:
    claimed = r.claim.claimed
    result = r.result
    r.claim.logs.extend(r.ctx.take_logs())
    for content, kind in r.ctx.take_stored():
        resource_record(stored=content, run=claimed.run, step_run=claimed.step, kind=kind)
    if result.timed_out:
        result.outcome = None
        result.error = StepFailed(f"the instance ran past its timeout of {r.timeout:g}s",
                                  error_type="StepTimeout")
    elif result.outcome is not None and result.outcome.kind != "completed" and not (
            result.outcome.kind == "wait" and pauses(claimed.step.type)):
        kind = result.outcome.kind
        result.outcome = None
        result.error = StepFailed(f"an instance of a for_each step cannot pause ({kind})",
                                  error_type="InstanceCannotPause", retryable=False)
    attempt_values.result_storable(claimed, result)


def _heartbeat(running: list[_Running]) -> list[_Running]:
    """Extend the batch's leases; returns the instances no longer this worker's (canceled, or
    taken back by the sweeper)."""
    if not running:
        return []
    lease = timezone.now() + timedelta(seconds=settings.WF_LEASE_SECONDS)
    ids = [r.claim.instance.pk for r in running]
    updated = StepInstance.objects.filter(pk__in=ids, status=StepStatus.RUNNING).update(
        lease_until=lease)
    if updated == len(ids):
        return []
    mine = set(StepInstance.objects.filter(pk__in=ids, status=StepStatus.RUNNING,
                                           worker=worker_id()).values_list("pk", flat=True))
    return [r for r in running if r.claim.instance.pk not in mine]

