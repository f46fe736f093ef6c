"""Who may call a flow's webhook, and how each sender says who it is: the `verify:` presets.

A preset is data with the same few methods (DESIGN "presets that are data, not branches"):
`verify` (check what the sender signs, in constant time; return the signed timestamp, if the
scheme has one), `event` and `delivery_id` (read from its headers or body), plus what sets a
sender apart: the event ignored unless listed (GitHub's `ping`), the form field that holds the
JSON (GitHub's `payload`), the handshake answered before anything else (Slack's
`url_verification`). `PRESETS` is the registry; a definition's `verify:` must name one of them.

| preset | header | signed content | event | delivery id |
| signature | X-Signature: t=UNIX,v1=HEX | UNIX.BODY | — | Idempotency-Key |
| github | X-Hub-Signature-256: sha256=HEX | BODY | X-GitHub-Event | X-GitHub-Delivery |
| gitlab | X-Gitlab-Token: SECRET | — | X-Gitlab-Event | X-Gitlab-Event-UUID |
| stripe | Stripe-Signature: t=UNIX,v1=HEX… | UNIX.BODY | body type | body id |
| slack | X-Slack-Signature: v0=HEX, X-Slack-Request-Timestamp | v0:UNIX:BODY | event.type / type / command | event_id |
| standard | webhook-signature: v1,B64 …, webhook-id, webhook-timestamp | ID.UNIX.BODY | body type | webhook-id |

Every HMAC is SHA-256 keyed with the flow's webhook secret; for `standard` the key is the bytes
a `whsec_` secret's base64 encodes (the `standardwebhooks` package checks those signatures).
Timestamps are accepted within TOLERANCE_SECONDS of now, past or future. Headers are given with
lower-case names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from workflows.errors import WorkflowError

__all__ = [
    "CREDENTIAL_HEADERS",
    "DEFAULT_PRESET",
    "PRESETS",
    "TOLERANCE_SECONDS",
    "Preset",
    "WebhookSignatureInvalid",
    "webhook_sign",
    "webhook_verify",
]

TOLERANCE_SECONDS = 300
DEFAULT_PRESET = "signature"
# Headers that carry a credential: never kept, never shown to a condition or an input mapping.
CREDENTIAL_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "x-gitlab-token", "x-api-key",
})


class WebhookSignatureInvalid(WorkflowError):
    """The delivery's signature (or token) is missing, malformed, stale or does not match. The
    message names the check that failed."""

    code = "signature_invalid"
    http_status = 401


def _hmac_hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _any_matches(expected: str, candidates: list[str]) -> bool:
    """Constant time per candidate, and every candidate compared (no early exit)."""
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode("ascii", "replace"))
    return matched


def _timestamp(value: str | None, header: str, now: float) -> int:
    text = (value or "").strip()
    if not text:
        raise WebhookSignatureInvalid(f"missing timestamp ({header})")
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise WebhookSignatureInvalid(f"malformed timestamp in {header}: expected UNIX seconds")
    timestamp = int(text)
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise WebhookSignatureInvalid(
            f"stale timestamp: {timestamp} is outside the tolerance of {TOLERANCE_SECONDS} "
            f"seconds (now {int(now)})")
    return timestamp


def _pairs(header: str, name: str, example: str) -> list[tuple[str, str]]:
    pairs = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookSignatureInvalid(f"malformed {name} header: expected {example}")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _dig(payload: Any, *path: str) -> str:
    for key in path:
        if not isinstance(payload, dict):
            return ""
        payload = payload.get(key)
    return payload if isinstance(payload, str) else ""


class Preset:
    """The default methods; a sender's preset overrides what differs."""

    name = ""
    header = ""  # the header that carries the signature or token (docs, messages)
    unlisted_ignored: tuple[str, ...] = ()  # events filtered unless `events:` lists them
    form_field: str | None = None  # a form field holding the JSON body
    form_field_required = False
    names_events = True  # False: the sender names no event, so `events:` cannot apply

    def verify(self, *, secret: str, body: bytes, headers: Mapping[str, str],
               now: float) -> int | None:
        raise NotImplementedError

    def event(self, *, payload: Any, headers: Mapping[str, str]) -> str:
        return ""

    def delivery_id(self, *, payload: Any, headers: Mapping[str, str]) -> str:
        return (headers.get("idempotency-key") or "").strip()

    def challenge(self, *, payload: Any) -> dict[str, Any] | None:
        """The answer to a handshake the sender sends when its URL is set up, if this is one."""
        return None

    def _header(self, headers: Mapping[str, str]) -> str:
        value = (headers.get(self.header.lower()) or "").strip()
        if not value:
            raise WebhookSignatureInvalid(f"missing {self.header} header")
        return value


class SignaturePreset(Preset):
    """The platform's own scheme (and the default)."""

    name = "signature"
    header = "X-Signature"
    names_events = False

    def verify(self, *, secret, body, headers, now):
        return webhook_verify(secret=secret, body=body, header=headers.get("x-signature"),
                              now=now)


class GitHubPreset(Preset):
    name = "github"
    header = "X-Hub-Signature-256"
    unlisted_ignored = ("ping",)
    form_field = "payload"
    form_field_required = True

    def verify(self, *, secret, body, headers, now):
        value = self._header(headers)
        scheme, sep, digest = value.partition("=")
        if not sep or scheme != "sha256" or not digest:
            raise WebhookSignatureInvalid(
                f"malformed {self.header} header: expected sha256=HEX")
        if not _any_matches(_hmac_hex(secret.encode(), body), [digest.lower()]):
            raise WebhookSignatureInvalid(
                "signature does not match the body and the flow's secret")
        return None

    def event(self, *, payload, headers):
        return (headers.get("x-github-event") or "").strip()

    def delivery_id(self, *, payload, headers):
        return (headers.get("x-github-delivery") or "").strip()


class GitLabPreset(Preset):
    """GitLab sends the secret itself as a token (it signs nothing)."""

    name = "gitlab"
    header = "X-Gitlab-Token"

    def verify(self, *, secret, body, headers, now):
        token = self._header(headers)
        if not hmac.compare_digest(token.encode("utf-8", "replace"), secret.encode()):
            raise WebhookSignatureInvalid(f"{self.header} does not match the flow's secret")
        return None

    def event(self, *, payload, headers):
        return (headers.get("x-gitlab-event") or "").strip()

    def delivery_id(self, *, payload, headers):
        return ((headers.get("x-gitlab-event-uuid") or "").strip()
                or super().delivery_id(payload=payload, headers=headers))


class StripePreset(Preset):
    name = "stripe"
    header = "Stripe-Signature"

    def verify(self, *, secret, body, headers, now):
        pairs = _pairs(self._header(headers), self.header, "t=UNIX,v1=HEX")
        stamps = [value for key, value in pairs if key == "t"]
        candidates = [value.lower() for key, value in pairs if key == "v1"]
        if len(stamps) != 1 or not candidates:
            raise WebhookSignatureInvalid(
                f"malformed {self.header} header: expected t=UNIX,v1=HEX")
        timestamp = _timestamp(stamps[0], f"{self.header} t=", now)
        expected = _hmac_hex(secret.encode(), f"{timestamp}.".encode() + body)
        if not _any_matches(expected, candidates):
            raise WebhookSignatureInvalid(
                "no v1 signature matches the body and the flow's secret")
        return timestamp

    def event(self, *, payload, headers):
        return _dig(payload, "type")

    def delivery_id(self, *, payload, headers):
        return _dig(payload, "id")


class SlackPreset(Preset):
    name = "slack"
    header = "X-Slack-Signature"
    form_field = "payload"  # interactivity posts its JSON in `payload`; slash commands do not

    def verify(self, *, secret, body, headers, now):
        value = self._header(headers)
        timestamp = _timestamp(headers.get("x-slack-request-timestamp"),
                               "X-Slack-Request-Timestamp", now)
        version, sep, digest = value.partition("=")
        if not sep or version != "v0" or not digest:
            raise WebhookSignatureInvalid(f"malformed {self.header} header: expected v0=HEX")
        expected = _hmac_hex(secret.encode(), f"v0:{timestamp}:".encode() + body)
        if not _any_matches(expected, [digest.lower()]):
            raise WebhookSignatureInvalid(
                "signature does not match the body and the flow's secret")
        return timestamp

    def event(self, *, payload, headers):
        return _dig(payload, "event", "type") or _dig(payload, "type") or _dig(payload, "command")

    def delivery_id(self, *, payload, headers):
        return _dig(payload, "event_id")

    def challenge(self, *, payload):
        if _dig(payload, "type") == "url_verification":
            return {"challenge": payload.get("challenge")}
        return None


class StandardPreset(Preset):
    """Standard Webhooks (standardwebhooks.com), verified by its reference package."""

    name = "standard"
    header = "webhook-signature"

    def verify(self, *, secret, body, headers, now):
        value = self._header(headers)
        message_id = (headers.get("webhook-id") or "").strip()
        if not message_id:
            raise WebhookSignatureInvalid("missing webhook-id header")
        timestamp = _timestamp(headers.get("webhook-timestamp"), "webhook-timestamp", now)
        if not any(part.startswith("v1,") for part in value.split(" ")):
            raise WebhookSignatureInvalid(
                "malformed webhook-signature header: expected v1,BASE64 (space separated)")
        try:
            hook = Webhook(standard_key(secret))
            signed = hook.sign(message_id, datetime.fromtimestamp(timestamp, tz=UTC), body)
        except (ValueError, binascii.Error, TypeError):
            raise WebhookSignatureInvalid("the flow's secret is not a usable key") from None
        candidates = value.split(" ")
        if not _any_matches(signed, candidates):
            raise WebhookSignatureInvalid(
                "no v1 signature matches the body and the flow's secret")
        # The reference check too (same result; its own header parsing and timestamp rule).
        try:
            hook.verify(body, {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
                               "webhook-signature": value}, json_parse=False)
        except WebhookVerificationError as exc:
            raise WebhookSignatureInvalid(f"signature refused: {exc}") from None
        return timestamp

    def event(self, *, payload, headers):
        return _dig(payload, "type")

    def delivery_id(self, *, payload, headers):
        return (headers.get("webhook-id") or "").strip()


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the bytes a `whsec_` secret's base64
    encodes; a secret without the prefix is used as its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):], validate=True)
    return secret.encode()


PRESETS: dict[str, Preset] = {preset.name: preset for preset in (
    SignaturePreset(), GitHubPreset(), GitLabPreset(), StripePreset(), SlackPreset(),
    StandardPreset(),
)}


def webhook_sign(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The X-Signature header value for `body` (what a sender of the `signature` scheme
    computes; used by tests, docs and outbound notifications)."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={timestamp},v1={_hmac_hex(secret.encode(), f'{timestamp}.'.encode() + body)}"


def webhook_verify(*, secret: str, body: bytes, header: str | None,
                   now: float | None = None) -> int:
    """Check an X-Signature `header` for `body`; return its timestamp. Several `v1=` values
    are allowed (any one may match), so a sender can sign with an old and a new secret while
    rotating. Raises WebhookSignatureInvalid naming the failed check."""
    if not header or not header.strip():
        raise WebhookSignatureInvalid("missing X-Signature header")
    now = time.time() if now is None else now
    pairs = _pairs(header, "X-Signature", "t=UNIX,v1=HEX")
    stamps = [value for key, value in pairs if key == "t"]
    candidates = [value.lower() for key, value in pairs if key == "v1"]
    if len(stamps) != 1 or not candidates:
        raise WebhookSignatureInvalid("malformed X-Signature header: expected t=UNIX,v1=HEX")
    if not stamps[0].isascii() or not stamps[0].isdigit() or len(stamps[0]) > 12:
        raise WebhookSignatureInvalid(
            "malformed X-Signature header: t must be a UNIX time in seconds")
    timestamp = _timestamp(stamps[0], "X-Signature t=", now)
    expected = _hmac_hex(secret.encode(), f"{timestamp}.".encode() + body)
    if not _any_matches(expected, candidates):
        raise WebhookSignatureInvalid("signature does not match the body and the flow's secret")
    return timestamp
