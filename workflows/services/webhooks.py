"""Webhook triggers: verify a signed delivery and start a run of the flow's live release.

A delivery carries `X-Signature: t=UNIX,v1=HEX`, where HEX is the hex HMAC-SHA256 of
`f"{UNIX}.{raw body}"` keyed with the flow's webhook secret. The timestamp must be within
WEBHOOK_TOLERANCE of now (past or future), so a captured delivery cannot be replayed later; an
`Idempotency-Key` makes retries of one delivery start one run. A delivery whose signature was
already accepted inside its window is refused (409 `signature_replayed`) unless it carries the
same Idempotency-Key as the first: then the sender's retry gets the original run. Seen
signatures live in a table (WebhookSignatureSeen), written in the transaction that starts the run:
durable, shared by every web process, and rolled back with a delivery that starts nothing. (The
cache would be per-process without Redis, and may evict entries early.)

The JSON body (an object) is the trigger payload. The run's input is the body's `input` object
when it has one; otherwise the body's top-level fields that the flow declares as inputs (an
event from another system carries much more than the flow takes; the rest stays in the payload).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from connections.crypto import encrypt_text, rotate_token
from connections.errors import SecretDecryptionError
from resources.payloads import keep_json
from workflows.errors import DefinitionInvalid, InputInvalid, NotFound, WorkflowError
from workflows.models import (
    WEBHOOK_KEY_PREFIX,
    Flow,
    Run,
    TriggerKind,
    WebhookSignatureSeen,
    new_webhook_secret,
)
from workflows.permissions import OPERATE_RUN, require_permission
from workflows.services.history import flow_history_record
from workflows.services.runs import run_start
from workflows.states import FlowHistoryKind

WEBHOOK_TOLERANCE_SECONDS = 300
IDEMPOTENCY_PREFIX = WEBHOOK_KEY_PREFIX
MAX_IDEMPOTENCY_KEY_LENGTH = 200 - len(IDEMPOTENCY_PREFIX)


class WebhookSignatureInvalid(WorkflowError):
    """The X-Signature header is missing, malformed, stale or does not match. The message says
    which."""

    code = "signature_invalid"
    http_status = 401


class WebhookSignatureReplayed(WorkflowError):
    """The delivery repeats a signature already accepted within its tolerance window, without
    the Idempotency-Key the first delivery had: a captured delivery replayed."""

    code = "signature_replayed"
    http_status = 409


class WebhookNotEnabled(NotFound):
    """The flow does not exist or its live release declares no webhook trigger."""


class WebhookSecretInvalid(DefinitionInvalid):
    """A webhook secret given from outside (`webhook_secret_set`) that cannot be used: too
    short to be a secret, too long for its encrypted column, or holding control characters."""

    code = "validation_error"

    def __init__(self, message: str):
        super().__init__([{"path": "secret", "message": message}], "the webhook secret is invalid")


class WebhookPayloadInvalid(WorkflowError):
    """The body is not a JSON object (or the idempotency key is unusable)."""

    code = "bad_request"
    http_status = 400


def webhook_sign(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The X-Signature header value for `body` (what a sender computes; used by tests and docs)."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_verify(*, secret: str, body: bytes, header: str | None,
                   now: float | None = None) -> int:
    """Check the X-Signature `header` for `body`; return its timestamp.

    Raises WebhookSignatureInvalid with the precise reason: missing, malformed, outside the
    tolerance, or not matching. Several `v1=` values are allowed (any one may match), so a sender
    can sign with an old and a new secret while rotating.
    """
    if not header or not header.strip():
        raise WebhookSignatureInvalid("missing X-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookSignatureInvalid(
                "malformed X-Signature header: expected t=UNIX,v1=HEX")
        if name == "t":
            if not value.isascii() or not value.isdigit() or len(value) > 12:
                raise WebhookSignatureInvalid(
                    "malformed X-Signature header: t must be a UNIX time in seconds")
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        raise WebhookSignatureInvalid("malformed X-Signature header: expected t=UNIX,v1=HEX")
    now = time.time() if now is None else now
    if abs(now - timestamp) > WEBHOOK_TOLERANCE_SECONDS:
        raise WebhookSignatureInvalid(
            f"signature timestamp {timestamp} is outside the tolerance of "
            f"{WEBHOOK_TOLERANCE_SECONDS} seconds (now {int(now)})"
        )
    expected = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    matched = False
    for candidate in candidates:
        # Compare every candidate (no early exit) in constant time.
        matched |= hmac.compare_digest(expected.encode(), candidate.encode("ascii", "replace"))
    if not matched:
        raise WebhookSignatureInvalid("signature does not match the body and the flow's secret")
    return timestamp


def webhook_enabled(*, flow: Flow) -> bool:
    """Whether the flow's live release declares a `{type: webhook}` trigger."""
    if flow.live_version_id is None:
        return False
    version = flow.live_version
    triggers = (version.definition or {}).get("triggers") or []
    return any(isinstance(t, dict) and t.get("type") == "webhook" for t in triggers)


def webhook_url(*, flow: Flow) -> str:
    return f"{settings.PUBLIC_BASE_URL}/api/v1/hooks/{flow.slug}"


def json_storage_problems(value: Any, path: str = "", depth: int = 0) -> list[dict[str, str]]:
    """Problems ({path, message}) with strings in a JSON value that the database cannot store:
    NUL characters (PostgreSQL refuses them in text and jsonb) and unpaired surrogates (not
    encodable as UTF-8). Keys count too. At most 50 are listed."""
    problems: list[dict[str, str]] = []
    where = path or "(body)"
    if depth > 200:
        return [{"path": where, "message": "nested too deeply"}]
    if isinstance(value, str):
        if not _storable(value):
            problems.append({"path": where, "message": "must not contain NUL characters or "
                                                       "unpaired surrogates"})
    elif isinstance(value, dict):
        for key, item in value.items():
            if not _storable(str(key)):
                problems.append({"path": where, "message": "keys must not contain NUL "
                                                           "characters or unpaired surrogates"})
                continue
            problems += json_storage_problems(item, f"{path}.{key}" if path else str(key),
                                              depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += json_storage_problems(item, f"{path}[{index}]", depth + 1)
    return problems[:50]


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_loads_strict(text: str | bytes) -> Any:
    """`json.loads` for bodies from outside: NaN, Infinity and numbers too large for a float
    (`1e400`) are refused with ValueError instead of becoming non-finite floats, which no JSON
    column can store (PostgreSQL refuses them; the attempt would fail after the fact)."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large for a JSON number")
    return value


def _parse_payload(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        payload = json_loads_strict(body)
    except (ValueError, RecursionError) as exc:
        raise WebhookPayloadInvalid(f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WebhookPayloadInvalid("the body must be a JSON object")
    return payload


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def webhook_receive(*, flow: Flow, body: bytes, signature: str | None,
                    idempotency_key: str | None = None,
                    now: float | None = None,
                    traceparent: str | None = None) -> tuple[Run, bool]:
    """Verify a delivery and start a run of the live release; return (run, created).

    Raises WebhookNotEnabled (no webhook trigger in the live release), WebhookSignatureInvalid,
    WebhookSignatureReplayed, WebhookPayloadInvalid, InputInvalid, OutputNotStorable. A repeated Idempotency-Key returns
    the run the first delivery started (created=False), whatever the new body says.

    The payload follows the storage rule: larger than WF_INLINE_OUTPUT_BYTES, or holding what
    a database cannot store, it is kept as a resource before the run exists and attached to
    the run it started (`KeptValue.attach`); a delivery that starts no run leaves none behind,
    and only the resource this delivery kept is ever attached or discarded.
    The run's input must be storable inline (InputInvalid names each bad path).
    """
    if not webhook_enabled(flow=flow):
        raise WebhookNotEnabled(f"flow {flow.slug} has no webhook trigger in its live release")
    timestamp = webhook_verify(secret=flow.webhook_signing_secret(), body=body,
                               header=signature, now=now)
    payload = _parse_payload(body)
    if "input" in payload:
        run_input = payload["input"] if payload["input"] is not None else {}
        if not isinstance(run_input, dict):
            raise InputInvalid([{"path": "input", "message": "must be a JSON object"}])
    else:
        declared = flow.live_version.definition.get("input") or {}
        run_input = {name: value for name, value in payload.items() if name in declared}
    problems = json_storage_problems(run_input, "input")
    if problems:
        raise InputInvalid(problems)
    key = (idempotency_key or "").strip()
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise WebhookPayloadInvalid(
            f"Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    kept = keep_json(payload, name=f"{flow.slug}-webhook.json")
    try:
        with transaction.atomic():
            _signature_remember(flow=flow, body=body, timestamp=timestamp, idempotency_key=key,
                                now=now)
            run, created = run_start(
                flow=flow, input=run_input, actor=None, trigger_kind=TriggerKind.WEBHOOK,
                trigger_payload=kept.value,
                idempotency_key=IDEMPOTENCY_PREFIX + key if key else None,
                traceparent=traceparent,
            )
    except BaseException:
        kept.discard()
        raise
    if created:
        kept.attach(run=run)
    else:
        kept.discard()  # the repeated delivery's own copy; never what its body names
    return run, created


def _signature_remember(*, flow: Flow, body: bytes, timestamp: int, idempotency_key: str,
                        now: float | None) -> None:
    """Record this signed delivery until its window ends, or raise WebhookSignatureReplayed if
    it was seen with another (or no) Idempotency-Key. Call inside the transaction that starts
    the run: a delivery that starts nothing leaves no row. Concurrent copies meet on the unique
    digest (get_or_create retries the read after the other's commit)."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    WebhookSignatureSeen.objects.filter(expires_at__lt=moment).delete()
    digest = hashlib.sha256(f"{flow.pk}.{timestamp}.".encode() + body).hexdigest()
    expires = datetime.fromtimestamp(timestamp + WEBHOOK_TOLERANCE_SECONDS + 1, tz=UTC)
    seen, created = WebhookSignatureSeen.objects.get_or_create(
        digest=digest,
        defaults={"flow": flow, "idempotency_key": idempotency_key, "expires_at": expires},
    )
    if not created and (not idempotency_key or seen.idempotency_key != idempotency_key):
        raise WebhookSignatureReplayed(
            "this signed delivery was already accepted; a retry must carry the same "
            "Idempotency-Key as the first delivery, or be signed anew")


def webhook_secret_rotate(*, flow: Flow, actor=None) -> str:
    """Give the flow a new webhook secret and return it (the only time it is shown).
    Deliveries signed with the old secret are refused from now on. Needs the operator role:
    whoever holds the secret can start runs by signing deliveries. Recorded in the flow's
    history (`webhook_secret_rotated`, never the secret)."""
    require_permission(actor, OPERATE_RUN)
    secret = new_webhook_secret()
    stored = encrypt_text(secret)
    with transaction.atomic():
        Flow.objects.filter(pk=flow.pk).update(webhook_secret=stored)
        flow_history_record(flow=flow, kind=FlowHistoryKind.WEBHOOK_SECRET_ROTATED, actor=actor)
    flow.webhook_secret = stored
    return secret


# A Fernet token of 100 bytes is 228 characters: it fits the 255-character column.
WEBHOOK_SECRET_MIN_BYTES = 16
WEBHOOK_SECRET_MAX_BYTES = 100


def webhook_secret_set(*, flow: Flow, secret: str, actor=None) -> None:
    """Give the flow the webhook secret `secret`, chosen outside (a sender that generates its
    own, or config kept as code); it is never returned. Deliveries signed with the old secret
    are refused from now on. Same role and history entry as `webhook_secret_rotate`
    (`webhook_secret_rotated`, never the secret); raises WebhookSecretInvalid, writing
    nothing, for a secret that cannot be used."""
    require_permission(actor, OPERATE_RUN)
    size = len(secret.encode("utf-8", "surrogatepass"))
    if size < WEBHOOK_SECRET_MIN_BYTES:
        raise WebhookSecretInvalid(f"must be at least {WEBHOOK_SECRET_MIN_BYTES} bytes")
    if size > WEBHOOK_SECRET_MAX_BYTES:
        raise WebhookSecretInvalid(f"must be at most {WEBHOOK_SECRET_MAX_BYTES} bytes")
    if not secret.isprintable() or secret != secret.strip():
        raise WebhookSecretInvalid("must be printable, without control characters or "
                                   "leading or trailing spaces")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in secret):
        raise WebhookSecretInvalid("must be valid UTF-8")
    stored = encrypt_text(secret)
    with transaction.atomic():
        Flow.objects.filter(pk=flow.pk).update(webhook_secret=stored)
        flow_history_record(flow=flow, kind=FlowHistoryKind.WEBHOOK_SECRET_ROTATED, actor=actor,
                            data={"source": "set"})
    flow.webhook_secret = stored


def webhook_secrets_rotate_keys() -> int:
    """Re-encrypt every flow's webhook and notification secrets with the newest of
    FIELD_ENCRYPTION_KEYS (the flows' half of `rotate_connection_keys`); returns how many. Raises SecretDecryptionError,
    changing nothing, when a secret opens with no configured key. Call inside the caller's
    transaction so a failure rolls back the connections' half too; rows are locked."""
    with transaction.atomic():
        flows = list(Flow.objects.select_for_update().order_by("pk")
                     .values_list("pk", "slug", "webhook_secret", "notification_secret"))
        for pk, slug, token, notification_token in flows:
            try:
                rotated = rotate_token(token)
                notification_rotated = rotate_token(notification_token)
            except SecretDecryptionError as exc:
                raise SecretDecryptionError(f"flow {slug!r} webhook secret: {exc}") from None
            Flow.objects.filter(pk=pk).update(webhook_secret=rotated,
                                              notification_secret=notification_rotated)
    return len(flows)
