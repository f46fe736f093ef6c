"""The real components the suite relies on (tests/conftest.py) work on this machine."""

import io

import paramiko
import pytest
import redis
from paramiko.hostkeys import HostKeyEntry


def _client_trusting(host_key_line: str) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    entry = HostKeyEntry.from_line(host_key_line)
    for hostname in entry.hostnames:
        client.get_host_keys().add(hostname, entry.key.get_name(), entry.key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def _connect(client: paramiko.SSHClient, sshd) -> None:
    client.connect(
        sshd.host, port=sshd.port, username=sshd.username,
        pkey=paramiko.Ed25519Key.from_private_key(io.StringIO(sshd.client_private_key)),
        look_for_keys=False, allow_agent=False, timeout=10, banner_timeout=10, auth_timeout=10,
    )


@pytest.mark.ssh
def test_sshd_runs_a_command_for_the_client_key_when_the_host_key_is_known(sshd):
    client = _client_trusting(sshd.host_key_line)
    try:
        _connect(client, sshd)
        _, stdout, _ = client.exec_command("echo hi", timeout=10)
        assert stdout.read().decode() == "hi\n"
        assert stdout.channel.recv_exit_status() == 0
    finally:
        client.close()


@pytest.mark.ssh
def test_sshd_connection_is_refused_when_the_host_key_does_not_match(sshd):
    client = _client_trusting(sshd.other_host_key_line)
    try:
        with pytest.raises(paramiko.BadHostKeyException):
            _connect(client, sshd)
    finally:
        client.close()


@pytest.mark.ssh
def test_sshd_connection_is_refused_when_the_host_is_unknown(sshd):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
            _connect(client, sshd)
    finally:
        client.close()


@pytest.mark.browser
def test_headless_chromium_renders_a_page(page):
    page.goto("data:text/html,<h1>hi</h1>")
    assert page.locator("h1").inner_text() == "hi"


def test_redis_answers(redis_url):
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
    finally:
        client.close()
