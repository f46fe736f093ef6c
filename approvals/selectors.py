"""Reading approvals: who may decide what. The inbox, the API and the decision services share
this rule, so a list never shows what its reader cannot decide, and the other way round."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast

from approvals.models import Approval, ApprovalKind, ApprovalStatus
from workflows.models import Flow
from workflows.permissions import VIEW_APPROVAL, has_permission

REVIEWERS_GROUP = "reviewers"


def approvals_decidable(*, user: Any) -> QuerySet[Approval]:
    """The approvals `user` may decide, whatever their status: all of them for a superuser;
    otherwise those naming the user or one of the user's groups (the accounts and groups that
    existed when the approval was requested), and, for members of the reviewers group, those
    whose step named nobody."""
    approvals = Approval.objects.all()
    if user is None or not getattr(user, "is_active", False):
        return approvals.none()
    if user.is_superuser:
        return approvals
    return approvals.filter(pk__in=Approval.objects.filter(_assigned(user)).values("pk"))


def _assigned(user: Any) -> Q:
    """Approvals naming `user` or one of the user's groups, and, for members of the reviewers
    group, those whose step named nobody."""
    groups = dict(user.groups.values_list("id", "name"))
    condition = Q(assignee_users=user) | Q(assignee_groups__in=list(groups))
    if REVIEWERS_GROUP in groups.values():
        condition |= Q(for_reviewers=True)
    return condition


def approval_readable(*, approval: Approval, actor: Any) -> bool:
    """Who reads one approval (a step's or a promotion request), in the admin and the API
    alike: whoever may decide it, whoever decided it, whoever requested it (a promotion
    request's requester), and the roles that read approvals (`approvals.view_approval`:
    operators, reviewers, support; superusers). A builder who is none of these does not: a
    promotion request lays out a release's changes before a second person approved them, and
    the request is no run the builder's view of runs covers."""
    if actor is None or not getattr(actor, "is_active", False):
        return False
    if has_permission(actor, VIEW_APPROVAL):
        return True
    if actor.pk is not None and actor.pk in (approval.requested_by_id,
                                             approval.decision_actor_id):
        return True
    return approvals_decidable(user=actor).filter(pk=approval.pk).exists()


def approval_ids_decidable_pending(*, actor: Any) -> set[int]:
    """The ids of the pending approvals `actor` may decide."""
    return set(approvals_decidable(user=actor).filter(status=ApprovalStatus.PENDING)
               .values_list("pk", flat=True))


def approval_ids_assigned_pending(*, actor: Any) -> set[int]:
    """The ids of the pending approvals assigned to `actor` ("Waiting for me"): as
    `approvals_decidable` without the superuser's power to decide every approval, which does
    not make every approval theirs (issue 24). Two queries."""
    if actor is None or not getattr(actor, "is_active", False):
        return set()
    return set(Approval.objects.filter(_assigned(actor), status=ApprovalStatus.PENDING)
               .values_list("pk", flat=True).distinct())


def approvals_pending_count() -> int:
    """How many approvals wait for a decision, whoever they are assigned to."""
    return Approval.objects.filter(status=ApprovalStatus.PENDING).count()


DECIDED_STATUSES = tuple(s for s in ApprovalStatus.values if s != ApprovalStatus.PENDING)
NOBODY = "system"  # the decider filter's value for decisions no person took (timeouts, cancels)


@dataclass(frozen=True)
class InboxFilter:
    """The inbox's filters, from its GET parameters: flow slug, decision status (decided
    approvals only), decider's username (or NOBODY), and free text `q`."""

    flow: str = ""
    status: str = ""
    decider: str = ""
    q: str = ""

    @property
    def active(self) -> bool:
        return bool(self.flow or self.status or self.decider or self.q)


def _an_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18


def approvals_filter(approvals: QuerySet[Approval], *, filters: InboxFilter) -> QuerySet[Approval]:
    """Narrow `approvals` by `filters`. `q` matches an approval id ("A12", "12") or run id, and
    (case-insensitive) the instructions, the comment, the step key, the flow's slug or name,
    the decider's username and the data shown to the reviewer."""
    if filters.flow:
        approvals = approvals.filter(flow__slug=filters.flow)
    if filters.status:
        approvals = approvals.filter(status=filters.status)
    if filters.decider == NOBODY:
        approvals = approvals.filter(decision_actor__isnull=True)
    elif filters.decider:
        approvals = approvals.filter(decision_actor__username=filters.decider)
    text = filters.q.strip()
    if text:
        match = (Q(instructions__icontains=text) | Q(comment__icontains=text)
                 | Q(step_run__key__icontains=text) | Q(flow__slug__icontains=text)
                 | Q(flow__name__icontains=text)
                 | Q(decision_actor__username__icontains=text)
                 | Q(data_text__icontains=text))
        number = text[1:] if text[:1] in ("A", "a") else text
        if _an_id(number):  # ASCII digits within a bigint: "²" and 5,000 digits were a 500
            match |= Q(pk=int(number))
            if _an_id(text):
                match |= Q(run_id=int(text))
        approvals = approvals.annotate(data_text=Cast("data", TextField())).filter(match)
    return approvals


def approvals_pending(*, ids: set[int] | None = None, limit: int,
                      filters: InboxFilter | None = None) -> list[Approval]:
    """Pending approvals, oldest first, with what their cards show joined; only `ids` when
    given, narrowed by `filters` (its status and decider do not apply to pending ones)."""
    pending = (
        Approval.objects.filter(status=ApprovalStatus.PENDING)
        .select_related("run", "run__flow", "run__version", "step_run", "flow", "version",
                        "requested_by")
        .order_by("created_at", "id")
    )
    if ids is not None:
        pending = pending.filter(pk__in=ids)
    if filters is not None:
        pending = approvals_filter(
            pending, filters=InboxFilter(flow=filters.flow, q=filters.q))
    return list(pending[:limit])


def approvals_decided(*, actor: Any | None = None,
                      filters: InboxFilter | None = None) -> QuerySet[Approval]:
    """Decided approvals, newest decision first (only those `actor` decided, when given),
    narrowed by `filters`, for a paginator."""
    decided = (
        Approval.objects.exclude(status=ApprovalStatus.PENDING)
        .select_related("run", "run__flow", "step_run", "decision_actor", "flow", "version")
        .order_by("-decided_at", "-id")
    )
    if actor is not None:
        decided = decided.filter(decision_actor=actor)
    if filters is not None:
        decided = approvals_filter(decided, filters=filters)
    return decided


def inbox_filter_choices(*, actor: Any | None = None) -> dict[str, list[str]]:
    """What the inbox's filter menus offer: the slugs of flows with approvals, and the
    usernames of those who decided some (only `actor` when given: a reviewer who may not see
    every decision). Two queries."""
    flows = list(Flow.objects.filter(pk__in=Approval.objects.values("flow_id"))
                 .order_by("slug").values_list("slug", flat=True))
    deciders = get_user_model().objects.filter(
        pk__in=Approval.objects.filter(decision_actor__isnull=False).values("decision_actor"))
    if actor is not None:
        deciders = deciders.filter(pk=actor.pk)
    return {"flows": flows,
            "deciders": list(deciders.order_by("username").values_list("username", flat=True))}


def approval_get(*, approval_id: int) -> Approval | None:
    """One approval with its run, flow, version, step run and decider joined."""
    return (
        Approval.objects.select_related("run", "run__flow", "run__version", "step_run",
                                        "decision_actor", "flow", "version", "requested_by")
        .filter(pk=approval_id).first()
    )


def approval_get_for_decision(*, approval_id: int) -> Approval | None:
    return (Approval.objects.select_related("run", "step_run", "flow", "version")
            .filter(pk=approval_id).first())


def approvals_pending_for_run(*, run: Any) -> list[Approval]:
    return list(
        Approval.objects.filter(run=run, status=ApprovalStatus.PENDING)
        .select_related("step_run").order_by("id")
    )


def approvals_pending_for_step(*, step_run: Any) -> list[Approval]:
    return list(Approval.objects.filter(step_run=step_run, status=ApprovalStatus.PENDING))


def promotion_request_pending(*, flow: Any) -> Approval | None:
    """The flow's pending promotion request (at most one), with its version."""
    return (Approval.objects.filter(flow=flow, kind=ApprovalKind.PROMOTION,
                                    status=ApprovalStatus.PENDING)
            .select_related("version", "requested_by").first())


def approval_assignee_emails(*, approval: Approval) -> list[str]:
    """The addresses of who may decide `approval`: its users and the members of its groups
    (the reviewers group when it names nobody); active accounts with an address only."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    if approval.for_reviewers:
        users = users.filter(groups__name=REVIEWERS_GROUP)
    else:
        users = users.filter(
            Q(pk__in=approval.assignee_users.values("pk"))
            | Q(groups__in=approval.assignee_groups.values("pk")))
    return sorted(set(users.values_list("email", flat=True)))


def approvals_queryset() -> QuerySet[Approval]:
    """Approvals of both kinds with what their API document shows (run and flow, step,
    decider, version, requester) joined: one query a page."""
    return Approval.objects.select_related("run__flow", "step_run", "decision_actor", "flow",
                                           "version", "requested_by")
