"""Deciding from the email: the decision links' service (the page is `approvals/views.py`).

A link (`DecisionLink`, minted by `approvals/emails.py`) is bound to one approval and one
assignee. Opening it (GET) only reads (`decision_link_open`); mail scanners open links. A
decision is a POST (`decision_link_decide`), taken through the same `approval_approve` /
`approval_reject` as the admin, the API and the CLI, with the link's user as the actor; the
event of the decision carries `data.via = "email"` (and the link's id).

Refusals are typed errors with their status (never a decision, never a 500):
- unknown, altered or another approval's token, or links turned off (`WF_DECISION_LINKS`): 404;
- the user is no longer an assignee, or is inactive: 403;
- the link was used, or the approval was decided by anyone: 409;
- the link expired (with its approval, or after `WF_DECISION_LINK_TTL_HOURS`): 410.
A used, expired or decided link still names the approval, so the page can say who decided
what and when (`DecisionLinkRefused.link`).

Locks: the link's row first (so two POSTs of one link serialize and the second sees it used),
then the run and the approval inside the decision service, in their usual order. Nothing else
locks a link, so no cycle.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from approvals.emails import MAX_TOKEN_LENGTH, decision_token_hash
from approvals.models import ApprovalKind, ApprovalStatus, DecisionLink
from approvals.services import approval_approve, approval_can_decide, approval_reject
from workflows.errors import WorkflowError
from workflows.models import Event
from workflows.states import EventKind

DECISIONS = {"approve": (approval_approve, EventKind.APPROVAL_APPROVED, "approved"),
             "reject": (approval_reject, EventKind.APPROVAL_REJECTED, "rejected")}
VIA = "email"


class DecisionLinkRefused(WorkflowError):
    """A link that cannot decide (any more). `link` is set when the token was genuine."""

    code = "decision_link_refused"
    http_status = 400

    def __init__(self, message: str, *, link: DecisionLink | None = None) -> None:
        super().__init__(message)
        self.link = link


class DecisionLinkUnknown(DecisionLinkRefused):
    code = "decision_link_unknown"
    http_status = 404


class DecisionLinkNotAllowed(DecisionLinkRefused):
    code = "decision_link_not_allowed"
    http_status = 403


class DecisionLinkUsed(DecisionLinkRefused):
    code = "decision_link_used"
    http_status = 409


class DecisionLinkExpired(DecisionLinkRefused):
    code = "decision_link_expired"
    http_status = 410


def _find(*, approval_id: int, token: str, lock: bool = False) -> DecisionLink:
    """The link of `token` for approval `approval_id`, looked up by the token's hash (compared
    again in constant time); a token for another approval is unknown here."""
    if not settings.WF_DECISION_LINKS:
        raise DecisionLinkUnknown("Decision links are turned off here: sign in to decide.")
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise DecisionLinkUnknown("This link is not valid.")
    digest = decision_token_hash(token)
    links = DecisionLink.objects.select_related(
        "user", "approval", "approval__run", "approval__run__flow", "approval__run__version",
        "approval__step_run", "approval__decision_actor")
    if lock:
        links = links.select_for_update(of=("self",))
    link = links.filter(token_hash=digest).first()
    if link is None or not hmac.compare_digest(link.token_hash, digest) \
            or link.approval_id != approval_id or link.approval.kind != ApprovalKind.STEP:
        raise DecisionLinkUnknown("This link is not valid: it may have been altered or cut "
                                  "short. Open the link from the email again.")
    return link


def _check(link: DecisionLink, now: Any) -> None:
    """Raise unless `link` may decide now."""
    approval = link.approval
    if link.used_at is not None:
        raise DecisionLinkUsed("This link was already used.", link=link)
    if approval.status == ApprovalStatus.EXPIRED:
        raise DecisionLinkExpired("This approval has expired: nobody decided in time.", link=link)
    if approval.status != ApprovalStatus.PENDING:
        raise DecisionLinkUsed(f"This approval is already {approval.status}.", link=link)
    if link.expires_at <= now or (approval.timeout_at is not None and approval.timeout_at <= now):
        raise DecisionLinkExpired("This link has expired.", link=link)
    if not link.user.is_active:
        raise DecisionLinkNotAllowed("Your account is inactive.", link=link)
    if not approval_can_decide(approval=approval, actor=link.user):
        raise DecisionLinkNotAllowed("You are no longer an assignee of this approval.", link=link)


def decision_link_open(*, approval_id: int, token: str) -> DecisionLink:
    """The link, when it may decide now (GET: reads only). Raises DecisionLinkRefused."""
    link = _find(approval_id=approval_id, token=token)
    _check(link, timezone.now())
    return link


def decision_link_decide(*, approval_id: int, token: str, decision: str,
                         comment: str = "") -> DecisionLink:
    """Approve or reject through the link, as its user; the link is used up in the same
    transaction. Raises DecisionLinkRefused (nothing decided) or the decision service's own
    refusal (a lost race with another decider: 409)."""
    if decision not in DECISIONS:
        raise DecisionLinkRefused("Choose approve or reject.")
    service, kind, done = DECISIONS[decision]
    with transaction.atomic():
        link = _find(approval_id=approval_id, token=token, lock=True)
        now = timezone.now()
        _check(link, now)
        service(approval=link.approval, actor=link.user, comment=comment[:5000])
        # The decision's event says how it was taken. Written by the decision service in this
        # transaction, so this is the event as committed, not an edit of history.
        event = (Event.objects.filter(run_id=link.approval.run_id,
                                      step_run_id=link.approval.step_run_id, kind=kind)
                 .order_by("-id").first())
        if event is not None:
            event.data = {**(event.data or {}), "via": VIA, "decision_link": link.pk}
            event.save(update_fields=["data"])
        DecisionLink.objects.filter(pk=link.pk, used_at__isnull=True).update(
            used_at=now, decision=done)
        link.used_at, link.decision = now, done
        link.approval.refresh_from_db()
    return link
