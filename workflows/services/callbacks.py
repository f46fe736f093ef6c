"""Receiving a callback: the single-use token of a wait step resumes it (or is kept until the
wait is reached). This service finds the step by its token and refuses what it must (unknown,
used, expired); the engine records the callback and moves the run on
(`engine.step_resolve(outcome=CallbackReceived(...))`). Tokens themselves are minted by the
engine (`workflows.engine.callback_tokens`).
"""

from __future__ import annotations

import hmac
from typing import Any

from django.db import transaction
from django.utils import timezone

from resources.payloads import is_descriptor, keep_json
from workflows import engine
from workflows.errors import CallbackExpired, CallbackUnknown, CallbackUsed
from workflows.models import ActorKind, StepRun
from workflows.states import RUN_TERMINAL, StepStatus


def callback_receive(
    *, token: str, payload: Any, remote_addr: str = "", user_agent: str = "",
    traceparent: str | None = None,
) -> StepRun:
    """Resume a wait with `payload` as its output (or keep it until the wait is reached).

    Raises CallbackUnknown (no such token), CallbackUsed (already used: single-use),
    CallbackExpired (the wait timed out, or its run ended first), OutputNotStorable (422).

    The payload follows the storage rule: larger than WF_INLINE_OUTPUT_BYTES, or holding what
    a database cannot store, it is kept whole as a resource (before the transaction: storing
    takes time and must not hold the run's lock) and the descriptor is what the wait outputs.
    A refused callback leaves no resource behind. A `traceparent` (the sender's span) is linked
    to the wait's span when tracing is on.
    """
    if not token or len(token) > 200:
        raise CallbackUnknown("unknown callback token")
    digest = engine.token_hash(token)
    found = StepRun.objects.filter(callback_token_hash=digest).select_related("run").first()
    if found is None or not hmac.compare_digest(engine.callback_token(found.callback_nonce),
                                                token):
        raise CallbackUnknown("unknown callback token")
    _check(found.run, found)  # refuse early what the locked check would refuse anyway
    kept = keep_json(payload, run=found.run, step_run=found, name=f"{found.key}-callback.json")
    try:
        return _receive(step_run=found, payload=kept.value, remote_addr=remote_addr,
                        user_agent=user_agent, traceparent=traceparent)
    except BaseException:
        kept.discard()  # only what this request stored: the body is data, never a handle
        raise


def _check(run: Any, step_run: StepRun) -> None:
    if step_run.callback_received_at is not None:
        raise CallbackUsed("this callback was already used")
    if run.status in RUN_TERMINAL or step_run.status in (
        StepStatus.FAILED, StepStatus.CANCELED, StepStatus.SKIPPED, StepStatus.COMPLETED
    ):
        raise CallbackExpired("the wait this callback belongs to has ended")
    if step_run.timeout_at and step_run.timeout_at <= timezone.now():
        raise CallbackExpired("the wait this callback belongs to timed out")


def _receive(*, step_run: StepRun, payload: Any, remote_addr: str, user_agent: str,
             traceparent: str | None = None) -> StepRun:
    with transaction.atomic():
        run = engine.lock_run(step_run.run_id)
        step_run.refresh_from_db()
        _check(run, step_run)
        if step_run.agent_artifacts and isinstance(payload, dict) \
                and not is_descriptor(payload) and "artifacts" not in payload:
            # what the remote agent uploaded beside the callback (services/agents.py)
            payload = {**payload, "artifacts": step_run.agent_artifacts}
        with engine.trace_inbound(run, step_run, traceparent, "callback"):
            engine.step_resolve(
                run=run, step_run=step_run, actor_kind=ActorKind.CALLBACK, actor=remote_addr,
                outcome=engine.CallbackReceived(payload=payload, remote_addr=remote_addr,
                                                user_agent=user_agent))
    return step_run
