"""Issue 25 H2, H3 and L3, reproduced with real deliveries to local HTTP servers: notify
webhooks go through the outbound policy at release and at send (nothing reaches a denied
server, no redirect is followed, no transport text about internal ports), notifications are
signed with a key and a header of their own (a captured one replayed to /hooks/ is a 401), a
notify URL pointing at the platform itself is refused, promotion requests follow the live
release's rules, and the chat text is escaped."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from standardwebhooks import Webhook

from tests.conftest import local_http_server, respond
from tests.factories import drain, make_flow, simple_definition
from workflows.models import Event, FlowHistory, Notification, Run
from workflows.services.runs import run_start

pytestmark = pytest.mark.django_db


class Recorder(BaseHTTPRequestHandler):
    """Records every request (path, headers, body); `/redirect` answers 302 to `target`."""

    requests: list[dict] = []
    target = ""

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Recorder.requests.append({"path": self.path, "headers": dict(self.headers),
                                  "body": body})
        if self.path == "/redirect":
            respond(self, 302, content_type=None, headers={"Location": Recorder.target})
        else:
            respond(self, 200, b"{}")


@pytest.fixture
def receiver(settings):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], []
    Recorder.requests, Recorder.target = [], ""
    with local_http_server(Recorder) as url:
        yield url


def notifying_flow(url: str, slug: str = "notifying", on: tuple[str, ...] = ("completed",),
                   **extra):
    return make_flow(simple_definition(
        slug, triggers=[{"type": "webhook"}], notify=[{"on": list(on), "webhook": url}],
        **extra))


def run_and_notify(flow, django_capture_on_commit_callbacks) -> Run:
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = run_start(flow=flow, input={})
        drain()
    run.refresh_from_db()
    return run


def webhook_events(run: Run) -> list[Event]:
    return list(Event.objects.filter(run=run, kind__startswith="notification_").order_by("id"))


# --- H2: the outbound policy at send time ---------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0", "2130706433"])
def test_a_denied_loopback_receiver_gets_no_notification(
        settings, receiver, django_capture_on_commit_callbacks, host):
    port = receiver.rsplit(":", 1)[1]
    flow = notifying_flow(f"http://{host}:{port}/hook")  # released while loopback is allowed
    settings.WF_HTTP_DENY = ["127.0.0.0/8", "::1"]
    run = run_and_notify(flow, django_capture_on_commit_callbacks)
    assert Recorder.requests == []
    notification = Notification.objects.get(run=run)
    assert (notification.status, notification.attempts) == ("failed", 1)  # never retried
    event = webhook_events(run)[0]
    assert event.data["error"] == "refused by the outbound policy; nothing was sent"
    assert event.data["gave_up"] is True


def test_the_same_receiver_gets_it_when_loopback_is_allowed(
        receiver, django_capture_on_commit_callbacks):
    """The control of the test above: 0.0.0.0 really reaches a server on 127.0.0.1."""
    port = receiver.rsplit(":", 1)[1]
    run = run_and_notify(notifying_flow(f"http://0.0.0.0:{port}/hook"),
                         django_capture_on_commit_callbacks)
    assert [r["path"] for r in Recorder.requests] == ["/hook"]
    assert Notification.objects.get(run=run).status == "sent"


def test_a_redirect_is_not_followed_and_fails_the_delivery_with_its_status(
        settings, receiver, django_capture_on_commit_callbacks):
    Recorder.target = "http://169.254.169.254/latest/meta-data/"
    run = run_and_notify(notifying_flow(f"{receiver}/redirect"),
                         django_capture_on_commit_callbacks)
    assert [r["path"] for r in Recorder.requests] == ["/redirect"]
    assert webhook_events(run)[0].data["error"] == "delivery failed (HTTP status 302)"


def test_a_closed_internal_port_is_not_named_in_the_event(
        receiver, django_capture_on_commit_callbacks):
    run = run_and_notify(notifying_flow("http://127.0.0.1:9/hook"),
                         django_capture_on_commit_callbacks)
    error = webhook_events(run)[0].data["error"]
    assert error.startswith("delivery failed (no HTTP answer")
    assert "refused" not in error.lower() and "errno" not in error.lower()


# --- H2: the outbound policy at release time ------------------------------------------------


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/",
                                 "http://[fd00:ec2::254]/", "http://100.100.100.200/x",
                                 "http://[::ffff:a9fe:a9fe]/", "http://metadata.google.internal/"])
def test_a_notify_webhook_to_a_metadata_address_is_a_422_at_release(as_user, url):
    builder = as_user("builder")
    make_flow(simple_definition("guarded"))
    definition = simple_definition("guarded", notify=[{"on": ["failed"], "webhook": url}])
    assert builder.put("/flows/guarded/draft", {"definition": definition}).status == 200
    response = builder.post("/flows/guarded/releases", {})
    assert response.status == 422
    problems = response.error["details"]
    assert [p["path"] for p in problems] == ["notify[0].webhook"]
    assert "refused by the outbound policy" in problems[0]["message"]


def test_a_denied_loopback_notify_webhook_and_http_step_are_422s_at_release(settings, as_user):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], ["127.0.0.0/8", "::1"]
    builder = as_user("builder")
    make_flow(simple_definition("guarded"))
    definition = simple_definition("guarded", steps=[
        {"key": "call", "type": "http", "request": {"url": "http://[::]:8080/x"}},
    ], notify=[{"on": ["failed"], "webhook": "http://localhost:9000/x"}])
    assert builder.put("/flows/guarded/draft", {"definition": definition}).status == 200
    response = builder.post("/flows/guarded/releases", {})
    assert response.status == 422
    assert sorted(p["path"] for p in response.error["details"]) == [
        "notify[0].webhook", "steps[0].request.url"]


# --- H3: a notification is never an inbound delivery ----------------------------------------


def test_a_captured_notification_replayed_to_the_flows_hook_is_a_401(
        receiver, anon_api, django_capture_on_commit_callbacks):
    flow = notifying_flow(f"{receiver}/hook")
    run_and_notify(flow, django_capture_on_commit_callbacks)
    [captured] = Recorder.requests
    headers = captured["headers"]
    assert "X-Signature" not in headers
    # The receiver verifies it with the flow's notification secret (docs/api.md).
    Webhook(flow.notification_signing_secret()).verify(captured["body"], {
        "webhook-id": headers["webhook-id"], "webhook-timestamp": headers["webhook-timestamp"],
        "webhook-signature": headers["X-Workflows-Notification-Signature"]})
    runs_before = Run.objects.count()

    replayed = anon_api.post(f"/hooks/{flow.slug}", raw=captured["body"], headers={
        name: value for name, value in headers.items()
        if name.lower().startswith(("webhook-", "x-workflows-", "content-type"))})
    assert replayed.status == 401
    # Its signature moved to the inbound header is still no delivery: other key, other format.
    moved = anon_api.post(f"/hooks/{flow.slug}", raw=captured["body"], headers={
        "X-Signature": headers["X-Workflows-Notification-Signature"]})
    assert moved.status == 401
    assert Run.objects.count() == runs_before


def test_the_notification_key_is_not_the_webhook_key_and_rotates_on_its_own(
        receiver, as_user, django_capture_on_commit_callbacks):
    flow = notifying_flow(f"{receiver}/hook")
    assert flow.notification_signing_secret() != flow.webhook_signing_secret()
    assert flow.notification_signing_secret().startswith("whsec_")
    assert as_user("support").post(f"/flows/{flow.slug}/notification-secret").status == 403
    response = as_user("builder").post(f"/flows/{flow.slug}/notification-secret")
    assert response.status == 200
    assert response.body["signature_header"] == "X-Workflows-Notification-Signature"
    secret = response.body["notification_secret"]
    flow.refresh_from_db()
    assert secret == flow.notification_signing_secret() and secret not in flow.notification_secret
    assert FlowHistory.objects.filter(flow=flow, kind="notification_secret_rotated").exists()
    assert secret not in json.dumps(list(FlowHistory.objects.values("data", "comment")))
    run_and_notify(flow, django_capture_on_commit_callbacks)
    headers = Recorder.requests[0]["headers"]
    Webhook(secret).verify(Recorder.requests[0]["body"], {
        "webhook-id": headers["webhook-id"], "webhook-timestamp": headers["webhook-timestamp"],
        "webhook-signature": headers["X-Workflows-Notification-Signature"]})


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/api/v1/hooks/notifying", "http://localhost:8000/api/v1/hooks/x",
    "http://[::1]:8000/api/v1/hooks/x", "http://0.0.0.0:8000/api/v1/hooks/x",
    "https://workflows.example.com/api/v1/hooks/notifying",
])
def test_a_notify_webhook_pointing_at_this_platform_is_a_422_at_release(settings, as_user, url):
    settings.PUBLIC_BASE_URL, settings.WF_SERVED_PORT = "https://workflows.example.com", 8000
    builder = as_user("builder")
    make_flow(simple_definition("notifying"))
    definition = simple_definition("notifying", triggers=[{"type": "webhook"}],
                                   notify=[{"on": ["completed"], "webhook": url}])
    assert builder.put("/flows/notifying/draft", {"definition": definition}).status == 200
    response = builder.post("/flows/notifying/releases", {})
    assert response.status == 422
    [found] = response.error["details"]
    assert found["path"] == "notify[0].webhook" and "this platform itself" in found["message"]


def test_a_notify_webhook_that_turned_out_to_be_this_platform_is_refused_at_send(
        settings, receiver, django_capture_on_commit_callbacks):
    port = receiver.rsplit(":", 1)[1]
    flow = notifying_flow(f"http://localhost:{port}/api/v1/hooks/notifying")
    settings.WF_SERVED_PORT = int(port)  # the server now listens where the URL points
    run = run_and_notify(flow, django_capture_on_commit_callbacks)
    assert Recorder.requests == []
    assert webhook_events(run)[0].data["error"] == \
        "refused by the outbound policy; nothing was sent"


def test_a_promotion_request_follows_the_live_releases_rules_not_the_requested_ones(
        receiver, django_capture_on_commit_callbacks):
    from workflows.services.flows import flow_promote, flow_release, flow_update_draft

    reviewer = User.objects.create_user("rita", email="rita@example.com")
    reviewer.groups.add(Group.objects.get(name="reviewers"))
    requester = User.objects.create_superuser("alice", email="alice@example.com")
    promotion = {"requires_approval": True, "approvers": {"groups": ["reviewers"]}}
    flow = make_flow(simple_definition("guarded", notify=[
        {"on": ["promotion_requested"], "email": ["release@example.com"]}]))
    flow_update_draft(flow=flow, actor=requester, definition=simple_definition(
        "guarded", promotion=promotion, notify=[
            {"on": ["promotion_requested"], "email": ["attacker@example.com"],
             "webhook": f"{receiver}/exfiltrate"}]))
    version = flow_release(flow=flow, actor=requester)
    with django_capture_on_commit_callbacks(execute=True):
        flow_promote(flow=flow, number=version.number, actor=requester)
    sent = {address for message in mail.outbox for address in message.to}
    assert sent == {"release@example.com", "rita@example.com"}
    assert Recorder.requests == []


# --- L3: the chat text is escaped like the blocks -------------------------------------------


def test_mentions_and_links_in_the_chat_text_are_escaped(
        receiver, django_capture_on_commit_callbacks):
    flow = make_flow(simple_definition("shouting", steps=[
        {"key": "boom", "type": "python", "action": "core.fail",
         "args": {"message": "<!channel> <!here> see <https://evil.example|the fix> & more"}},
    ], notify=[{"on": ["failed"], "webhook": f"{receiver}/chat"}]))
    run_and_notify(flow, django_capture_on_commit_callbacks)
    body = json.loads(Recorder.requests[0]["body"])
    for text in (body["text"], body["blocks"][0]["text"]["text"]):
        assert "<!channel>" not in text and "<!here>" not in text and "<https://evil" not in text
        assert "&lt;!channel&gt; &lt;!here&gt; see &lt;https://evil.example|the fix&gt; &amp; more" \
            in text
    assert body["context"]["message"].startswith("<!channel>")  # the structured field is data
