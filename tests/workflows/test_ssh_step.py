"""The ssh step against a real OpenSSH server on loopback (the `sshd` fixture).

Steps run through the real executor: `drain()` in this thread, or `executor.advance` in a
background thread when the test watches a step while it runs (those tests use
`transactional_db`, since the test's own transaction is invisible to other threads).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from django.db import connections

from connections.models import Connection
from connections.services import connection_create
from resources.models import Resource, ResourceKind
from tests.factories import drain, make_flow, steps_of
from workflows.definitions import validate_definition
from workflows.engine import executor
from workflows.errors import DefinitionInvalid
from workflows.models import Attempt, Event, LogChunk, StepRun
from workflows.services.runs import run_cancel, run_start
from workflows.steps.ssh import StreamText, Tail, load_private_key, remote_command

# --- helpers shared with test_redaction_in_steps.py and tests/e2e/test_agent_pattern.py ------


def ssh_connection(
    sshd, name: str = "vm", *, config: dict | None = None, secret: dict | None = None
) -> Connection:
    """An ssh connection to the loopback sshd, trusting its host key, with the client key."""
    return connection_create(
        actor=None,
        name=name,
        kind="ssh",
        config={
            "host": sshd.host,
            "port": sshd.port,
            "username": sshd.username,
            "known_hosts": sshd.host_key_line,
            **(config or {}),
        },
        secret=secret if secret is not None else {"private_key": sshd.client_private_key},
    )


def ssh_definition(command: str, *, slug: str = "remote", **params) -> dict:
    return {
        "slug": slug,
        "name": slug.title(),
        "steps": [
            {"key": "remote", "type": "ssh", "connection": "vm", "command": command, **params}
        ],
    }


def run_ssh(command: str, **params):
    """Start a one-step ssh flow on connection "vm", drain it, and return (run, step run)."""
    flow = make_flow(ssh_definition(command, **params))
    run, _ = run_start(flow=flow, input={})
    drain()
    run.refresh_from_db()
    return run, steps_of(run)["remote"]


def logs_of(step: StepRun, stream: str | None = None) -> str:
    chunks = LogChunk.objects.filter(step_run=step).order_by("seq")
    if stream:
        chunks = chunks.filter(stream=stream)
    return "".join(chunks.values_list("text", flat=True))


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for a reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_until(predicate, *, timeout: float = 15.0, interval: float = 0.05, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def advance_in_thread(step_id: int) -> threading.Thread:
    """Run the executor for `step_id` in a background thread, as a worker would."""

    def target() -> None:
        try:
            executor.advance(step_id)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, name=f"test-advance-{step_id}", daemon=True)
    thread.start()
    return thread


def read_pid(path: Path) -> int:
    return int(
        wait_until(lambda: path.exists() and path.read_text().strip(), what=f"pid file {path}")
    )


# --- parameters, without a server --------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"command": "true"}, "steps[0].connection"),
        ({"connection": "vm"}, "steps[0].command"),
        ({"connection": "vm", "command": "   "}, "steps[0].command"),
        ({"connection": "vm", "command": "true", "env": ["A=1"]}, "steps[0].env"),
        ({"connection": "vm", "command": "true", "env": {"1BAD": "x"}}, "steps[0].env.1BAD"),
        (
            {"connection": "vm", "command": "true", "connect_timeout_seconds": 0},
            "steps[0].connect_timeout_seconds",
        ),
        ({"connection": "vm", "command": "true", "pty": "yes"}, "steps[0].pty"),
        ({"connection": "vm", "command": "true", "shell": "bash"}, "steps[0].shell"),
    ],
)
def test_ssh_step_parameters_are_checked(params, path):
    definition = {
        "slug": "bad",
        "name": "Bad",
        "steps": [{"key": "remote", "type": "ssh", **params}],
    }
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(definition)
    assert path in [p["path"] for p in caught.value.problems]


@pytest.mark.django_db
def test_an_ssh_step_refuses_a_connection_of_another_kind_at_release():
    connection_create(actor=None, name="vm", kind="http", config={"base_url": "http://x.test"})
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(ssh_definition("true"), check_connections=True)
    assert any("http connection" in p["message"] for p in caught.value.problems)


def test_env_is_exported_shell_quoted_before_the_command():
    command = remote_command("run", {"A": "it's $HOME; rm -rf /", "B": 3, "C": True, "D": None})
    assert command == ("export A='it'\"'\"'s $HOME; rm -rf /' B=3 C=true D=''; run")
    assert remote_command("run", {}) == "run"


def test_stream_text_keeps_characters_split_across_reads_and_turns_crlf_into_lf():
    stream = StreamText()
    data = "é€\r\nnext\r\n".encode()
    # Split inside the two-byte é, inside the three-byte €, and between CR and LF.
    pieces = [data[:1], data[1:3], data[3:5], data[5:6], data[6:]]
    assert "".join(stream.feed(p) for p in pieces) + stream.feed(b"", final=True) == "é€\nnext\n"
    assert StreamText().feed(b"progress\r", final=True) == "progress\r"
    # Undecodable bytes survive as surrogateescape code points (the log resource writes them
    # back as the original bytes; database columns get U+FFFD through storable_text).
    assert StreamText().feed(b"\xff ok", final=True) == "\udcff ok"


def test_the_stdout_tail_never_starts_with_half_a_secret():
    tail = Tail(10, ["TOPSECRET-VALUE"])
    tail.add("x" * 50 + "TOPSECRET-VALUE" + "abcdef")
    # A plain cut would keep "ALUE" + "abcdef"; the secret is masked first, then cut.
    assert tail.value() == "x***abcdef"
    assert "ALUE" not in tail.value()


def test_private_keys_load_from_text_with_their_passphrase(tmp_path):
    path = tmp_path / "key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "open sesame", "-f", str(path)], check=True
    )
    text = path.read_text()
    assert load_private_key(text, "open sesame").get_name() == "ssh-ed25519"
    from workflows.steps import StepFailed

    with pytest.raises(StepFailed) as caught:
        load_private_key(text, "wrong")
    assert caught.value.error_type == "SSHKeyInvalid" and not caught.value.retryable
    with pytest.raises(StepFailed):
        load_private_key("not a key", None)


# --- running commands --------------------------------------------------------------------------


@pytest.mark.ssh
@pytest.mark.django_db
def test_exit_code_zero_completes_with_the_output_and_streams_the_logs(sshd):
    ssh_connection(sshd)
    run, step = run_ssh("echo hello; echo to-stderr >&2; echo 'wörld'")
    assert run.status == "completed", step.error
    assert step.status == "completed"
    assert step.output == {"exit_code": 0, "stdout_tail": "hello\nwörld\n"}
    attempt = Attempt.objects.get(step_run=step)
    assert attempt.exit_code == 0 and attempt.status == "completed"
    assert attempt.input["command"] == "echo hello; echo to-stderr >&2; echo 'wörld'"
    # No pty (the default): stderr is a stream of its own; the wrapper's PID line is not output.
    assert logs_of(step, "stdout") == "hello\nwörld\n"
    assert logs_of(step, "stderr") == "to-stderr\n"
    system = logs_of(step, "system")
    assert "remote process group " in system
    assert f"connecting to {sshd.username}@{sshd.host}:{sshd.port}" in system
    assert "exit code 0" in system


@pytest.mark.ssh
@pytest.mark.django_db
def test_a_non_zero_exit_fails_the_attempt_with_its_exit_code_and_output(sshd):
    ssh_connection(sshd)
    run, step = run_ssh("echo working; echo 'disk full' >&2; exit 3")
    assert run.status == "failed"
    assert step.status == "failed"
    assert step.error["type"] == "NonZeroExit"
    assert step.error["message"] == "the command exited with code 3: disk full"
    assert step.output == {"exit_code": 3, "stdout_tail": "working\n"}
    attempt = Attempt.objects.get(step_run=step)
    assert attempt.status == "failed" and attempt.exit_code == 3
    assert attempt.output["exit_code"] == 3
    assert Event.objects.filter(
        step_run=step, kind="step_failed", reason__contains="NonZeroExit"
    ).exists()


@pytest.mark.ssh
@pytest.mark.django_db
def test_a_non_zero_exit_is_retried_per_the_retry_policy(sshd, tmp_path):
    ssh_connection(sshd)
    counter = tmp_path / "count"
    # Fails the first time, succeeds the second.
    run, step = run_ssh(
        f"echo x >> {counter}; test $(wc -l < {counter}) -ge 2",
        retry={"max_attempts": 2, "backoff_seconds": 0},
    )
    assert run.status == "completed"
    assert list(
        Attempt.objects.filter(step_run=step).order_by("number").values_list("status", "exit_code")
    ) == [("failed", 1), ("completed", 0)]


@pytest.mark.ssh
@pytest.mark.django_db
def test_with_a_pty_stderr_is_merged_and_crlf_becomes_lf(sshd):
    ssh_connection(sshd)
    run, step = run_ssh("echo out; echo err >&2", pty=True)
    assert run.status == "completed", step.error
    assert logs_of(step, "stdout") == "out\nerr\n"
    assert logs_of(step, "stderr") == ""
    assert step.output["stdout_tail"] == "out\nerr\n"


@pytest.mark.ssh
@pytest.mark.django_db
def test_without_a_pty_line_ends_are_untouched(sshd):
    ssh_connection(sshd)
    run, step = run_ssh(r"printf 'a\r\nb\rc\n'; printf 'e\r\n' >&2")
    assert run.status == "completed", step.error
    assert logs_of(step, "stdout") == "a\r\nb\rc\n"
    assert logs_of(step, "stderr") == "e\r\n"


@pytest.mark.ssh
@pytest.mark.django_db
def test_binary_output_never_crashes_the_step(sshd):
    ssh_connection(sshd)
    # NUL (no database text column takes it: shown as U+2400) and bytes that are not UTF-8.
    run, step = run_ssh(r"printf 'a\000b\377c\n'; printf '\000\376' >&2")
    assert run.status == "completed", step.error
    assert logs_of(step, "stdout") == "a\u2400b\ufffdc\n"
    assert logs_of(step, "stderr") == "\u2400\ufffd"
    assert step.output["stdout_tail"] == "a\u2400b\ufffdc\n"


@pytest.mark.ssh
@pytest.mark.django_db
def test_random_bytes_complete_the_run_and_the_log_resource_keeps_them(sshd, tmp_path):
    ssh_connection(sshd)
    sample = tmp_path / "random.bin"
    run, step = run_ssh(f"head -c 4000 /dev/urandom > {sample}; cat {sample}; printf '\\nEND\\n'")
    assert run.status == "completed", step.error
    data = sample.read_bytes()
    assert len(data) == 4000
    log = Resource.objects.get(step_run=step, kind=ResourceKind.LOG)
    with log.file.open("rb") as handle:
        whole = handle.read()
    assert data + b"\nEND\n" in whole  # the original bytes, in order
    assert "\x00" not in logs_of(step) and step.output["exit_code"] == 0
    assert step.output["stdout_tail"].endswith("\nEND\n")


@pytest.mark.ssh
@pytest.mark.django_db
def test_env_values_reach_the_command_exactly_and_cannot_inject(sshd):
    ssh_connection(sshd)
    value = 'it\'s "quoted" $HOME `id` ; exit 7'
    run, step = run_ssh('printf "%s|%s" "$GREETING" "$COUNT"', env={"GREETING": value, "COUNT": 42})
    assert run.status == "completed", step.error
    assert step.output["stdout_tail"] == f"{value}|42"


@pytest.mark.ssh
@pytest.mark.django_db
def test_a_character_split_across_two_reads_survives(sshd):
    ssh_connection(sshd)
    # "é" is C3 A9: the two bytes arrive in different reads, 0.5 s apart.
    run, step = run_ssh(r"printf 'caf\303'; sleep 0.5; printf '\251!\n'")
    assert run.status == "completed"
    assert logs_of(step, "stdout") == "café!\n"
    assert LogChunk.objects.filter(step_run=step, stream="stdout").count() >= 2


@pytest.mark.ssh
@pytest.mark.django_db(transaction=True)
def test_output_reaches_log_chunks_while_the_command_still_runs(sshd, tmp_path):
    ssh_connection(sshd)
    release = tmp_path / "release"
    flow = make_flow(
        ssh_definition(f"echo first; while [ ! -e {release} ]; do sleep 0.1; done; echo second")
    )
    run, _ = run_start(flow=flow, input={})
    step = StepRun.objects.get(run=run, key="remote")
    thread = advance_in_thread(step.pk)
    try:
        wait_until(
            lambda: "first" in logs_of(step, "stdout"), what="the first line in LogChunk rows"
        )
        # The command is still running: it is waiting for the release file.
        attempt = Attempt.objects.get(step_run=step)
        assert attempt.status == "running" and attempt.finished_at is None
        assert "second" not in logs_of(step, "stdout")
    finally:
        release.touch()
        thread.join(30)
    assert not thread.is_alive()
    step.refresh_from_db()
    assert step.status == "completed"
    assert logs_of(step, "stdout") == "first\nsecond\n"


# --- connecting --------------------------------------------------------------------------------


@pytest.mark.ssh
@pytest.mark.django_db
def test_a_changed_host_key_is_refused_and_not_retried(sshd):
    ssh_connection(sshd, config={"known_hosts": sshd.other_host_key_line})
    run, step = run_ssh("echo should-not-run", retry={"max_attempts": 3})
    assert run.status == "failed"
    assert step.error["type"] == "HostKeyMismatch"
    assert "HOST KEY MISMATCH" in step.error["message"]
    assert "SHA256:" in step.error["message"]
    assert Attempt.objects.filter(step_run=step).count() == 1  # a retry cannot fix a key
    assert "should-not-run" not in logs_of(step)


@pytest.mark.ssh
@pytest.mark.django_db
def test_an_unknown_host_is_refused(sshd):
    other_host = "10.255.255.1 " + sshd.host_key_line.split(" ", 1)[1]
    ssh_connection(sshd, config={"known_hosts": other_host})
    run, step = run_ssh("true")
    assert run.status == "failed"
    assert step.error["type"] == "UnknownHostKey"
    assert f"[{sshd.host}]:{sshd.port} is not in connection 'vm'" in step.error["message"]
    assert "ssh-ed25519 SHA256:" in step.error["message"]


@pytest.mark.ssh
@pytest.mark.django_db
def test_empty_known_hosts_trusts_nothing(sshd):
    ssh_connection(sshd)
    # The services refuse an empty known_hosts; a row changed behind their back must not
    # fall back to trusting the server.
    connection = Connection.objects.get(name="vm")
    Connection.objects.filter(pk=connection.pk).update(
        config={**connection.config, "known_hosts": ""}
    )
    run, step = run_ssh("true")
    assert step.error["type"] == "UnknownHostKey"
    assert "no host key in known_hosts" in step.error["message"]


@pytest.mark.ssh
@pytest.mark.django_db
def test_an_authentication_failure_is_a_retried_failed_attempt(sshd, tmp_path):
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    ssh_connection(sshd, secret={"private_key": key.read_text()})
    run, step = run_ssh("true", retry={"max_attempts": 2, "backoff_seconds": 0})
    assert run.status == "failed"
    assert step.error["type"] == "SSHAuthenticationFailed"
    assert f"authentication as {sshd.username!r}" in step.error["message"]
    attempts = Attempt.objects.filter(step_run=step)
    assert attempts.count() == 2
    assert {a.error["type"] for a in attempts} == {"SSHAuthenticationFailed"}


@pytest.mark.ssh
@pytest.mark.django_db
def test_a_server_that_never_speaks_ssh_is_a_connect_timeout(sshd):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts TCP (the kernel completes the handshake) but never answers
    try:
        ssh_connection(sshd, config={"port": silent.getsockname()[1]})
        started = time.monotonic()
        run, step = run_ssh(
            "true", connect_timeout_seconds=1, retry={"max_attempts": 2, "backoff_seconds": 0}
        )
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert step.error["type"] == "SSHConnectTimeout"
    assert "within 1s" in step.error["message"]
    assert Attempt.objects.filter(step_run=step).count() == 2
    assert elapsed < 10


@pytest.mark.ssh
@pytest.mark.django_db
def test_a_closed_port_is_a_connection_failure(sshd):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    ssh_connection(sshd, config={"port": port})
    run, step = run_ssh("true")
    assert step.error["type"] == "SSHConnectionFailed"
    assert f"127.0.0.1:{port}" in step.error["message"]


# --- timeout, cancel, background jobs, dropped connections --------------------------------------


def remote_pid(step: StepRun) -> int:
    """The remote process group the step reported in its system log."""
    text = wait_until(
        lambda: "remote process group" in logs_of(step, "system") and logs_of(step, "system"),
        what="the remote pid in the system log",
    )
    return int(text.split("remote process group ", 1)[1].split()[0])


@pytest.mark.ssh
@pytest.mark.django_db
def test_the_step_timeout_ends_a_remote_sleep(sshd):
    ssh_connection(sshd)
    run, step = run_ssh("sleep 600", timeout_seconds=1)
    assert run.status == "failed"
    assert step.error["type"] == "StepTimeout"
    pid = remote_pid(step)
    wait_until(lambda: not process_alive(pid), timeout=10, what=f"remote sleep {pid} to end")
    assert f"sent TERM to remote process group {pid}" in logs_of(step, "system")


@pytest.mark.ssh
@pytest.mark.django_db
def test_the_step_timeout_ends_the_whole_process_group(sshd, tmp_path):
    ssh_connection(sshd)
    pid_file = tmp_path / "pid"
    # A child that ignores TERM: the KILL after the grace period ends it.
    run, step = run_ssh(
        f"sh -c 'trap \"\" TERM; sleep 600' & echo $! > {pid_file}; wait", timeout_seconds=1
    )
    assert step.error["type"] == "StepTimeout"
    pid = read_pid(pid_file)
    wait_until(lambda: not process_alive(pid), timeout=10, what=f"remote child {pid} to end")
    assert not process_alive(remote_pid(step))


@pytest.mark.ssh
@pytest.mark.django_db(transaction=True)
def test_cancel_mid_command_ends_the_remote_sleep(sshd, settings):
    settings.WF_HEARTBEAT_SECONDS = 0.2
    ssh_connection(sshd)
    flow = make_flow(ssh_definition("sleep 600"))
    run, _ = run_start(flow=flow, input={})
    step = StepRun.objects.get(run=run, key="remote")
    thread = advance_in_thread(step.pk)
    try:
        pid = remote_pid(step)
        assert process_alive(pid)
        run_cancel(run=run, reason="test cancels")
    finally:
        thread.join(30)
    assert not thread.is_alive()
    run.refresh_from_db()
    step.refresh_from_db()
    assert run.status == "canceled" and step.status == "canceled"
    attempt = Attempt.objects.get(step_run=step)
    assert attempt.status == "canceled" and attempt.finished_at is not None
    wait_until(lambda: not process_alive(pid), timeout=10, what=f"remote sleep {pid} to end")


@pytest.mark.ssh
@pytest.mark.django_db(transaction=True)
def test_cancel_with_a_pty_also_ends_the_remote_command(sshd, tmp_path, settings):
    settings.WF_HEARTBEAT_SECONDS = 0.2
    ssh_connection(sshd)
    pid_file = tmp_path / "pid"
    flow = make_flow(ssh_definition(f"sleep 60 & echo $! > {pid_file}; wait", pty=True))
    run, _ = run_start(flow=flow, input={})
    step = StepRun.objects.get(run=run, key="remote")
    thread = advance_in_thread(step.pk)
    try:
        pid = read_pid(pid_file)
        run_cancel(run=run, reason="test cancels")
    finally:
        thread.join(30)
    assert not thread.is_alive()
    wait_until(lambda: not process_alive(pid), timeout=10, what=f"remote sleep {pid} to end")


@pytest.mark.ssh
@pytest.mark.django_db
def test_a_plain_background_job_outlives_the_step(sshd, tmp_path):
    """As with `ssh host 'cmd'`: no pty, so the end of the session signals nothing."""
    ssh_connection(sshd)
    pid_file, done = tmp_path / "pid", tmp_path / "done"
    run, step = run_ssh(f"(sleep 1; echo finished > {done}) >/dev/null 2>&1 & echo $! > {pid_file}")
    assert run.status == "completed", step.error
    pid = read_pid(pid_file)
    wait_until(lambda: done.exists() and done.read_text() == "finished\n", timeout=15,
               what="the background job to finish")
    assert not process_alive(pid)


@pytest.mark.ssh
@pytest.mark.django_db
def test_the_step_ends_with_the_exit_code_while_a_background_job_holds_the_output(sshd, tmp_path):
    ssh_connection(sshd)
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    # The background sleep keeps the session's stdout and stderr open: EOF never comes.
    run, step = run_ssh(f"sleep 60 & echo $! > {pid_file}; echo bye; exit 4")
    try:
        assert time.monotonic() - started < 20
        assert step.error["type"] == "NonZeroExit"
        assert step.output == {"exit_code": 4, "stdout_tail": "bye\n"}
        pid = read_pid(pid_file)
        assert process_alive(pid)  # the job lives on; only cancel and timeout end the group
    finally:
        os.kill(read_pid(pid_file), signal.SIGKILL)


class TcpRelay:
    """A TCP relay on loopback in front of sshd, whose connections the test can cut."""

    def __init__(self, port: int):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.mark.ssh
@pytest.mark.django_db(transaction=True)
def test_a_connection_dropped_mid_command_is_a_retryable_ssh_connection_lost(sshd, tmp_path):
    relay = TcpRelay(sshd.port)
    key = sshd.host_key_line.split(" ", 1)[1]
    ssh_connection(sshd, config={"port": relay.port,
                                 "known_hosts": f"[127.0.0.1]:{relay.port} {key}"})
    pid_file = tmp_path / "pid"
    flow = make_flow(ssh_definition(f"echo $$ > {pid_file}; echo before-the-drop; sleep 600",
                                    retry={"max_attempts": 1}))
    run, _ = run_start(flow=flow, input={})
    step = StepRun.objects.get(run=run, key="remote")
    thread = advance_in_thread(step.pk)
    try:
        wait_until(lambda: "before-the-drop" in logs_of(step, "stdout"), what="the first line")
        relay.cut()
        thread.join(30)
    finally:
        relay.close()
        if pid_file.exists():
            try:
                os.killpg(read_pid(pid_file), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not thread.is_alive()
    attempt = Attempt.objects.get(step_run=step)
    assert attempt.status == "failed"
    assert attempt.error["type"] == "SSHConnectionLost"
    assert attempt.output == {"exit_code": None, "stdout_tail": "before-the-drop\n"}


@pytest.mark.ssh
@pytest.mark.django_db
def test_keepalive_seconds_sets_the_transport_keepalive(sshd):
    from workflows.steps.ssh.client import open_chain

    conn = ssh_connection(sshd, config={"keepalive_seconds": 7})
    documents = {"vm": {"kind": "ssh", "config": conn.config}}
    secrets = {"vm": {"private_key": sshd.client_private_key}}
    for override, expected in ((None, 7), (3, 3)):
        chain = open_chain(name="vm", connections=documents, secrets=secrets, timeout=5,
                           keepalive_seconds=override)
        try:
            packetizer = chain.transport.packetizer
            assert packetizer._Packetizer__keepalive_interval == expected
        finally:
            chain.close()
