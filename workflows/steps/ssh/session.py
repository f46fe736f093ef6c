"""Running one command on an open transport, as `ssh host 'cmd'` does, and stopping it.

The wrapper. The command line sent to the server is
`printf 'wf-remote-pid:%s\\n' "$$"; eval '<command>'`: the login shell reports its PID on the
first line of stdout (the step reads and removes that line), then runs the command itself, so
the command sees the same shell, environment and exit semantics as with `ssh host 'cmd'`. SSH
servers start every session's shell with setsid() (OpenSSH's do_exec_no_pty/do_exec_pty,
Dropbear alike), so that PID is also the process group (and session) of the command and of every
job it starts without leaving the group.

Stopping. Cancel and timeout open a second session channel on the same transport and run
`kill -TERM -PGID`, then, when the group is still there after KILL_GRACE_SECONDS, `kill -KILL
-PGID` (the grace loop runs remotely, in that second channel). Closing the main channel alone
would not do: without a pty nothing hangs the command up, and OpenSSH's "signal" channel request
is refused for root logins ("session signalling requires privilege separation") and ignored
before 7.9.

The end. The step ends when the command's exit status arrives, with that code. A job the
command left in the background may still hold the session's stdout open, so EOF may never come:
after the exit status the step reads what is already there (until EOF, or until the channel has
been quiet for QUIET_SECONDS, at most EOF_GRACE_SECONDS) and closes. Without a pty, closing does
not signal anything, so a background job outlives the step, as it does with `ssh host 'cmd'`.
"""

from __future__ import annotations

import codecs
import json
import re
import select
import shlex
import time
from collections.abc import Callable
from typing import Any

import paramiko

from connections.redaction import Redactor
from workflows.steps.base import StepCanceled, StepFailed

POLL_SECONDS = 0.1
READ_BYTES = 32 * 1024
QUIET_SECONDS = 0.2
EOF_GRACE_SECONDS = 2.0
KILL_GRACE_SECONDS = 2.0
PTY_TERM = "dumb"  # no colours or cursor movement in stored logs
PTY_WIDTH = 200
PID_MARKER = b"wf-remote-pid:"
PID_LINE_MAX = 64
SYSTEM_STREAM = "system"
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SSHConnectionLost(StepFailed):
    """The connection dropped while the command ran. Retryable: the next attempt reconnects.
    The output read so far is kept on the attempt."""

    def __init__(self, message: str, *, output: Any = None):
        super().__init__(message, error_type="SSHConnectionLost", output=output, retryable=True)


def env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def remote_command(command: str, env: dict[str, Any] | None) -> str:
    """`command`, preceded by `export NAME='value' ...;` for the `env` mapping. Exports rather
    than the SSH "env" request, because OpenSSH servers only accept the names in their AcceptEnv
    (Debian: LANG LC_*) and drop the rest without telling the client. Values are shell-quoted,
    so a value from a run's input cannot inject commands; the login shell must be POSIX."""
    if not env:
        return command
    exports = " ".join(f"{name}={shlex.quote(env_value(value))}" for name, value in env.items())
    return f"export {exports}; {command}"


def wrapped_command(command: str, env: dict[str, Any] | None) -> str:
    """The line sent to the server: report the shell's PID (= its process group), then run the
    command in that same shell (see the module doc)."""
    inner = remote_command(command, env)
    return f"printf '{PID_MARKER.decode()}%s\\n' \"$$\"; eval {shlex.quote(inner)}"


def kill_script(pgid: int, grace_seconds: float = KILL_GRACE_SECONDS) -> str:
    """TERM to the process group, then KILL if it is still there after the grace period. Plain
    `kill -SIG -PGID` (no `--`: dash refuses it)."""
    rounds = max(1, int(grace_seconds / 0.2))
    return (
        f"kill -TERM -{pgid} 2>/dev/null || exit 0; i=0; "
        f"while kill -0 -{pgid} 2>/dev/null; do "
        f"if [ $i -ge {rounds} ]; then kill -KILL -{pgid} 2>/dev/null; exit 0; fi; "
        "sleep 0.2; i=$((i+1)); done"
    )


class StreamText:
    """Bytes of one stream in, text out: incremental UTF-8 (a character split across reads
    survives). Bytes that are not UTF-8 are kept as `surrogateescape` code points and NUL as
    it is, so the whole log resource gets the original bytes back (resources/logs.py); what
    goes to a database column passes through `storable_text` (NUL shown as ␀, the rest as
    U+FFFD).
    With `crlf=True` (a pty writes CRLF) CRLF becomes LF, a CR at the end of a read held until
    the next one shows whether an LF follows; otherwise line ends are left as they are."""

    def __init__(self, *, crlf: bool = True) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self._crlf = crlf
        self._held_cr = False

    def feed(self, data: bytes, *, final: bool = False) -> str:
        text = self._decoder.decode(data, final)
        if not self._crlf:
            return text
        if self._held_cr:
            text = "\r" + text
            self._held_cr = False
        if text.endswith("\r") and not final:
            text = text[:-1]
            self._held_cr = True
        return text.replace("\r\n", "\n")


class Tail:
    """The last `size` characters of a stream, with no secret cut in half at its start: it
    keeps `size` plus the longest secret's length, redacts, then cuts (the executor redacts the
    output again; this only closes the gap a cut would open)."""

    def __init__(self, size: int, secrets: list[str]):

        self.size = size
        self._redactor = Redactor(secrets)
        self._keep = size + max((len(s) for s in self._redactor.secrets), default=0)
        self._text = ""

    def add(self, text: str) -> None:
        self._text = (self._text + text)[-self._keep :]

    def value(self) -> str:
        return self._redactor.redact_text(self._text)[-self.size :]


class RemoteCommand:
    """One command on `transport`: start it, stream its output to `log`, stop it on cancel.

    `canceled()` is polled between reads; `on_output(stream, text)` sees the command's output
    (the PID line removed)."""

    def __init__(
        self,
        transport: paramiko.Transport,
        *,
        log: Callable[[str, str], None],
        canceled: Callable[[], bool],
        on_output: Callable[[str, str], None],
        use_pty: bool,
        open_timeout: float,
    ) -> None:
        self.transport = transport
        self.log = log
        self.canceled = canceled
        self.on_output = on_output
        self.use_pty = use_pty
        self.open_timeout = open_timeout
        self.pid: int | None = None
        self._pid_buffer: bytes | None = b""  # None once the PID line is consumed
        self._decoders = {"stdout": StreamText(crlf=use_pty), "stderr": StreamText(crlf=use_pty)}
        self.channel: paramiko.Channel | None = None

    def start(self, command: str, env: dict[str, Any] | None) -> None:
        self.channel = self.transport.open_session(timeout=self.open_timeout)
        if self.use_pty:
            self.channel.get_pty(term=PTY_TERM, width=PTY_WIDTH)
        self.channel.exec_command(wrapped_command(command, env))

    # --- output --------------------------------------------------------------------------------

    def _take(self, stream: str, data: bytes, *, final: bool = False) -> None:
        if stream == "stdout" and self._pid_buffer is not None:
            data = self._take_pid_line(data, final=final)
        text = self._decoders[stream].feed(data, final=final)
        if text:
            self.log(text, stream)
            self.on_output(stream, text)

    def _take_pid_line(self, data: bytes, *, final: bool) -> bytes:
        """Hold stdout until the first line is seen; remove it when it is the PID line."""
        buffer = (self._pid_buffer or b"") + data
        newline = buffer.find(b"\n")
        if newline < 0 and len(buffer) < PID_LINE_MAX and not final:
            self._pid_buffer = buffer
            return b""
        self._pid_buffer = None
        if newline >= 0 and buffer.startswith(PID_MARKER):
            value = buffer[len(PID_MARKER) : newline].strip()
            if value.isdigit() and int(value) > 1:
                self.pid = int(value)
                self.log(f"remote process group {self.pid}\n", SYSTEM_STREAM)
                return buffer[newline + 1 :]
        return buffer  # not our line (a shell that is not POSIX?): keep it as output

    def _read_ready(self) -> bool:
        channel = self.channel
        got = False
        while channel.recv_stderr_ready():
            self._take("stderr", channel.recv_stderr(READ_BYTES))
            got = True
        while channel.recv_ready():
            data = channel.recv(READ_BYTES)
            if not data:
                break
            self._take("stdout", data)
            got = True
        return got

    def wait(self) -> int | None:
        """Stream output until the command exits; its exit code (None when the server sent
        none). Raises StepCanceled after stopping the command when `canceled()` turns true,
        and SSHConnectionLost when the transport dies first (output so far kept by the
        caller, which owns `on_output`)."""
        channel = self.channel
        while not channel.exit_status_ready():
            if self.canceled():
                self.stop()
                raise StepCanceled(
                    "the step was canceled; the remote process group was sent TERM"
                    + (f" (pid {self.pid})" if self.pid else "")
                )
            select.select([channel], [], [], POLL_SECONDS)
            if not self._read_ready() and channel.eof_received and not channel.closed:
                time.sleep(POLL_SECONDS)  # EOF keeps the channel readable: do not spin
        self._drain_after_exit()
        self._take("stdout", b"", final=True)
        self._take("stderr", b"", final=True)
        if channel.exit_status == -1 and self._transport_died():
            raise SSHConnectionLost("the SSH connection dropped while the command ran")
        status = channel.recv_exit_status()
        return None if status == -1 else status

    def _transport_died(self, within: float = 1.0) -> bool:
        """Whether the transport is (or, within `within` seconds, turns out to be) dead. paramiko
        closes the channels of a dropped connection a moment before it marks the transport
        inactive; a command killed by a signal closes its channel on a live transport."""
        deadline = time.monotonic() + within
        while self.transport.is_active():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _drain_after_exit(self) -> None:
        """Read what is already there after the exit status: until EOF, or until the channel
        has been quiet for QUIET_SECONDS (a background job may hold stdout open forever)."""
        channel = self.channel
        started = quiet_since = time.monotonic()
        while True:
            if self._read_ready():
                quiet_since = time.monotonic()
            if channel.closed or (channel.eof_received and not channel.recv_ready()
                                  and not channel.recv_stderr_ready()):
                return
            now = time.monotonic()
            if now - quiet_since >= QUIET_SECONDS or now - started >= EOF_GRACE_SECONDS:
                self.log(
                    "the command exited; its output is still open (a background job?), "
                    "not waiting for it\n",
                    SYSTEM_STREAM,
                )
                return
            select.select([channel], [], [], QUIET_SECONDS / 4)

    # --- stopping ------------------------------------------------------------------------------

    def stop(self) -> None:
        """TERM, then KILL after the grace period, to the command's process group, through a
        second channel; then close the main channel. Best effort: without a PID (the wrapper's
        line never came) or a usable transport, closing the channel is all there is."""
        if self.pid is not None and self.transport.is_active():
            try:
                killer = self.transport.open_session(timeout=self.open_timeout)
                killer.exec_command(kill_script(self.pid))
                deadline = time.monotonic() + KILL_GRACE_SECONDS + 2.0
                while not killer.exit_status_ready() and time.monotonic() < deadline:
                    self._read_ready()
                    select.select([killer], [], [], POLL_SECONDS)
                killer.close()
                self.log(f"sent TERM to remote process group {self.pid}\n", SYSTEM_STREAM)
            except (paramiko.SSHException, OSError) as exc:
                self.log(f"could not signal the remote process group: {exc}\n", SYSTEM_STREAM)
        try:
            self._read_ready()
        except (paramiko.SSHException, OSError):
            pass
        self.channel.close()
