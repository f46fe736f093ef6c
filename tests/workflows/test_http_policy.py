"""Outbound safety of http steps (issue 10 item 9): link-local and cloud metadata addresses
are refused by default, WF_HTTP_DENY and WF_HTTP_ALLOW cover the rest, the refusal is a typed,
non-retried error and nothing is sent. Loopback stays reachable by default."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from tests.conftest import local_http_server, respond
from tests.factories import drain, make_flow, simple_definition, steps_of
from workflows.errors import DefinitionInvalid
from workflows.models import Attempt
from workflows.services.runs import run_start
from workflows.steps.http_policy import EVENT_HOOKS, DestinationRefused, destination_problem


class Target(BaseHTTPRequestHandler):
    paths: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        Target.paths.append(self.path)
        if self.path == "/redirect":
            respond(self, 302, content_type=None,
                    headers={"Location": "http://169.254.169.254/latest/meta-data/"})
            return
        respond(self, 200, b"{}")


@pytest.fixture
def server():
    Target.paths = []
    with local_http_server(Target) as url:
        yield int(url.rsplit(":", 1)[1])


@pytest.mark.parametrize("host", ["169.254.169.254", "169.254.0.1", "fd00:ec2::254",
                                  "::ffff:169.254.169.254", "fe80::1"])
def test_link_local_and_metadata_addresses_are_refused_by_default(settings, host):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], []
    reason = destination_problem(host, 80)
    assert reason and "link-local or cloud metadata" in reason and "WF_HTTP_ALLOW" in reason


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "10.1.2.3", "192.168.0.7"])
def test_loopback_and_private_addresses_are_reachable_by_default(settings, host):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], []
    assert destination_problem(host, 80) is None


def test_deny_takes_cidrs_addresses_and_host_names_and_resolves_names(settings):
    settings.WF_HTTP_ALLOW = []
    settings.WF_HTTP_DENY = ["127.0.0.0/8"]
    assert "resolves to 127.0.0.1, in WF_HTTP_DENY" in destination_problem("localhost", 80)
    settings.WF_HTTP_DENY = ["10.0.0.5", ".internal.example"]
    assert destination_problem("10.0.0.5", 80)
    assert destination_problem("10.0.0.6", 80) is None
    assert "in WF_HTTP_DENY" in destination_problem("api.internal.example", 80)
    assert "in WF_HTTP_DENY" in destination_problem("internal.example", 80)
    assert destination_problem("127.0.0.1", 80) is None


def test_allow_lifts_the_built_in_refusal_and_makes_an_allowlist(settings):
    settings.WF_HTTP_DENY = []
    settings.WF_HTTP_ALLOW = ["169.254.10.0/24", "localhost"]
    assert destination_problem("169.254.10.9", 80) is None
    assert destination_problem("localhost", 80) is None
    assert "not in WF_HTTP_ALLOW" in destination_problem("169.254.169.254", 80)
    assert "not in WF_HTTP_ALLOW" in destination_problem("127.0.0.1", 80)
    settings.WF_HTTP_DENY = ["169.254.10.9"]
    assert "WF_HTTP_DENY" in destination_problem("169.254.10.9", 80)  # deny wins


def _run(url: str, slug: str = "simple"):
    """A run whose URL comes from its input: checked when it is sent (a literal URL the policy
    refuses never gets past the release, see test_a_refused_literal_url_is_a_422_at_release)."""
    flow = make_flow(simple_definition(slug, input={"url": {"type": "string"}}, steps=[
        {"key": "fetch", "type": "http", "request": {"method": "GET", "url": "{{ input.url }}"},
         "retry": {"max_attempts": 3, "backoff_seconds": 0}, "timeout_seconds": 5},
    ]))
    run, _ = run_start(flow=flow, input={"url": url})
    drain()
    run.refresh_from_db()
    return run


@pytest.mark.django_db
def test_an_http_step_to_the_metadata_address_fails_once_without_retry(settings):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], []
    run = _run("http://169.254.169.254/latest/meta-data/iam/")
    assert run.status == "failed"
    fetch = steps_of(run)["fetch"]
    assert fetch.error["type"] == "DestinationRefused"
    assert "169.254.169.254" in fetch.error["message"] and "nothing was sent" in \
        fetch.error["message"] and "refused by the outbound policy" in fetch.error["message"]
    assert Attempt.objects.filter(step_run=fetch).count() == 1


@pytest.mark.django_db
def test_a_denied_loopback_server_receives_nothing(settings, server):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], ["127.0.0.1"]
    run = _run(f"http://127.0.0.1:{server}/x")
    assert steps_of(run)["fetch"].error["type"] == "DestinationRefused"
    assert Target.paths == []
    settings.WF_HTTP_DENY = []
    assert _run(f"http://127.0.0.1:{server}/x", "again").status == "completed"
    assert Target.paths == ["/x"]


def test_every_redirect_hop_is_checked(settings, server):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], []
    with httpx.Client(event_hooks=EVENT_HOOKS, follow_redirects=True, timeout=5) as client, \
            pytest.raises(DestinationRefused, match="169.254.169.254"):
        client.get(f"http://127.0.0.1:{server}/redirect")
    assert Target.paths == ["/redirect"]


@pytest.mark.django_db
def test_a_refused_literal_url_is_a_422_at_release(settings):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], ["127.0.0.0/8", "::1"]
    for index, url in enumerate(("http://169.254.169.254/latest/", "http://[64:ff9b::a9fe:a9fe]/",
                                 "http://0.0.0.0:8080/x", "http://2130706433/x")):
        with pytest.raises(DefinitionInvalid) as caught:
            make_flow(simple_definition(f"refused-{index}", steps=[
                {"key": "fetch", "type": "http", "request": {"url": url}}]))
        assert [p["path"] for p in caught.value.problems] == ["steps[0].request.url"], url
        assert "refused by the outbound policy" in caught.value.problems[0]["message"]


@pytest.mark.django_db
def test_an_unspecified_address_reaches_loopback_so_it_is_denied_with_it(settings, server):
    """M1 of issue 25: 0.0.0.0 and 0 connect to this machine's loopback."""
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], ["127.0.0.0/8", "::1"]
    for host in ("0.0.0.0", "0"):
        run = _run(f"http://{host}:{server}/x", slug=f"zero-{host.replace('.', '-')}")
        assert steps_of(run)["fetch"].error["type"] == "DestinationRefused"
    assert Target.paths == []
    settings.WF_HTTP_DENY = []
    assert _run(f"http://0.0.0.0:{server}/x", "control").status == "completed"
    assert Target.paths == ["/x"]  # what the refusal prevented


@pytest.mark.django_db
def test_a_closed_internal_port_is_not_described_in_the_step_error(settings):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], []
    error = steps_of(_run("http://127.0.0.1:9/x"))["fetch"].error
    assert error["type"] == "ConnectError"
    assert "details withheld: not a public address" in error["message"]
    assert "refused" not in error["message"].lower() and "errno" not in error["message"].lower()
