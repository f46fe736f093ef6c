"""Notifications: the outbox written with the run's end or the approval request, email through
Django's locmem backend, a signed webhook to a real HTTP server on 127.0.0.1, retries with
backoff by the periodic pass, and events on the run without secrets."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.utils import timezone
from standardwebhooks import Webhook

from approvals.models import Approval
from tests.factories import approval_definition, drain, make_flow, simple_definition, start
from workflows.models import Event, Notification, Run
from workflows.services import notifications
from workflows.services.maintenance import sweep_all
from workflows.services.notifications import notify_event

pytestmark = pytest.mark.django_db


class Receiver:
    """A threaded HTTP server that records each POST and answers the next status in
    `statuses` (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": body})
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 \
                    else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN-SECRET-PATH"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver_factory():
    made: list[Receiver] = []

    def make(statuses: list[int]) -> Receiver:
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def failing_definition(notify: list[dict]) -> dict:
    return simple_definition(slug="nightly", steps=[
        {"key": "build", "type": "python", "action": "core.echo", "args": {}},
        {"key": "deploy", "type": "python", "action": "core.fail",
         "args": {"message": "disk full"}},
    ], notify=notify)


def run_with_first_tries(captured, definition: dict) -> Run:
    with captured(execute=True):
        run = start(definition)
        drain()
    run.refresh_from_db()
    return run


def notification_events(run: Run) -> list[Event]:
    return list(Event.objects.filter(run=run, kind__startswith="notification_").order_by("id"))


def test_a_failed_run_emails_and_posts_a_signed_slack_body(
        django_capture_on_commit_callbacks, receiver_factory):
    receiver = receiver_factory([200])
    run = run_with_first_tries(django_capture_on_commit_callbacks, failing_definition([
        {"on": ["failed"], "email": ["ops@example.com", "dev@example.com"],
         "webhook": receiver.url},
        {"on": ["completed"], "email": ["happy@example.com"]},
    ]))
    assert run.status == "failed"

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ops@example.com", "dev@example.com"]
    assert message.subject == f"[workflows] Failed: run #{run.pk} of Nightly at step deploy"
    assert "disk full" in message.body
    assert f"/admin/workflows/run/{run.pk}/change/" in message.body

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    secret = run.flow.notification_signing_secret()
    headers = request["headers"]
    assert "X-Signature" not in headers  # never the inbound header (issue 25 H3)
    Webhook(secret).verify(request["body"], {
        "webhook-id": headers["webhook-id"], "webhook-timestamp": headers["webhook-timestamp"],
        "webhook-signature": headers["X-Workflows-Notification-Signature"]})
    body = json.loads(request["body"])
    assert body["text"].startswith(f"Failed: run #{run.pk} of Nightly at step deploy\ndisk full")
    assert body["blocks"][0]["type"] == "section"
    assert body["event"] == "failed" and body["flow"] == "nightly"
    assert body["run_id"] == run.pk and body["status"] == "failed"
    assert body["admin_url"].endswith(f"/admin/workflows/run/{run.pk}/change/")
    assert body["context"]["step"] == "deploy"
    assert [b["type"] for b in body["blocks"]] == ["section"]  # no Review button: no approval

    events = notification_events(run)
    assert [(e.kind, e.data["channel"]) for e in events] == [
        ("notification_sent", "email"), ("notification_sent", "webhook")]
    recorded = json.dumps([[e.reason, e.data] for e in events])
    assert "T0KEN-SECRET-PATH" not in recorded and secret not in recorded
    assert run.flow.webhook_signing_secret() not in recorded
    assert events[1].data["target"] == f"http://127.0.0.1:{receiver.server.server_address[1]}/…"
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


def test_a_webhook_that_fails_is_retried_by_the_sweep_with_backoff_and_the_run_stays_failed(
        django_capture_on_commit_callbacks, receiver_factory, settings):
    settings.WF_NOTIFY_BACKOFF_SECONDS = 30
    receiver = receiver_factory([500, 200])
    run = run_with_first_tries(django_capture_on_commit_callbacks, failing_definition([
        {"on": ["failed"], "webhook": receiver.url}]))
    assert run.status == "failed"
    notification = Notification.objects.get(run=run)
    assert (notification.status, notification.attempts) == ("pending", 1)
    assert notification.last_error == "delivery failed (HTTP status 500)"
    failed = notification_events(run)
    assert [e.kind for e in failed] == ["notification_failed"]
    assert failed[0].data["gave_up"] is False and failed[0].data["attempt"] == 1

    # Not due yet: the sweep leaves it alone.
    assert sweep_all(timezone.now())["notifications_sent"] == 0
    assert len(receiver.requests) == 1

    later = notification.next_attempt_at + timedelta(seconds=1)
    assert notification.next_attempt_at >= timezone.now() + timedelta(seconds=25)
    assert sweep_all(later)["notifications_sent"] == 1
    assert len(receiver.requests) == 2
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 2)
    assert [e.kind for e in notification_events(run)] == [
        "notification_failed", "notification_sent"]
    run.refresh_from_db()
    assert run.status == "failed"


def test_a_notification_gives_up_after_the_last_attempt(
        django_capture_on_commit_callbacks, receiver_factory, settings):
    settings.WF_NOTIFY_MAX_ATTEMPTS = 3
    settings.WF_NOTIFY_BACKOFF_SECONDS = 10
    receiver = receiver_factory([503])
    run = run_with_first_tries(django_capture_on_commit_callbacks, failing_definition([
        {"on": ["failed"], "webhook": receiver.url}]))
    notification = Notification.objects.get(run=run)
    delays = []
    for _ in range(4):
        at = notification.next_attempt_at + timedelta(seconds=1)
        sweep_all(at)
        notification.refresh_from_db()
        delays.append(notification.next_attempt_at - at)
    assert len(receiver.requests) == 3
    assert (notification.status, notification.attempts) == ("failed", 3)
    events = notification_events(run)
    assert [e.data["gave_up"] for e in events] == [False, False, True]
    assert "gave up after 3 tries" in events[-1].reason
    # Backoff doubles: 10 s after the first failure, 20 s after the second; then it gave up.
    assert delays[:2] == [timedelta(seconds=20), timedelta(seconds=0)]


def test_a_webhook_nobody_listens_on_is_a_failure_event_not_an_error(
        django_capture_on_commit_callbacks):
    run = run_with_first_tries(django_capture_on_commit_callbacks, failing_definition([
        {"on": ["failed"], "webhook": "http://127.0.0.1:9/hooks/SECRET-PATH"}]))
    assert run.status == "failed"
    event = notification_events(run)[0]
    assert event.kind == "notification_failed"
    # No transport text for an internal address: events are no port scanner (issue 25 H2).
    assert event.data["error"] == ("delivery failed (no HTTP answer: ConnectError; details "
                                   "withheld: not a public address)")
    assert "SECRET-PATH" not in json.dumps(event.data)


def test_an_approval_emails_its_users_and_the_members_of_its_groups(
        django_capture_on_commit_callbacks):
    reviewers = Group.objects.get(name="reviewers")
    for name, email in [("rita", "rita@example.com"), ("sam", ""), ("tom", "tom@example.com")]:
        user = User.objects.create_user(name, email=email)
        user.groups.add(reviewers)
    User.objects.create_user("ursula", email="ursula@example.com")  # not an assignee
    inactive = User.objects.create_user("vic", email="vic@example.com", is_active=False)
    inactive.groups.add(reviewers)
    definition = approval_definition()
    definition["steps"][2]["assignees"] = {"groups": ["reviewers"], "users": ["walt"]}
    User.objects.create_user("walt", email="walt@example.com")
    definition["notify"] = [{"on": ["approval_requested"], "email": ["audit@example.com"]}]
    run = run_with_first_tries(django_capture_on_commit_callbacks, definition)
    assert run.status == "waiting_for_approval"
    approval = Approval.objects.get(run=run)
    # The rule's addresses share one email; each assignee gets one of their own (with their
    # own decision links: tests/approvals/test_decision_links.py).
    assert sorted(sorted(m.to) for m in mail.outbox) == [
        ["audit@example.com"], ["rita@example.com"], ["tom@example.com"], ["walt@example.com"]]
    for message in mail.outbox:
        assert message.subject == (
            f"[workflows] Approval requested: run #{run.pk} of Simple, step review")
        assert "Ship a.tgz?" in message.body
        assert f"/admin/approvals/approval/{approval.pk}/change/" in message.body
    assert [e.kind for e in notification_events(run)] == ["notification_sent"] * 4


def test_a_completed_run_notifies_only_rules_that_ask_for_it(django_capture_on_commit_callbacks):
    run = run_with_first_tries(django_capture_on_commit_callbacks, simple_definition(
        notify=[{"on": ["failed"], "email": ["ops@example.com"]}]))
    assert run.status == "completed"
    assert mail.outbox == [] and not Notification.objects.exists()

    run = run_with_first_tries(django_capture_on_commit_callbacks, simple_definition(
        slug="other", notify=[{"on": ["completed"], "email": ["ops@example.com"]}]))
    assert [m.subject for m in mail.outbox] == [f"[workflows] Completed: run #{run.pk} of Other"]


def test_nothing_is_sent_for_a_run_end_that_rolled_back():
    """The rows are written in the engine's transaction: the first try waits for its commit
    (here the test's transaction never commits), the row is there for the sweeper."""
    run = start(failing_definition([{"on": ["failed"], "email": ["ops@example.com"]}]))
    drain()
    assert mail.outbox == []
    assert Notification.objects.get(run=run).status == "pending"
    sweep_all()
    assert len(mail.outbox) == 1


def test_a_bug_in_notifications_never_fails_the_run(monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(notifications, "_message", broken)
    run = start(simple_definition(notify=[{"on": ["completed"], "email": ["ops@example.com"]}]))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert not Notification.objects.exists()


def test_a_promotion_request_notifies_the_flow_rules_without_a_run(
        django_capture_on_commit_callbacks):
    run = start(simple_definition(notify=[
        {"on": ["promotion_requested"], "email": ["release@example.com"]}]))
    with django_capture_on_commit_callbacks(execute=True):
        rows = notify_event(flow=run.flow, event="promotion_requested",
                            context={"version": 2, "requested_by": "alice"})
    assert [r.run_id for r in rows] == [None]
    assert [m.subject for m in mail.outbox] == [
        "[workflows] Promotion requested: Simple v2 by alice"]
    assert Notification.objects.get().status == "sent"


def test_promoting_under_the_two_person_rule_notifies_the_rules_and_the_approvers(
        django_capture_on_commit_callbacks):
    from workflows.services.flows import flow_promote, flow_release, flow_update_draft

    reviewers, _ = Group.objects.get_or_create(name="reviewers")
    reviewer = User.objects.create_user("rita", email="rita@example.com")
    reviewer.groups.add(reviewers)
    requester = User.objects.create_superuser("alice", email="alice@example.com")
    guarded = simple_definition(
        "guarded",
        notify=[{"on": ["promotion_requested"], "email": ["release@example.com"]}],
        promotion={"requires_approval": True, "approvers": {"groups": ["reviewers"]}})
    flow = make_flow(simple_definition("guarded"))  # v1 live, no rule yet
    flow_update_draft(flow=flow, definition=guarded, actor=requester)
    version = flow_release(flow=flow, actor=requester)
    with django_capture_on_commit_callbacks(execute=True):
        request = flow_promote(flow=flow, number=version.number, actor=requester)
    assert isinstance(request, Approval)
    # The live release (v1) has no rule: only the approvers hear, never the addresses the
    # unapproved release names (issue 25 H3).
    sent = {address for message in mail.outbox for address in message.to}
    assert sent == {"rita@example.com"}
    assert all("Promotion requested" in message.subject for message in mail.outbox)


def test_an_approval_chat_message_has_a_review_button_to_the_admin_and_no_decision_link(
        django_capture_on_commit_callbacks, receiver_factory):
    receiver = receiver_factory([200])
    reviewer = User.objects.create_user("rita", email="rita@example.com")
    reviewer.groups.add(Group.objects.get(name="reviewers"))
    definition = approval_definition()
    definition["notify"] = [{"on": ["approval_requested"], "webhook": receiver.url}]
    run = run_with_first_tries(django_capture_on_commit_callbacks, definition)
    approval = Approval.objects.get(run=run)
    body = json.loads(receiver.requests[0]["body"])
    actions = [b for b in body["blocks"] if b["type"] == "actions"]
    assert len(actions) == 1
    (button,) = actions[0]["elements"]
    assert button["type"] == "button" and button["text"]["text"] == "Review"
    assert button["url"].endswith(f"/admin/approvals/approval/{approval.pk}/change/")
    assert "/decide/" not in receiver.requests[0]["body"].decode()
    assert "/decide/" in mail.outbox[0].body  # the assignee's own email has the links
