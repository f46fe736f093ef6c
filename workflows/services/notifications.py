"""Notifications: telling people and systems that a run ended or that someone must decide.

A flow's `notify:` rules (`{on: [events], email: [...], webhook: URL}`) and an approval's
assignees are the audience. Sending goes through an outbox (`Notification` rows):

- `notify_event` writes the rows **in the caller's transaction** (the one that ends the run or
  requests the approval), so nothing is sent for a change that rolled back and nothing is lost
  if the process dies after the commit; the first try runs once that transaction commits.
- `notification_deliver` claims a row (a conditional UPDATE that also pushes its next try
  away, so the sweeper and the on-commit try never both send it), sends outside any
  transaction, then records the outcome: `sent`, or a retry time with backoff, or `failed`
  after `WF_NOTIFY_MAX_ATTEMPTS` tries. Each try is an Event on the run
  (`notification_sent` / `notification_failed`), with no secret in it: a webhook is named by
  its scheme and host only (chat webhook paths are credentials) and the signing secret never
  leaves this module.
- `notifications_send_due` is the periodic pass's share (`maintenance.sweep_all`).

A failure to notify never changes a run. Runs that end reach `run_ended`, which the engine
calls through `engine.on_run_ended` (registered in `WorkflowsConfig.ready`); it writes the rows
inside a savepoint and logs instead of raising, so a bug here cannot roll back a run's end.

Webhook bodies are Slack-compatible (`text`, `blocks`, both escaped for Slack: `&`, `<`, `>`)
plus structured fields (event, flow, run_id, status, admin_url, context). They are signed in the
Standard Webhooks format with the flow's own notification secret (never its webhook secret):
`webhook-id` and `webhook-timestamp` headers, and `X-Workflows-Notification-Signature:
v1,BASE64`, the HMAC-SHA256 of `ID.TIMESTAMP.BODY` — a header and a key inbound verification
never accepts, so a captured notification replayed to /hooks/ is a 401 (issue 25 H3).

Every webhook goes through the outbound policy (connections/outbound.py) at send time, on the
addresses its host resolves to, and may not point at this platform itself; a refusal gives up at
once. Redirects are not followed (a 3xx is a failed delivery). Recorded errors say "refused by
the outbound policy" or "delivery failed (HTTP status N)"; a transport error's own text is kept
only for a public address, so events never tell which internal ports answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook

from connections.crypto import encrypt_text
from connections.outbound import EVENT_HOOKS, OutboundRefused, is_internal, own_origin_problem
from workflows import engine
from workflows.definitions.base import NotifyEvent
from workflows.models import ActorKind, Flow, Notification, Run, new_notification_secret
from workflows.permissions import RELEASE_FLOW, require_permission
from workflows.services.history import flow_history_record
from workflows.states import (
    EventKind,
    FlowHistoryKind,
    NotificationChannel,
    NotificationStatus,
    RunStatus,
)

logger = logging.getLogger(__name__)

__all__ = [
    "SIGNATURE_HEADER",
    "notification_deliver",
    "notification_secret_rotate",
    "notification_sign",
    "notifications_send_due",
    "notify_event",
    "register_email_renderer",
    "run_ended",
]

SIGNATURE_HEADER = "X-Workflows-Notification-Signature"
MAX_BACKOFF_SECONDS = 3600
DUE_BATCH = 100
RUN_END_EVENTS = {RunStatus.COMPLETED: NotifyEvent.COMPLETED, RunStatus.FAILED: NotifyEvent.FAILED}
# Events whose chat message carries a "Review" button (the approval or request in the admin).
REVIEW_EVENTS = {NotifyEvent.APPROVAL_REQUESTED, NotifyEvent.PROMOTION_REQUESTED}
# Personal emails whose final text is made when sent (name → function(payload) → payload): the
# approvals app's decision links put their token in only then, so no outbox row holds one.
EMAIL_RENDERERS: dict[str, Any] = {}


def register_email_renderer(name: str, render: Any) -> None:
    """Called by an app's AppConfig.ready() (approvals: the decision links)."""
    EMAIL_RENDERERS[name] = render


# --- writing the outbox -------------------------------------------------------------------------


def notify_event(*, flow: Flow, event: str, run: Run | None = None, context: dict[str, Any],
                 definition: dict[str, Any] | None = None,
                 also_email: Sequence[str] = (),
                 personal: Sequence[dict[str, Any]] = ()) -> list[Notification]:
    """Write the notifications of `event` (a `NotifyEvent`) and try them after the commit.

    The rules are those of `definition`, else of the run's pinned definition, else of the
    flow's live release. `also_email` adds addresses (an approval's assignees) to the rules'
    ones; all addresses get one email, each distinct webhook URL one POST. `context` is
    JSON data shown in the message and sent in the webhook body (`step`, `message`,
    `instructions`, `version`, `requested_by`, `approval`, `admin_url` are understood).
    `personal` are emails written for one reader each (`{"to": address, "payload": {subject,
    body, html?, render?}}`: an approval's assignees with their own decision links); their
    addresses get only that email. Runs in the caller's transaction; returns the rows written
    (none when nobody listens).
    """
    if definition is None:
        if run is not None:
            definition = run.definition
        elif flow.live_version_id is not None:
            definition = flow.live_version.definition
        else:
            definition = {}
    emails: list[str] = []
    webhooks: list[str] = []
    for rule in definition.get("notify") or []:
        if event not in (rule.get("on") or []):
            continue
        emails += [a for a in rule.get("email") or [] if a not in emails]
        if rule.get("webhook") and rule["webhook"] not in webhooks:
            webhooks.append(rule["webhook"])
    emails += [a for a in also_email if a and a not in emails]
    personal_to = {p["to"] for p in personal}
    emails = [a for a in emails if a not in personal_to]
    if not emails and not webhooks and not personal:
        return []
    message = _message(flow=flow, event=event, run=run, context=context)
    rows = [Notification(flow=flow, run=run, event=event, channel=NotificationChannel.EMAIL,
                         target=p["to"], payload=p["payload"]) for p in personal]
    if emails:
        rows.append(Notification(
            flow=flow, run=run, event=event, channel=NotificationChannel.EMAIL,
            target=",".join(emails), payload=_email_payload(message)))
    for url in webhooks:
        rows.append(Notification(
            flow=flow, run=run, event=event, channel=NotificationChannel.WEBHOOK, target=url,
            payload=_webhook_payload(message)))
    for row in rows:
        row.save(force_insert=True)
    ids = [row.pk for row in rows]

    def first_try() -> None:
        for notification_id in ids:
            notification_deliver(notification_id=notification_id)

    transaction.on_commit(first_try)
    return rows


def run_ended(*, run: Run, from_status: str) -> None:
    """The engine's `on_run_ended` listener: a completed or failed run notifies its flow's
    rules. Never raises (a savepoint keeps a failure here out of the engine's transaction)."""
    event = RUN_END_EVENTS.get(run.status)
    if event is None:
        return
    try:
        rules = run.definition.get("notify")
        if not rules or not any(event in (r.get("on") or []) for r in rules):
            return
        error = run.error if run.status == RunStatus.FAILED else None
        context: dict[str, Any] = {"status": run.status}
        if isinstance(error, dict):
            context.update(step=error.get("step"), message=str(error.get("message", ""))[:1000])
        with transaction.atomic():
            notify_event(flow=Flow.objects.get(pk=run.flow_id), event=event, run=run,
                         context=context)
    except Exception:
        logger.exception("could not write the notifications of run %s", run.pk)


# --- messages -----------------------------------------------------------------------------------


def _absolute(path: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{path}"


def _message(*, flow: Flow, event: str, run: Run | None,
             context: dict[str, Any]) -> dict[str, Any]:
    """What every channel says: a one-line title, detail lines, the admin link and the
    structured fields of the webhook body."""
    label = f"run #{run.pk} of {flow.name}" if run is not None else flow.name
    if run is not None and run.is_rehearsal:
        label += " (draft rehearsal)"
    step = context.get("step")
    if event == NotifyEvent.FAILED:
        title = f"Failed: {label}" + (f" at step {step}" if step else "")
    elif event == NotifyEvent.COMPLETED:
        title = f"Completed: {label}"
    elif event == NotifyEvent.APPROVAL_REQUESTED:
        title = f"Approval requested: {label}" + (f", step {step}" if step else "")
    else:
        version = context.get("version")
        title = f"Promotion requested: {flow.name}" + (f" v{version}" if version else "")
        if context.get("requested_by"):
            title += f" by {context['requested_by']}"
    details = [str(context[k]) for k in ("message", "instructions", "comment") if context.get(k)]
    if context.get("admin_url"):
        admin_url = str(context["admin_url"])
    elif run is not None:
        admin_url = _absolute(reverse("admin:workflows_run_change", args=[run.pk]))
    else:
        admin_url = _absolute(reverse("admin:workflows_flow_change", args=[flow.pk]))
    return {
        "title": title[:300], "details": [d[:2000] for d in details], "admin_url": admin_url,
        "fields": {
            "event": event, "flow": flow.slug, "flow_name": flow.name,
            "run_id": run.pk if run is not None else None,
            "status": run.status if run is not None else None,
            "admin_url": admin_url, "at": timezone.now().isoformat(),
            "context": json.loads(json.dumps(context, default=str)),
        },
    }


def _email_payload(message: dict[str, Any]) -> dict[str, Any]:
    body = "\n\n".join([message["title"], *message["details"], message["admin_url"]])
    return {"subject": f"[workflows] {message['title']}"[:200], "body": body + "\n"}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _webhook_payload(message: dict[str, Any]) -> dict[str, Any]:
    # Escaped like `blocks`: a chat webhook reads `<!channel>`, `<!here>` and `<url|text>` in
    # the top-level text too (issue 25 L3).
    text = _slack_escape("\n".join([message["title"], *message["details"],
                                     message["admin_url"]]))
    mrkdwn = "\n".join([f"*{_slack_escape(message['title'])}*",
                        *(_slack_escape(d) for d in message["details"]),
                        f"<{message['admin_url']}|Open in the admin>"])
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn[:3000]}}]
    if message["fields"]["event"] in REVIEW_EVENTS:
        # A chat channel is not personal: the button opens the approval in the admin (sign-in
        # needed), never a decision link.
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "action_id": "review", "style": "primary",
            "text": {"type": "plain_text", "text": "Review"}, "url": message["admin_url"]}]})
    return {
        "text": text,
        "blocks": blocks,
        **message["fields"],
    }


# --- sending ------------------------------------------------------------------------------------


def target_label(notification: Notification) -> str:
    """How events name a target: the addresses of an email; only the scheme and host of a
    webhook (a chat webhook's path is its credential)."""
    if notification.channel == NotificationChannel.EMAIL:
        return notification.target
    parts = urlsplit(notification.target)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


def backoff(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: doubling, at most an hour."""
    return min(MAX_BACKOFF_SECONDS, settings.WF_NOTIFY_BACKOFF_SECONDS * 2 ** (attempts - 1))


def _claim(notification_id: int, now: datetime) -> Notification | None:
    """Take the row for one try if it is pending and due: attempts + 1 and the next try pushed
    past this one's worst case, in one conditional UPDATE (the loser of a race gets None)."""
    row = (Notification.objects.select_related("flow")
           .filter(pk=notification_id, status=NotificationStatus.PENDING,
                   next_attempt_at__lte=now).first())
    if row is None:
        return None
    lease = timedelta(seconds=settings.WF_NOTIFY_TIMEOUT_SECONDS * 4 + 60)
    claimed = Notification.objects.filter(
        pk=row.pk, status=NotificationStatus.PENDING, attempts=row.attempts,
    ).update(attempts=row.attempts + 1, next_attempt_at=now + lease)
    if not claimed:
        return None
    row.attempts += 1
    return row


def notification_sign(*, secret: str, notification_id: str, timestamp: datetime,
                      body: bytes) -> dict[str, str]:
    """The headers that sign `body` (Standard Webhooks: `ID.TIMESTAMP.BODY`, HMAC-SHA256 with
    the `whsec_` secret), the signature in SIGNATURE_HEADER rather than `webhook-signature`."""
    signature = Webhook(secret).sign(msg_id=notification_id, timestamp=timestamp,
                                     data=body.decode())
    return {"webhook-id": notification_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            SIGNATURE_HEADER: signature}


def notification_secret_rotate(*, flow: Flow, actor: Any = None) -> str:
    """Give the flow a new notification signing secret and return it (the only time it is
    shown: the receiver keeps it to verify SIGNATURE_HEADER). Needs the builder's release
    permission, like writing the notify rules. Recorded in the flow's history
    (`notification_secret_rotated`, never the secret)."""
    require_permission(actor, RELEASE_FLOW)
    secret = new_notification_secret()
    stored = encrypt_text(secret)
    with transaction.atomic():
        Flow.objects.filter(pk=flow.pk).update(notification_secret=stored)
        flow_history_record(flow=flow, kind=FlowHistoryKind.NOTIFICATION_SECRET_ROTATED,
                            actor=actor)
    flow.notification_secret = stored
    return secret


def _send(notification: Notification) -> None:
    """One try; raises with a message fit for an event (no URL path, no secret, no transport
    detail about an internal address)."""
    if notification.channel == NotificationChannel.EMAIL:
        payload = notification.payload
        if payload.get("render"):
            payload = EMAIL_RENDERERS[payload["render"]](payload)
        email = EmailMultiAlternatives(subject=payload["subject"], body=payload["body"],
                                       from_email=settings.DEFAULT_FROM_EMAIL,
                                       to=notification.target.split(","))
        if payload.get("html"):
            email.attach_alternative(payload["html"], "text/html")
        email.send()
        return
    url = notification.target
    reason = own_origin_problem(url)
    if reason:
        _refuse(notification, reason)
    body = json.dumps(notification.payload, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "workflows-notify",
               **notification_sign(secret=notification.flow.notification_signing_secret(),
                                   notification_id=f"wfn_{notification.pk}",
                                   timestamp=timezone.now(), body=body)}
    try:
        with httpx.Client(timeout=settings.WF_NOTIFY_TIMEOUT_SECONDS, follow_redirects=False,
                          event_hooks=EVENT_HOOKS) as client:
            response = client.post(url, content=body, headers=headers)
    except OutboundRefused as exc:
        _refuse(notification, exc.reason)
    except httpx.HTTPError as exc:
        parts = httpx.URL(url)
        if is_internal(parts.host, parts.port or (443 if parts.scheme == "https" else 80)):
            raise NotificationSendError(
                f"delivery failed (no HTTP answer: {type(exc).__name__}; details withheld: "
                "not a public address)") from None
        detail = str(exc).replace(url, target_label(notification))
        raise NotificationSendError(f"delivery failed ({type(exc).__name__}: {detail})") from None
    if not 200 <= response.status_code < 300:
        raise NotificationSendError(f"delivery failed (HTTP status {response.status_code})")


def _refuse(notification: Notification, reason: str) -> None:
    """Give up on a webhook the policy refuses: the reason (which may name resolved
    addresses) goes to the operator's log, the event only says it was refused."""
    logger.warning("notification %s to %s refused by the outbound policy: %s",
                   notification.pk, target_label(notification), reason)
    raise NotificationSendError("refused by the outbound policy; nothing was sent",
                                final=True)


class NotificationSendError(Exception):
    """A try failed; the message names what happened without a secret. `final`: another try
    would fail the same way (a refused destination), so none is made."""

    def __init__(self, message: str, *, final: bool = False):
        super().__init__(message)
        self.final = final


def notification_deliver(*, notification_id: int, now: datetime | None = None) -> str | None:
    """Try to send one notification if it is pending and due; record the outcome.

    Returns the row's new status (`sent`, `pending` for a retry later, `failed` once it gave
    up), or None when it was not due or another process took it. Never raises for a failed
    send. Call outside a transaction: the send is network I/O and holds no lock.
    """
    now = now or timezone.now()
    notification = _claim(notification_id, now)
    if notification is None:
        return None
    error, final = "", False
    try:
        _send(notification)
    except NotificationSendError as exc:
        error, final = str(exc), exc.final
    except Exception as exc:  # a mail server, DNS, or a secret no key opens
        error = f"{type(exc).__name__}: {exc}"[:1000]
        error = error.replace(notification.target, target_label(notification))
    done = max(now, timezone.now())  # the pass's clock when it runs ahead (tests, catch-up)
    data: dict[str, Any] = {
        "notification": notification.pk, "event": notification.event,
        "channel": notification.channel, "target": target_label(notification),
        "attempt": notification.attempts,
    }
    with transaction.atomic():
        if not error:
            status = NotificationStatus.SENT
            Notification.objects.filter(pk=notification.pk).update(
                status=status, sent_at=done, last_error="")
            kind, reason = EventKind.NOTIFICATION_SENT, f"{notification.channel} sent"
        else:
            gave_up = final or notification.attempts >= settings.WF_NOTIFY_MAX_ATTEMPTS
            status = NotificationStatus.FAILED if gave_up else NotificationStatus.PENDING
            retry_at = done + timedelta(seconds=backoff(notification.attempts))
            Notification.objects.filter(pk=notification.pk).update(
                status=status, last_error=error,
                next_attempt_at=done if gave_up else retry_at)
            data.update(error=error, gave_up=gave_up,
                        retry_at=None if gave_up else retry_at.isoformat())
            kind = EventKind.NOTIFICATION_FAILED
            reason = (f"{notification.channel} failed; gave up after {notification.attempts} tries"
                      if gave_up else f"{notification.channel} failed; retry at {retry_at:%H:%M:%S}")
        if notification.run_id is not None:
            engine.event_record(run_id=notification.run_id, kind=kind,
                                actor_kind=ActorKind.SYSTEM, reason=reason, data=data)
        elif error:
            logger.warning("notification %s (%s) failed: %s", notification.pk,
                           notification.event, error)
    return status


def notifications_send_due(*, now: datetime | None = None) -> int:
    """Try the pending notifications that are due (the periodic pass); returns how many were
    sent. Each is claimed on its own, so passes running at once never send one twice."""
    now = now or timezone.now()
    due = list(Notification.objects.filter(
        status=NotificationStatus.PENDING, next_attempt_at__lte=now,
    ).order_by("next_attempt_at").values_list("pk", flat=True)[:DUE_BATCH])
    sent = 0
    for notification_id in due:
        if notification_deliver(notification_id=notification_id, now=now) == NotificationStatus.SENT:
            sent += 1
    return sent
