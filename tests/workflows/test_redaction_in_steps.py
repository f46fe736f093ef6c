"""Connection secrets never reach storage, whatever a step's far side sends back.

For each step type that uses connections (http, ssh), a real server on loopback sends the secret
back: an HTTP server that echoes the credentials it received, an OpenSSH server whose command
prints a file holding the secret. Everything the engine stores for the run (log chunks, the
attempt's input, output and error, the step run's output and error, the run's output and error,
event reasons and data) must show `***` and never the secret, including a secret that arrives
split across two log chunks.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from connections.services import connection_create
from tests.conftest import local_http_server, respond
from tests.factories import drain, make_flow, steps_of
from tests.workflows.test_ssh_step import logs_of, ssh_connection
from workflows.models import Attempt, Event, LogChunk, Run
from workflows.services.runs import run_start

pytestmark = pytest.mark.django_db

TOKEN = "tok-8c1f2b7e9d4a6c3f"
USERNAME = "svc-reporter"
PASSWORD = "pw-5ab0e2c9d17f48aa"
SSH_PASSWORD = "ssh-pw-0f9e8d7c6b5a4321"


class EchoHandler(BaseHTTPRequestHandler):
    """Echoes the credentials of the request: headers in the body and a response header; the
    decoded Basic credentials too. /deny answers 401 with the same body."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        authorization = self.headers.get("Authorization", "")
        decoded = ""
        if authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
        body = json.dumps(
            {
                "authorization": authorization,
                "x_api_key": self.headers.get("X-API-Key", ""),
                "basic_credentials": decoded,
                "message": "you sent "
                + (decoded or authorization or self.headers.get("X-API-Key", "")),
            }
        ).encode()
        respond(self, 401 if self.path.startswith("/deny") else 200, body,
                headers={"X-Echo": authorization or self.headers.get("X-API-Key", "")})

    def log_message(self, format: str, *args) -> None:  # quiet
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    with local_http_server(EchoHandler) as url:
        yield url


def stored_texts(run: Run) -> dict[str, str]:
    """Everything stored about the run that could carry a secret, by where it is stored."""
    run.refresh_from_db()
    texts = {"run": json.dumps([run.output, run.error])}
    for chunk in LogChunk.objects.filter(step_run__run=run):
        texts[f"log {chunk.step_run.key} #{chunk.seq} ({chunk.stream})"] = chunk.text
    for attempt in Attempt.objects.filter(step_run__run=run):
        where = f"attempt {attempt.step_run.key} #{attempt.number}"
        texts[f"{where} input"] = json.dumps(attempt.input)
        texts[f"{where} output"] = json.dumps(attempt.output)
        texts[f"{where} error"] = json.dumps(attempt.error)
    for step in steps_of(run).values():
        texts[f"step {step.key}"] = json.dumps([step.output, step.error])
    for event in Event.objects.filter(run=run):
        texts[f"event {event.pk} {event.kind}"] = event.reason + json.dumps(event.data)
    return texts


def assert_never_stored(run: Run, *secrets: str) -> None:
    leaks = [
        (where, secret)
        for where, text in stored_texts(run).items()
        for secret in secrets
        if secret in text
    ]
    assert not leaks, f"secrets stored in: {leaks}"


def http_run(
    base_url: str,
    auth: str,
    secret: dict,
    *,
    path: str = "/echo",
    retry: dict | None = None,
    **config,
) -> Run:
    connection_create(
        actor=None,
        name="api",
        kind="http",
        config={"base_url": base_url, "auth": auth, **config},
        secret=secret,
    )
    step = {
        "key": "call",
        "type": "http",
        "connection": "api",
        "request": {"method": "GET", "url": path},
    }
    if retry:
        step["retry"] = retry
    flow = make_flow({"slug": "echo", "name": "Echo", "steps": [step]})
    run, _ = run_start(flow=flow, input={})
    drain()
    run.refresh_from_db()
    return run


# --- http --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "secret", "config", "echoed_field", "expected"),
    [
        ("bearer", {"token": TOKEN}, {}, "authorization", "Bearer ***"),
        ("header", {"token": TOKEN}, {"auth_header": "X-API-Key"}, "x_api_key", "***"),
        ("basic", {"username": USERNAME, "password": PASSWORD}, {}, "basic_credentials", "***:***"),
    ],
)
def test_http_credentials_echoed_by_the_server_are_redacted(
    echo_server, auth, secret, config, echoed_field, expected
):
    run = http_run(echo_server, auth, secret, **config)
    assert run.status == "completed"
    output = steps_of(run)["call"].output
    assert output["body"][echoed_field] == expected
    assert "***" in output["body"]["message"]
    assert_never_stored(run, *secret.values())


def test_http_credentials_in_a_failed_response_are_redacted_in_errors_and_events(echo_server):
    run = http_run(
        echo_server,
        "bearer",
        {"token": TOKEN},
        path="/deny",
        retry={"max_attempts": 2, "backoff_seconds": 0},
    )
    assert run.status == "failed"
    step = steps_of(run)["call"]
    assert step.error["type"] == "HTTPStatusError"
    assert step.output["body"]["authorization"] == "Bearer ***"
    assert step.output["headers"]["x-echo"] == "Bearer ***"
    assert Attempt.objects.filter(step_run=step).count() == 2
    assert Event.objects.filter(run=run, kind="step_retry_scheduled").exists()
    assert_never_stored(run, TOKEN)


def test_an_echoed_basic_authorization_header_is_redacted(echo_server):
    run = http_run(echo_server, "basic", {"username": USERNAME, "password": PASSWORD})
    encoded = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    assert_never_stored(run, encoded)


# --- ssh ---------------------------------------------------------------------------------------


def ssh_run(command: str, **params) -> Run:
    flow = make_flow(
        {
            "slug": "remote",
            "name": "Remote",
            "steps": [
                {"key": "remote", "type": "ssh", "connection": "vm", "command": command, **params}
            ],
        }
    )
    run, _ = run_start(flow=flow, input={})
    drain()
    run.refresh_from_db()
    return run


@pytest.fixture
def secret_file(tmp_path):
    """A file on the "remote" host (loopback) whose content is the connection's password."""
    path = tmp_path / "secret.txt"
    path.write_text(SSH_PASSWORD)
    return path


@pytest.mark.ssh
def test_a_secret_printed_by_the_remote_command_is_redacted(sshd, secret_file):
    ssh_connection(sshd, secret={"private_key": sshd.client_private_key, "password": SSH_PASSWORD})
    run = ssh_run(f'echo "password is $(cat {secret_file})"')
    assert run.status == "completed"
    step = steps_of(run)["remote"]
    assert logs_of(step, "stdout") == "password is ***\n"
    assert step.output["stdout_tail"] == "password is ***\n"
    assert_never_stored(run, SSH_PASSWORD)


@pytest.mark.ssh
def test_a_secret_split_across_two_log_chunks_is_redacted_whole(sshd, secret_file):
    ssh_connection(sshd, secret={"private_key": sshd.client_private_key, "password": SSH_PASSWORD})
    first, second = SSH_PASSWORD[:10], SSH_PASSWORD[10:]
    # The first half is flushed to the logs (every 0.25 s) well before the second arrives.
    run = ssh_run(
        f"printf 'start:'; head -c 10 {secret_file}; sleep 0.6; "
        f"tail -c +11 {secret_file}; echo ':end'"
    )
    assert run.status == "completed"
    step = steps_of(run)["remote"]
    chunks = list(
        LogChunk.objects.filter(step_run=step, stream="stdout")
        .order_by("seq")
        .values_list("text", flat=True)
    )
    assert len(chunks) >= 2, chunks
    assert "".join(chunks) == "start:***:end\n"
    for chunk in chunks:
        assert first not in chunk and second not in chunk
    assert_never_stored(run, SSH_PASSWORD, first, second)


@pytest.mark.ssh
def test_a_secret_in_a_failing_commands_output_is_redacted_in_the_error_and_events(
    sshd, secret_file
):
    ssh_connection(sshd, secret={"private_key": sshd.client_private_key, "password": SSH_PASSWORD})
    run = ssh_run(
        f'echo "bad password $(cat {secret_file})"; exit 4',
        retry={"max_attempts": 2, "backoff_seconds": 0},
    )
    assert run.status == "failed"
    step = steps_of(run)["remote"]
    # The error message quotes the command's last line, which held the secret.
    assert step.error["message"] == "the command exited with code 4: bad password ***"
    assert step.output == {"exit_code": 4, "stdout_tail": "bad password ***\n"}
    assert Event.objects.filter(
        run=run, kind="step_retry_scheduled", reason__contains="bad password ***"
    ).exists()
    assert_never_stored(run, SSH_PASSWORD)


@pytest.mark.ssh
def test_a_private_key_printed_by_the_remote_command_is_redacted_line_by_line(sshd):
    ssh_connection(sshd)
    run = ssh_run(f"cat {sshd.client_key_path}")
    assert run.status == "completed"
    key_lines = [line for line in sshd.client_private_key.splitlines() if len(line) >= 4]
    assert_never_stored(run, sshd.client_private_key, *key_lines)
    step = steps_of(run)["remote"]
    assert set(logs_of(step, "stdout").split()) == {"***"}
