"""Single-use callback tokens for wait steps, and receiving a callback.

A token is HMAC-SHA256(SECRET_KEY, nonce) with a random 128-bit nonce minted at run start, so
`{{ steps.X.callback_url }}` can be handed out before the wait is reached. Only the nonce and
the token's SHA-256 are stored; lookup is by that hash (a constant-time comparison of the
recomputed token guards it too).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workflows.errors import CallbackExpired, CallbackUnknown, CallbackUsed
from workflows.models import ActorKind, StepRun
from workflows.services.transitions import event_record
from workflows.states import RUN_TERMINAL, StepStatus


def callback_token(nonce: str) -> str:
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"wf-callback:{nonce}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def callback_mint() -> tuple[str, str]:
    """A fresh (nonce, token hash) pair for a wait step run."""
    nonce = secrets.token_urlsafe(16)
    return nonce, token_hash(callback_token(nonce))


def callback_url(nonce: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}/api/v1/callbacks/{callback_token(nonce)}"


def callback_receive(
    *, token: str, payload: Any, remote_addr: str = "", user_agent: str = ""
) -> StepRun:
    """Resume a wait with `payload` as its output (or keep it until the wait is reached).

    Raises CallbackUnknown (no such token), CallbackUsed (already used: single-use),
    CallbackExpired (the wait timed out, or its run ended first).
    """
    from workflows.engine.progress import lock_run, wait_complete

    if not token or len(token) > 200:
        raise CallbackUnknown("unknown callback token")
    digest = token_hash(token)
    with transaction.atomic():
        step_run = (
            StepRun.objects.filter(callback_token_hash=digest).select_related("run").first()
        )
        if step_run is None or not hmac.compare_digest(
            callback_token(step_run.callback_nonce), token
        ):
            raise CallbackUnknown("unknown callback token")
        run = lock_run(step_run.run_id)
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
        StepRun.objects.filter(pk=step_run.pk).update(
            callback_payload=payload, callback_received_at=now
        )
        step_run.callback_payload = payload
        step_run.callback_received_at = now
        data = {"remote_addr": remote_addr, "user_agent": user_agent[:300]}
        if step_run.status == StepStatus.WAITING:
            wait_complete(run=run, step_run=step_run, output=payload,
                          actor_kind=ActorKind.CALLBACK, actor=remote_addr,
                          reason="callback received", data=data)
        else:
            event_record(
                run_id=run.pk, step_run_id=step_run.pk, kind="callback_received_early",
                actor_kind=ActorKind.CALLBACK, actor=remote_addr,
                reason="callback arrived before the wait was reached; kept", data=data,
            )
    return step_run
