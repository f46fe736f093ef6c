"""The `approval_requested` email, one per assignee, with that assignee's decision links.

`approval_request` (approvals/services.py) hands `approval_emails(...)` to `notify_event` as its
`personal` emails: each assignee (an active account with an address: the approval's users and
the members of its groups, or of the reviewers group when it names nobody) gets one email, HTML
and text, with the instructions, the values shown to the reviewer (rendered like the admin's
card, by the same template filters), the run's summary, and — unless `WF_DECISION_LINKS` is
off — Approve and Reject links that open `approvals/views.decision_page`.

Tokens. A link's token is HMAC-SHA256(SECRET_KEY, nonce) over a random 128-bit nonce; the
`DecisionLink` row keeps the nonce and the token's SHA-256 only. The outbox row (a
`Notification`) holds the email with a placeholder where the token goes; the token is put in by
`render_links` when the email is sent (notifications' renderer hook), so neither table holds a
token, and a retried send writes the same links. Rotating SECRET_KEY voids outstanding links,
as it voids callback URLs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from approvals.models import Approval, DecisionLink
from approvals.selectors import REVIEWERS_GROUP
from workflows.models import Run
from workflows.services.notifications import register_email_renderer

RENDERER = "approvals.decision_links"
TOKEN_PLACEHOLDER = "__WF_DECISION_TOKEN__"
MAX_TOKEN_LENGTH = 100
SHOWN_MAX_CHARS = 20_000


def decision_token(nonce: str) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"wf-decision:{nonce}".encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def decision_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def decision_url(approval_id: int, token: str, action: str = "") -> str:
    path = reverse("approvals:decide", args=[approval_id, token])
    return settings.PUBLIC_BASE_URL + path + (f"?action={action}" if action else "")


def link_expiry(approval: Approval) -> Any:
    """`WF_DECISION_LINK_TTL_HOURS` from now, or the approval's timeout if that comes first."""
    expires = timezone.now() + timedelta(hours=settings.WF_DECISION_LINK_TTL_HOURS)
    if approval.timeout_at is not None and approval.timeout_at < expires:
        return approval.timeout_at
    return expires


def approval_assignee_users(*, approval: Approval) -> list[Any]:
    """Who may decide `approval` and can be mailed: its users and the members of its groups
    (the reviewers group when it names nobody); active accounts with an address, by username."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    if approval.for_reviewers:
        users = users.filter(groups__name=REVIEWERS_GROUP)
    else:
        users = users.filter(Q(pk__in=approval.assignee_users.values("pk"))
                             | Q(groups__in=approval.assignee_groups.values("pk")))
    return list(users.distinct().order_by("username"))


def shown_texts(data: Any) -> list[tuple[str, str]]:
    """The values shown to the reviewer as (label, text): text as it is (a diff stays
    readable), anything else as indented JSON; each cut at SHOWN_MAX_CHARS."""
    items = list(data.items()) if isinstance(data, dict) else ([("", data)] if data else [])
    shown = []
    for label, value in items:
        text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str,
                                                                ensure_ascii=False)
        if len(text) > SHOWN_MAX_CHARS:
            text = text[:SHOWN_MAX_CHARS] + f"\n… ({len(text):,} characters; the admin shows all)"
        shown.append((str(label), text))
    return shown


def approval_emails(*, approval: Approval, run: Run, step_key: str,
                    admin_url: str) -> list[dict[str, Any]]:
    """The personal emails of `approval` (for `notify_event(personal=...)`), one per assignee,
    minting a `DecisionLink` for each when links are on. Runs in the caller's transaction."""
    links_on = settings.WF_DECISION_LINKS
    title = f"Approval requested: run #{run.pk} of {run.flow.name}, step {step_key}"
    base = {
        "title": title, "approval": approval, "run": run, "step_key": step_key,
        "admin_url": admin_url, "shown": shown_texts(approval.data),
    }
    emails = []
    for user in approval_assignee_users(approval=approval):
        context = {**base, "user": user, "links": links_on}
        payload: dict[str, Any] = {"subject": f"[workflows] {title}"[:200]}
        if links_on:
            nonce = secrets.token_urlsafe(16)
            link = DecisionLink.objects.create(
                approval=approval, user=user, nonce=nonce,
                token_hash=decision_token_hash(decision_token(nonce)),
                expires_at=link_expiry(approval))
            context.update(
                expires_at=link.expires_at,
                approve_url=decision_url(approval.pk, TOKEN_PLACEHOLDER, "approve"),
                reject_url=decision_url(approval.pk, TOKEN_PLACEHOLDER, "reject"))
            payload.update(render=RENDERER, link=link.pk)
        payload["body"] = render_to_string("approvals/email/approval_requested.txt", context)
        payload["html"] = render_to_string("approvals/email/approval_requested.html", context)
        emails.append({"to": user.email, "payload": payload})
    return emails


def render_links(payload: dict[str, Any]) -> dict[str, Any]:
    """The notifications renderer: put the link's token where the placeholder is. A link that
    no longer exists (its run pruned) leaves an email that cannot be sent: it raises."""
    link = DecisionLink.objects.get(pk=payload["link"])
    token = decision_token(link.nonce)
    return {**payload, "body": payload["body"].replace(TOKEN_PLACEHOLDER, token),
            "html": payload.get("html", "").replace(TOKEN_PLACEHOLDER, token)}


register_email_renderer(RENDERER, render_links)
