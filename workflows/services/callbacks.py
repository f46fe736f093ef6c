"""Receiving a callback: the single-use token of a wait step resumes it (or is kept until the
wait is reached). Tokens themselves are minted by the engine (`workflows.engine.callback_tokens`).
"""

from __future__ import annotations

import hmac
from typing import Any

from django.db import transaction
from django.utils import timezone

from workflows import engine
from workflows.errors import CallbackExpired, CallbackUnknown, CallbackUsed
from workflows.models import ActorKind, StepRun
from workflows.states import RUN_TERMINAL, EventKind, StepStatus


def callback_receive(
    *, token: str, payload: Any, remote_addr: str = "", user_agent: str = ""
) -> StepRun:
    """Resume a wait with `payload` as its output (or keep it until the wait is reached).

    Raises CallbackUnknown (no such token), CallbackUsed (already used: single-use),
    CallbackExpired (the wait timed out, or its run ended first).
    """
    if not token or len(token) > 200:
        raise CallbackUnknown("unknown callback token")
    digest = engine.token_hash(token)
    with transaction.atomic():
        step_run = (
            StepRun.objects.filter(callback_token_hash=digest).select_related("run").first()
        )
        if step_run is None or not hmac.compare_digest(
            engine.callback_token(step_run.callback_nonce), token
        ):
            raise CallbackUnknown("unknown callback token")
        run = engine.lock_run(step_run.run_id)
        step_run.refresh_from_db()
        if step_run.callback_received_at is not None:
            raise CallbackUsed("this callback was already used")
        if run.status in RUN_TERMINAL or step_run.status in (
            StepStatus.FAILED, StepStatus.CANCELED, StepStatus.SKIPPED, StepStatus.COMPLETED
        ):
            raise CallbackExpired("the wait this callback belongs to has ended")
        if step_run.timeout_at and step_run.timeout_at <= timezone.now():
            raise CallbackExpired("the wait this callback belongs to timed out")
        now = timezone.now()
        # Who posted it (address and user agent) is kept for the step panel; the token and
        # its URL never are.
        sender = {"callback_remote_addr": remote_addr[:64],
                  "callback_user_agent": user_agent[:300]}
        StepRun.objects.filter(pk=step_run.pk).update(
            callback_payload=payload, callback_received_at=now, **sender
        )
        step_run.callback_payload = payload
        step_run.callback_received_at = now
        for name, value in sender.items():
            setattr(step_run, name, value)
        data = {"remote_addr": remote_addr[:64], "user_agent": user_agent[:300]}
        if step_run.status == StepStatus.WAITING:
            engine.wait_complete(run=run, step_run=step_run, output=payload,
                          actor_kind=ActorKind.CALLBACK, actor=remote_addr,
                          reason="callback received", data=data)
        else:
            engine.event_record(
                run_id=run.pk, step_run_id=step_run.pk, kind=EventKind.CALLBACK_RECEIVED_EARLY,
                actor_kind=ActorKind.CALLBACK, actor=remote_addr,
                reason="callback arrived before the wait was reached; kept", data=data,
            )
    return step_run
