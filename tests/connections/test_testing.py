"""Testing a connection against real servers: the loopback sshd (and a second one as a jump
host) and a loopback HTTP server. One service behind the API, the admin button and the CLI."""

from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler

import pytest
from django.urls import reverse

from connections.models import ConnectionAudit
from connections.services import connection_create
from connections.testing import ConnectionNotTestable, connection_test
from tests.conftest import local_http_server, respond
from tests.workflows.test_ssh_step import ssh_connection
from workflows.errors import NotPermitted

pytestmark = pytest.mark.django_db
TOKEN = "tok-TESTING-424242"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        status = 200 if self.headers.get("Authorization") == f"Bearer {TOKEN}" else 401
        body = json.dumps({"seen": self.headers.get("Authorization")}).encode()
        respond(self, status, body, content_type=None)


@pytest.fixture(scope="module")
def http_server():
    with local_http_server(Handler) as url:
        yield url


def assert_no_secret(answer: dict, *secrets: str) -> None:
    text = json.dumps(answer) + json.dumps(list(ConnectionAudit.objects.values("fields")))
    for secret in secrets:
        assert secret not in text


@pytest.mark.ssh
def test_an_ssh_connection_answers_with_its_host_key_and_server_version(sshd):
    connection = ssh_connection(sshd)
    answer = connection_test(actor=None, connection=connection)
    assert answer["ok"] is True, answer
    fingerprint = answer["detail"].split(";")[0]
    assert fingerprint.startswith("host key ssh-ed25519 SHA256:")
    assert "server SSH-2.0-OpenSSH" in answer["detail"]
    assert isinstance(answer["latency_ms"], int) and answer["latency_ms"] >= 0
    audit = ConnectionAudit.objects.get(action="tested")
    assert audit.fields == ["ok"] and audit.connection_name == "vm"
    assert_no_secret(answer, sshd.client_private_key.splitlines()[1])


@pytest.mark.ssh
def test_an_ssh_connection_behind_a_jump_host_is_tested_through_it(sshd, sshd_jump):
    connection_create(
        actor=None, name="bastion", kind="ssh",
        config={"host": sshd_jump.host, "port": sshd_jump.port, "username": sshd_jump.username,
                "known_hosts": sshd_jump.host_key_line},
        secret={"private_key": sshd_jump.client_private_key},
    )
    connection = ssh_connection(sshd, config={"proxy_jump": "bastion"})
    answer = connection_test(actor=None, connection=connection)
    assert answer["ok"] is True, answer
    assert answer["detail"].endswith("(via bastion)")


@pytest.mark.ssh
def test_a_failing_ssh_test_is_typed_and_carries_no_secret(sshd):
    connection = ssh_connection(sshd, config={"known_hosts": sshd.other_host_key_line},
                                secret={"password": "pw-NEVER-SHOWN-1"})
    answer = connection_test(actor=None, connection=connection)
    assert answer["ok"] is False
    assert answer["error"]["type"] == "HostKeyMismatch"
    assert "HOST KEY MISMATCH" in answer["detail"]
    assert ConnectionAudit.objects.get(action="tested").fields == ["failed", "HostKeyMismatch"]
    assert_no_secret(answer, "pw-NEVER-SHOWN-1")


def test_an_http_connection_answers_with_the_status_of_a_get(http_server):
    good = connection_create(actor=None, name="api", kind="http",
                             config={"base_url": http_server, "auth": "bearer"},
                             secret={"token": TOKEN})
    answer = connection_test(actor=None, connection=good)
    assert answer["ok"] is True
    assert answer["detail"] == f"GET {http_server} → 200"
    bad = connection_create(actor=None, name="wrong", kind="http",
                            config={"base_url": http_server, "auth": "bearer"},
                            secret={"token": "tok-WRONG-000000"})
    answer = connection_test(actor=None, connection=bad)
    assert answer["ok"] is False and answer["detail"] == f"GET {http_server} → 401"
    assert answer["error"]["type"] == "HTTPStatusError"
    assert_no_secret(answer, TOKEN, "tok-WRONG-000000")


def test_an_unreachable_http_connection_is_a_typed_failure():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    connection = connection_create(actor=None, name="down", kind="http",
                                   config={"base_url": f"http://127.0.0.1:{port}"})
    answer = connection_test(actor=None, connection=connection)
    assert answer["ok"] is False and answer["error"]["type"] == "ConnectError"


def test_generic_connections_cannot_be_tested_and_only_admins_may_test(plain_user):
    generic = connection_create(actor=None, name="misc", kind="generic")
    with pytest.raises(ConnectionNotTestable):
        connection_test(actor=None, connection=generic)
    api = connection_create(actor=None, name="api", kind="http",
                            config={"base_url": "http://127.0.0.1:9"})
    with pytest.raises(NotPermitted):
        connection_test(actor=plain_user, connection=api)
    assert not ConnectionAudit.objects.filter(action="tested").exists()


def test_the_admin_button_posts_and_shows_the_answer(admin_client, http_server):
    connection = connection_create(actor=None, name="api", kind="http",
                                   config={"base_url": http_server, "auth": "bearer"},
                                   secret={"token": TOKEN})
    change = reverse("admin:connections_connection_change", args=[connection.pk])
    page = admin_client.get(change).content.decode()
    assert 'data-action="test-connection"' in page
    url = reverse("admin:connections_connection_test", args=[connection.pk])
    assert f'action="{url}"' in page
    assert admin_client.get(url).status_code == 405  # POST only
    response = admin_client.post(url, follow=True)
    text = response.content.decode()
    assert f"Connection works: GET {http_server} → 200" in text
    assert TOKEN not in text


def test_the_admin_button_is_for_connection_managers_only(client, plain_user, http_server):
    connection = connection_create(actor=None, name="api", kind="http",
                                   config={"base_url": http_server})
    client.force_login(plain_user)
    url = reverse("admin:connections_connection_test", args=[connection.pk])
    assert client.post(url).status_code == 403
    assert not ConnectionAudit.objects.filter(action="tested").exists()


class Counting(BaseHTTPRequestHandler):
    hits: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        Counting.hits.append(self.path)
        respond(self, 200, b"{}")


def test_a_connection_test_goes_through_the_outbound_policy(settings):
    """Issue 25 M1: the connection test is one of the platform's requests; 0.0.0.0 reaches
    loopback, so denying loopback refuses it, and nothing reaches the server."""
    Counting.hits = []
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], ["127.0.0.0/8", "::1"]
    with local_http_server(Counting) as url:
        port = url.rsplit(":", 1)[1]
        connection = connection_create(actor=None, name="zero", kind="http",
                                       config={"base_url": f"http://0.0.0.0:{port}/"})
        answer = connection_test(actor=None, connection=connection)
        assert answer["ok"] is False and answer["error"]["type"] == "DestinationRefused"
        assert "refused by the outbound policy" in answer["detail"]
        assert Counting.hits == []
        settings.WF_HTTP_DENY = []
        assert connection_test(actor=None, connection=connection)["ok"] is True
        assert Counting.hits == ["/"]
