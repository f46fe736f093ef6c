"""Webhook triggers: a delivery from any sender, verified, filtered, deduplicated, logged, and
turned into a run of the flow's live release (CONTRACT "Webhooks from any sender").

The order of checks, each answering on its own (services never see a request, only its bytes
and lower-case headers):
1. the live release's webhook trigger (none: 404) and its `verify:` preset
   (workflows.webhook_presets), which checks the signature or token: 401 `signature_invalid`
   naming the failed check; a rejected row without the body, at most
   WF_WEBHOOK_REJECTED_PER_MINUTE per flow per minute (counted in the cache), so a flood of
   forged requests cannot fill the log;
2. the body: JSON, or a form (a preset's `form_field` such as GitHub's `payload` holds the
   JSON; other forms become an object of their fields): 400 otherwise, an `invalid` row;
3. a sender's handshake (Slack's `url_verification`), answered only now, after verification;
4. the delivery id: a row that started a run with the same id makes this a `duplicate` (200,
   that run, nothing new); the same signed timestamp and body again under another id (or none)
   is a replay: 409 `signature_replayed`;
5. `events:` and `when:` (CEL over body, headers, event; workflows.conditions): a delivery left
   out is `filtered` (200 with the reason; an evaluation error is a reason too, never a 500);
6. the run's input: the trigger's `input:` mapping resolved over `webhook.*` with the `{{ }}`
   resolver, else the body's `input` object, else its declared top-level fields; then the run
   starts (`started`, 202) or the input is refused (`invalid`, 422 naming each path).

A filtered or duplicate delivery costs at most 3 queries (the flow; the id lookup; its row).
The started row claims the delivery id (unique per flow) in the transaction that starts the
run, so two copies at once start one run. The payload follows the storage rule
(`keep_json`): kept as a resource when large or odd, attached to the run it started; only the
handle this delivery kept is ever attached or discarded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q

from connections.crypto import encrypt_text, rotate_encrypted_column
from resources.payloads import (
    json_loads_strict,
    json_storage_problems,
    keep_json,
    storable_text,
)
from workflows import engine
from workflows.errors import DefinitionInvalid, InputInvalid, NotFound, WorkflowError
from workflows.models import (
    WEBHOOK_KEY_PREFIX,
    Flow,
    Run,
    TriggerKind,
    WebhookDelivery,
    new_webhook_secret,
)
from workflows.permissions import OPERATE_RUN, require_permission
from workflows.services.deliveries import (
    WebhookPayloadInvalid,
    filter_reason,
    visible_headers,
    webhook_input,
    webhook_payload,
    webhook_trigger,
)
from workflows.services.history import flow_history_record
from workflows.services.runs import run_start
from workflows.states import DeliveryOutcome, FlowHistoryKind
from workflows.webhook_presets import (
    DEFAULT_PRESET,
    PRESETS,
    TOLERANCE_SECONDS,
    Preset,
    WebhookSignatureInvalid,
    webhook_sign,
    webhook_verify,
)

__all__ = [
    "WEBHOOK_TOLERANCE_SECONDS",
    "DeliveryResult",
    "WebhookNotEnabled",
    "WebhookPayloadInvalid",
    "WebhookSignatureInvalid",
    "WebhookSignatureReplayed",
    "json_loads_strict",
    "json_storage_problems",
    "webhook_enabled",
    "webhook_receive",
    "webhook_secret_rotate",
    "webhook_secret_set",
    "webhook_secrets_rotate_keys",
    "webhook_sign",
    "webhook_trigger",
    "webhook_url",
    "webhook_verify",
]

WEBHOOK_TOLERANCE_SECONDS = TOLERANCE_SECONDS
IDEMPOTENCY_PREFIX = WEBHOOK_KEY_PREFIX
MAX_IDEMPOTENCY_KEY_LENGTH = 200 - len(IDEMPOTENCY_PREFIX)
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 256
_SECRET_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces


class WebhookSignatureReplayed(WorkflowError):
    """The delivery repeats a signed request already accepted within its tolerance window,
    under another delivery id (or none): a captured delivery replayed."""

    code = "signature_replayed"
    http_status = 409


class WebhookNotEnabled(NotFound):
    """The flow does not exist or its live release declares no webhook trigger."""


class WebhookSecretInvalid(DefinitionInvalid):
    """The secret given to PUT …/webhook-secret is not usable (422, its reason at `secret`)."""

    code = "validation_error"

    def __init__(self, problems: list[dict[str, str]]):
        super().__init__(problems, message="the webhook secret is not usable")


class _StartedBefore(Exception):
    def __init__(self, run: Run):
        self.run = run


@dataclass
class DeliveryResult:
    """What became of one delivery: its logged row, the outcome, the run it started (or the
    one a duplicate names), why it was filtered, or a handshake's answer."""

    delivery: WebhookDelivery
    outcome: str
    run: Run | None = None
    reason: str = ""
    challenge: dict[str, Any] | None = None
    created: bool = False


def webhook_enabled(*, flow: Flow) -> bool:
    """Whether the flow's live release declares a `{type: webhook}` trigger."""
    return webhook_trigger(flow=flow) is not None


def webhook_url(*, flow: Flow) -> str:
    return f"{settings.PUBLIC_BASE_URL}/api/v1/hooks/{flow.slug}"


def _rejected_allowed(flow: Flow) -> bool:
    """At most WF_WEBHOOK_REJECTED_PER_MINUTE rejected rows per flow per minute: a counter in
    the cache (shared through Redis when configured; per process otherwise), no query."""
    limit = int(settings.WF_WEBHOOK_REJECTED_PER_MINUTE)
    key = f"wf:webhook-rejected:{flow.pk}:{int(time.time() // 60)}"
    try:
        cache.add(key, 0, timeout=120)
        return cache.incr(key) <= limit
    except ValueError:  # evicted between add and incr
        return True


def _record(flow: Flow, outcome: str, *, reason: str = "", **fields: Any) -> WebhookDelivery:
    return WebhookDelivery.objects.create(flow=flow, outcome=outcome,
                                          reason=storable_text(reason), **fields)


def _reject(flow: Flow, verify: str, reason: str, **fields: Any) -> None:
    if _rejected_allowed(flow):
        _record(flow, DeliveryOutcome.REJECTED, verify=verify, reason=reason[:1000], **fields)


def _seen(flow: Flow, delivery_id: str, digest: str | None) -> tuple[str, WebhookDelivery] | None:
    """("duplicate" | "replay", the row that started a run) for a delivery id or signed
    request already seen; one query."""
    match = Q()
    if delivery_id:
        match |= Q(dedup_key=delivery_id)
    if digest:
        match |= Q(replay_digest=digest)
    if not match:
        return None
    rows = list(WebhookDelivery.objects.filter(match, flow=flow)
                .only("pk", "dedup_key", "run_id")[:2])
    for row in rows:
        if delivery_id and row.dedup_key == delivery_id:
            return "duplicate", row
    return ("replay", rows[0]) if rows else None


def _answer_seen(flow: Flow, preset: Preset, seen: tuple[str, WebhookDelivery], *, event: str,
                 delivery_id: str) -> DeliveryResult:
    kind, original = seen
    if kind == "replay":
        reason = (f"replayed: this signed request was already accepted (delivery "
                  f"{original.pk}); a retry must carry the same delivery id, or be signed anew")
        _reject(flow, preset.name, reason, event=event, delivery_id=delivery_id)
        raise WebhookSignatureReplayed(reason)
    row = _record(flow, DeliveryOutcome.DUPLICATE, verify=preset.name, event=event,
                  delivery_id=delivery_id, run_id=original.run_id,
                  reason=f"delivery id already started a run (delivery {original.pk})"
                  if original.pk else "delivery id already started a run")
    return DeliveryResult(delivery=row, outcome=DeliveryOutcome.DUPLICATE,
                          run=Run(pk=original.run_id) if original.run_id else None,
                          reason=row.reason)


def webhook_receive(*, flow: Flow, body: bytes, headers: Mapping[str, str] | None = None,
                    content_type: str = "application/json", signature: str | None = None,
                    idempotency_key: str | None = None, now: float | None = None,
                    traceparent: str | None = None,
                    tracestate: str | None = None) -> DeliveryResult:
    """Verify, filter, deduplicate and log one delivery; start a run when it gets through
    (with tracing on, as the child of the sender's `traceparent`, with its `tracestate`).

    `headers` are the request's, with lower-case names (`signature` / `idempotency_key` are
    shorthands for X-Signature / Idempotency-Key). Returns a DeliveryResult (started,
    duplicate, filtered, or a handshake's challenge). Raises WebhookNotEnabled (404),
    WebhookSignatureInvalid (401), WebhookSignatureReplayed (409), WebhookPayloadInvalid
    (400), InputInvalid (422), OutputNotStorable; every refusal after the flow was found is
    logged first (rejected rows within their rate limit)."""
    headers = {name.lower(): value for name, value in (headers or {}).items()}
    if signature is not None:
        headers["x-signature"] = signature
    if idempotency_key is not None:
        headers["idempotency-key"] = idempotency_key
    found = webhook_trigger(flow=flow)
    if found is None:
        reason = f"flow {flow.slug} has no webhook trigger in its live release"
        _reject(flow, "", reason)
        raise WebhookNotEnabled(reason)
    _index, trigger = found
    preset = PRESETS.get(trigger.get("verify") or DEFAULT_PRESET, PRESETS[DEFAULT_PRESET])
    now = time.time() if now is None else now
    try:
        timestamp = preset.verify(secret=flow.webhook_signing_secret(), body=body,
                                  headers=headers, now=now)
    except WebhookSignatureInvalid as exc:
        _reject(flow, preset.name, str(exc))
        raise
    visible = visible_headers(headers)
    try:
        payload = webhook_payload(preset=preset, body=body, content_type=content_type)
    except WebhookPayloadInvalid as exc:
        _record(flow, DeliveryOutcome.INVALID, verify=preset.name, reason=str(exc)[:1000],
                headers=visible)
        raise
    event = preset.event(payload=payload, headers=headers)[:200]
    delivery_id = preset.delivery_id(payload=payload, headers=headers)
    if len(delivery_id) > MAX_IDEMPOTENCY_KEY_LENGTH or json_storage_problems(
            [event, delivery_id]):
        event = event if not json_storage_problems(event) else ""
        reason = (f"the delivery id is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
                  if len(delivery_id) > MAX_IDEMPOTENCY_KEY_LENGTH else
                  "the event name or delivery id holds NUL characters or unpaired surrogates")
        _record(flow, DeliveryOutcome.INVALID, verify=preset.name, event=event, reason=reason,
                headers=visible)
        raise WebhookPayloadInvalid(reason)
    challenge = preset.challenge(payload=payload)
    if challenge is not None:
        row = _record(flow, DeliveryOutcome.FILTERED, verify=preset.name,
                      event=event,
                      reason="a handshake: its challenge was answered", headers=visible)
        return DeliveryResult(delivery=row, outcome=DeliveryOutcome.FILTERED, reason=row.reason,
                              challenge=challenge)
    digest = (hashlib.sha256(f"{timestamp}.".encode() + body).hexdigest()
              if timestamp is not None else None)
    seen = _seen(flow, delivery_id, digest)
    if seen is not None:
        return _answer_seen(flow, preset, seen, event=event, delivery_id=delivery_id)
    logged = {"verify": preset.name, "event": event, "delivery_id": delivery_id,
              "headers": visible}
    reason = filter_reason(preset=preset, trigger=trigger, payload=payload, headers=headers,
                            event=event)
    kept = keep_json(payload, name=f"{flow.slug}-webhook.json")
    stored = {"payload": kept.value, "payload_resource_id": kept.resource_id}
    if reason:
        row = _record(flow, DeliveryOutcome.FILTERED, reason=reason, **logged, **stored)
        return DeliveryResult(delivery=row, outcome=DeliveryOutcome.FILTERED, reason=reason)
    definition = engine.version_get(flow.live_version_id).definition
    try:
        run_input = webhook_input(trigger=trigger, definition=definition, payload=payload,
                                  headers=headers, event=event, delivery_id=delivery_id)
        with transaction.atomic():
            # The body is the run's trigger payload: not written twice.
            row = _record(flow, DeliveryOutcome.STARTED, dedup_key=delivery_id or None,
                          replay_digest=digest, payload_resource_id=kept.resource_id,
                          **logged)
            run, created = run_start(
                flow=flow, input=run_input, actor=None, trigger_kind=TriggerKind.WEBHOOK,
                trigger_payload=kept.value, trigger_delivery=row, key_is_new=True,
                idempotency_key=IDEMPOTENCY_PREFIX + delivery_id if delivery_id else None,
                traceparent=traceparent, tracestate=tracestate)
            if not created:  # a run from before the delivery log holds this delivery id
                raise _StartedBefore(run)
            WebhookDelivery.objects.filter(pk=row.pk).update(run=run)
            row.run = run
    except _StartedBefore as exc:
        kept.discard()
        original = WebhookDelivery(pk=None, run_id=exc.run.pk)
        return _answer_seen(flow, preset, ("duplicate", original), event=event,
                            delivery_id=delivery_id)
    except InputInvalid as exc:
        _record(flow, DeliveryOutcome.INVALID, reason=str(exc)[:1000], **logged, **stored)
        raise
    except IntegrityError:
        # Another copy of this delivery started its run meanwhile (the unique delivery id or
        # signature): answer as that copy's duplicate.
        kept.discard()
        seen = _seen(flow, delivery_id, digest)
        if seen is None:
            raise
        return _answer_seen(flow, preset, seen, event=event, delivery_id=delivery_id)
    except BaseException:
        kept.discard()
        raise
    kept.attach(run=run)
    return DeliveryResult(delivery=row, outcome=DeliveryOutcome.STARTED, run=run, created=True)


def _secret_problem(secret: Any) -> str:
    if not isinstance(secret, str):
        return "must be a string"
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        return (f"must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters long "
                f"(it is {len(secret)})")
    if not _SECRET_CHARS.fullmatch(secret):
        return "must be printable ASCII without spaces"
    if secret.startswith("whsec_"):
        encoded = secret[len("whsec_"):]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            return "a whsec_ secret must be base64 after its prefix"
        if not key:
            return "a whsec_ secret must not be empty after its prefix"
    return ""


def webhook_secret_set(*, flow: Flow, secret: str, actor) -> None:
    """Set the secret a sender gave (Stripe's or Standard Webhooks' `whsec_…`, the one typed
    into GitHub, Slack's signing secret, GitLab's token). Needs the operator role, as rotation
    does; raises WebhookSecretInvalid (422) with the reason. Recorded in the flow's history as
    `webhook_secret_rotated` (data `{"source": "set"}`), never the secret. Deliveries signed
    with the old one are refused from now on."""
    require_permission(actor, OPERATE_RUN)
    problem = _secret_problem(secret)
    if problem:
        raise WebhookSecretInvalid([{"path": "secret", "message": problem}])
    _secret_store(flow=flow, secret=secret, actor=actor, source="set",
                  comment="set to the sender's secret")


def webhook_secret_rotate(*, flow: Flow, actor=None) -> str:
    """Give the flow a new random webhook secret and return it (the only time it is shown).
    Deliveries signed with the old secret are refused from now on. Needs the operator role:
    whoever holds the secret can start runs by signing deliveries. Recorded in the flow's
    history (`webhook_secret_rotated`, never the secret)."""
    require_permission(actor, OPERATE_RUN)
    secret = new_webhook_secret()
    _secret_store(flow=flow, secret=secret, actor=actor, source="random", comment="")
    return secret


def _secret_store(*, flow: Flow, secret: str, actor, source: str, comment: str) -> None:
    stored = encrypt_text(secret)
    with transaction.atomic():
        Flow.objects.filter(pk=flow.pk).update(webhook_secret=stored)
        flow_history_record(flow=flow, kind=FlowHistoryKind.WEBHOOK_SECRET_ROTATED, actor=actor,
                            comment=comment, data={"source": source})
    flow.webhook_secret = stored


def webhook_secrets_rotate_keys() -> int:
    """Re-encrypt every flow's webhook and notification secrets with the newest of
    FIELD_ENCRYPTION_KEYS (the flows' half of `rotate_connection_keys`, through the same
    connections.crypto.rotate_encrypted_column); returns how many. Raises SecretDecryptionError,
    changing nothing, when a secret opens with no configured key. Call inside the caller's
    transaction so a failure rolls back the connections' half too; rows are locked."""
    return rotate_encrypted_column(
        Flow.objects.all(),
        ["webhook_secret", "notification_secret"],
        label_field="slug",
        describe=lambda slug: f"flow {slug!r} webhook secret",
    )
