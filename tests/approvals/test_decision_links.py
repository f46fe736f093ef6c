"""Deciding from the email: one email per assignee with Approve/Reject links, a page that needs
no session where only the POST decides, single-use tokens bound to one approval and one
assignee, and every refusal a clear page with a 4xx."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import Client
from django.utils import timezone

from approvals.emails import decision_token_hash
from approvals.models import Approval, ApprovalStatus, DecisionLink
from approvals.services import approval_approve
from tests.factories import approval_definition, drain, start, steps_of
from workflows.models import Event, Notification

pytestmark = pytest.mark.django_db

LINK = re.compile(r"(http://[^\s\"<]+/approvals/(\d+)/decide/([A-Za-z0-9_-]+)/)\?action=(approve|reject)")


@pytest.fixture
def reviewers():
    group = Group.objects.get(name="reviewers")
    users = {}
    for name in ("rita", "tom"):
        users[name] = User.objects.create_user(name, email=f"{name}@example.com")
        users[name].groups.add(group)
    return users


def requested(captured, definition=None, slug="simple"):
    definition = definition or approval_definition()
    definition["slug"] = slug
    definition["steps"][2]["show"] = ["{{ steps.agent.output.from }}"]
    with captured(execute=True):
        run = start(definition)
        drain()
    run.refresh_from_db()
    return run, Approval.objects.get(run=run)


def links_of(message) -> dict[str, str]:
    """action → path of the links in one email's text body."""
    return {m.group(4): urlsplit(m.group(1)).path for m in LINK.finditer(message.body)}


def email_to(address):
    return next(m for m in mail.outbox if m.to == [address])


def csrf_post(client: Client, path: str, **data):
    """GET the page (it sets the CSRF cookie), then POST its form with the cookie's token, as a
    browser does."""
    client.get(path)
    token = client.cookies["csrftoken"].value
    return client.post(path, {"csrfmiddlewaretoken": token, **data})


def test_each_assignee_gets_an_email_with_own_links_instructions_and_shown_values(
        django_capture_on_commit_callbacks, reviewers):
    run, approval = requested(django_capture_on_commit_callbacks)
    assert sorted(m.to[0] for m in mail.outbox) == ["rita@example.com", "tom@example.com"]
    rita, tom = email_to("rita@example.com"), email_to("tom@example.com")
    assert rita.subject == f"[workflows] Approval requested: run #{run.pk} of Simple, step review"
    for message in (rita, tom):
        assert "Ship a.tgz?" in message.body
        assert "steps.agent.output.from" in message.body and "a.tgz" in message.body
        html = message.alternatives[0][0]
        assert message.alternatives[0][1] == "text/html"
        assert 'data-action="approve"' in html and 'data-action="reject"' in html
        assert "Ship a.tgz?" in html and "steps.agent.output.from" in html
        assert f"/admin/approvals/approval/{approval.pk}/change/" in message.body
    assert links_of(rita)["approve"] != links_of(tom)["approve"]
    assert links_of(rita)["approve"] == links_of(rita)["reject"]
    # Stored hashed: no token in the link rows nor in the outbox.
    token = links_of(rita)["approve"].rstrip("/").rsplit("/", 1)[1]
    link = DecisionLink.objects.get(token_hash=decision_token_hash(token))
    assert link.user.username == "rita" and link.approval_id == approval.pk
    assert token not in str(list(DecisionLink.objects.values()))
    assert token not in str(list(Notification.objects.values()))
    assert link.expires_at <= timezone.now() + timedelta(hours=72)


def test_opening_the_link_decides_nothing_and_the_post_decides_as_the_assignee(
        django_capture_on_commit_callbacks, reviewers):
    run, approval = requested(django_capture_on_commit_callbacks)
    path = links_of(email_to("rita@example.com"))["approve"]
    client = Client()
    page = client.get(path + "?action=approve")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-action="approve"' in html and 'data-action="reject"' in html
    assert "Ship a.tgz?" in html and "steps.agent.output.from" in html and "a.tgz" in html
    assert f"run #{run.pk}" in html and 'name="comment"' in html
    assert client.head(path).status_code == 200
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING  # scanners open links: nothing decided

    with django_capture_on_commit_callbacks(execute=True):
        done = csrf_post(client, path, decision="approve", comment="from my phone")
    assert done.status_code == 200
    assert 'data-action="approve"' not in done.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.decision_actor.username == "rita" and approval.comment == "from my phone"
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["review"].output["actor"] == "rita"
    event = Event.objects.get(run=run, kind="approval_approved")
    assert event.actor == "rita" and event.data["via"] == "email"
    assert event.data["approval"] == approval.pk


def test_reject_through_the_link_fails_the_run(django_capture_on_commit_callbacks, reviewers):
    run, approval = requested(django_capture_on_commit_callbacks)
    path = links_of(email_to("tom@example.com"))["reject"]
    assert csrf_post(Client(), path, decision="reject", comment="no").status_code == 200
    run.refresh_from_db()
    assert run.status == "failed"
    event = Event.objects.get(run=run, kind="approval_rejected")
    assert event.actor == "tom" and event.data["via"] == "email"


def test_a_used_link_or_a_replayed_post_shows_who_decided_and_has_no_buttons(
        django_capture_on_commit_callbacks, reviewers):
    run, approval = requested(django_capture_on_commit_callbacks)
    rita_path = links_of(email_to("rita@example.com"))["approve"]
    tom_path = links_of(email_to("tom@example.com"))["approve"]
    client = Client()
    assert csrf_post(client, rita_path, decision="approve", comment="ok").status_code == 200
    token = client.cookies["csrftoken"].value
    replay = client.post(rita_path, {"csrfmiddlewaretoken": token, "decision": "reject"})
    assert replay.status_code == 409
    html = replay.content.decode()
    assert "already used" in html and "rita" in html and "data-decided-at" in html
    assert 'data-action="approve"' not in html and 'data-action="reject"' not in html
    assert client.get(rita_path).status_code == 409
    # Tom's link: the approval was decided by someone else.
    other = Client().get(tom_path)
    assert other.status_code == 409
    assert "already approved" in other.content.decode() and "rita" in other.content.decode()
    assert 'data-action="reject"' not in other.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED and approval.comment == "ok"
    assert Event.objects.filter(run=run, kind__in=["approval_approved",
                                                    "approval_rejected"]).count() == 1


def test_a_link_of_an_approval_decided_in_the_admin_is_spent(
        django_capture_on_commit_callbacks, reviewers):
    run, approval = requested(django_capture_on_commit_callbacks)
    path = links_of(email_to("tom@example.com"))["approve"]
    approval_approve(approval=approval, actor=reviewers["rita"], comment="in the admin")
    response = csrf_post(Client(), path, decision="reject")
    assert response.status_code == 409 and "rita" in response.content.decode()


@pytest.mark.parametrize("alter", [
    lambda p: p.replace("/decide/", "/decide/x"),            # altered token
    lambda p: p[:-6] + "/",                                   # cut short
    lambda p: re.sub(r"/approvals/\d+/", "/approvals/999999/", p),  # another approval's id
    lambda p: p.rsplit("/", 2)[0] + "/" + "A" * 500 + "/",   # absurdly long
])
def test_a_forged_or_altered_link_is_a_404_page_and_decides_nothing(
        django_capture_on_commit_callbacks, reviewers, alter):
    run, approval = requested(django_capture_on_commit_callbacks)
    path = alter(links_of(email_to("rita@example.com"))["approve"])
    client = Client()
    assert client.get(path).status_code == 404
    response = csrf_post(client, path, decision="approve")
    assert response.status_code == 404
    assert "not valid" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_a_link_for_another_approval_does_not_decide_this_one(
        django_capture_on_commit_callbacks, reviewers):
    run1, first = requested(django_capture_on_commit_callbacks)
    first_path = links_of(email_to("rita@example.com"))["approve"]
    mail.outbox.clear()
    run2, second = requested(django_capture_on_commit_callbacks, slug="other")
    token = first_path.rstrip("/").rsplit("/", 1)[1]
    crossed = f"/approvals/{second.pk}/decide/{token}/"
    assert csrf_post(Client(), crossed, decision="approve").status_code == 404
    for approval in (first, second):
        approval.refresh_from_db()
        assert approval.status == ApprovalStatus.PENDING


def test_no_csrf_token_is_a_403_and_the_link_stays_usable(
        django_capture_on_commit_callbacks, reviewers):
    run, approval = requested(django_capture_on_commit_callbacks)
    path = links_of(email_to("rita@example.com"))["approve"]
    forged = Client(enforce_csrf_checks=True).post(path, {"decision": "approve"})
    assert forged.status_code == 403
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    client = Client(enforce_csrf_checks=True)
    assert csrf_post(client, path, decision="approve").status_code == 200


def test_an_unknown_decision_is_a_400_and_decides_nothing(
        django_capture_on_commit_callbacks, reviewers):
    run, approval = requested(django_capture_on_commit_callbacks)
    path = links_of(email_to("rita@example.com"))["approve"]
    assert csrf_post(Client(), path, decision="redo").status_code == 400
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert csrf_post(Client(), path, decision="approve").status_code == 200


def test_an_expired_link_is_a_410_page(django_capture_on_commit_callbacks, reviewers):
    run, approval = requested(django_capture_on_commit_callbacks)
    path = links_of(email_to("rita@example.com"))["approve"]
    DecisionLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = csrf_post(Client(), path, decision="approve")
    assert response.status_code == 410 and "expired" in response.content.decode()
    assert 'data-action="approve"' not in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_links_expire_with_the_approval_or_after_the_ttl(
        django_capture_on_commit_callbacks, reviewers, settings):
    definition = approval_definition()
    definition["steps"][2]["timeout_seconds"] = 3600
    run, approval = requested(django_capture_on_commit_callbacks, definition)
    assert {link.expires_at for link in DecisionLink.objects.all()} == {approval.timeout_at}
    mail.outbox.clear()
    settings.WF_DECISION_LINK_TTL_HOURS = 0.5
    definition["steps"][2]["timeout_seconds"] = 86400
    run, approval = requested(django_capture_on_commit_callbacks, definition, slug="other")
    for link in DecisionLink.objects.filter(approval=approval):
        assert link.expires_at < approval.timeout_at
        assert link.expires_at <= timezone.now() + timedelta(minutes=30)


def test_a_removed_assignee_and_an_inactive_user_are_refused(
        django_capture_on_commit_callbacks, reviewers):
    run, approval = requested(django_capture_on_commit_callbacks)
    rita_path = links_of(email_to("rita@example.com"))["approve"]
    tom_path = links_of(email_to("tom@example.com"))["approve"]
    reviewers["rita"].groups.clear()
    reviewers["tom"].is_active = False
    reviewers["tom"].save()
    response = csrf_post(Client(), rita_path, decision="approve")
    assert response.status_code == 403 and "no longer an assignee" in response.content.decode()
    response = csrf_post(Client(), tom_path, decision="approve")
    assert response.status_code == 403 and "inactive" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_links_turned_off(django_capture_on_commit_callbacks, reviewers, settings):
    settings.WF_DECISION_LINKS = False
    run, approval = requested(django_capture_on_commit_callbacks)
    message = email_to("rita@example.com")
    assert not LINK.search(message.body) and "/decide/" not in message.alternatives[0][0]
    assert "Ship a.tgz?" in message.body
    assert not DecisionLink.objects.exists()
    # A link mailed before they were turned off stops working.
    settings.WF_DECISION_LINKS = True
    mail.outbox.clear()
    run, approval = requested(django_capture_on_commit_callbacks, slug="other")
    path = links_of(email_to("rita@example.com"))["approve"]
    settings.WF_DECISION_LINKS = False
    response = csrf_post(Client(), path, decision="approve")
    assert response.status_code == 404 and "turned off" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_the_rule_addresses_get_the_plain_email_without_links(
        django_capture_on_commit_callbacks, reviewers):
    definition = approval_definition()
    definition["notify"] = [{"on": ["approval_requested"],
                             "email": ["audit@example.com", "rita@example.com"]}]
    run, approval = requested(django_capture_on_commit_callbacks, definition)
    assert sorted(m.to[0] for m in mail.outbox) == [
        "audit@example.com", "rita@example.com", "tom@example.com"]
    assert "/decide/" not in email_to("audit@example.com").body
    assert "/decide/" in email_to("rita@example.com").body


def test_a_link_of_an_approval_that_timed_out_is_a_410_page(
        django_capture_on_commit_callbacks, reviewers):
    from workflows.engine import sweeper

    definition = approval_definition()
    definition["steps"][2]["timeout_seconds"] = 60
    run, approval = requested(django_capture_on_commit_callbacks, definition)
    path = links_of(email_to("rita@example.com"))["approve"]
    sweeper.sweep(now=timezone.now() + timedelta(minutes=5))
    response = csrf_post(Client(), path, decision="approve")
    assert response.status_code == 410 and "expired" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.EXPIRED and approval.decision_actor is None
