"""The ssh step: run one command on a remote host over SSH (paramiko), streaming its output.

Connection (kind ssh): config `{host, port (22), username, known_hosts}`, secret
`{private_key (PEM or OpenSSH text), passphrase?}` and/or `{password}`.

Trust: the server's host key must be in the connection's `known_hosts` (the line(s) that
`ssh-keyscan` prints). Nothing else is trusted: no system or user known_hosts files, no agent, no
keys from ~/.ssh, no auto-adding. An unknown host fails the attempt as `UnknownHostKey`, a changed
key as `HostKeyMismatch`; neither is retried (a retry cannot change the key, and a changed key
may be someone in the middle).

Parameters: `connection`, `command` (references are resolved by the engine before the handler
runs), `env` (a mapping; see `remote_command`), `connect_timeout_seconds` (10), `pty` (true), and
the common `timeout_seconds` / `retry`.

Output `{exit_code, stdout_tail}` (the last TAIL_CHARS characters of stdout); a non-zero exit is
a failed attempt (`NonZeroExit`) carrying the same output. Output reaches the logs while the
command runs, read in small pieces and decoded incrementally.

Why a pty by default: closing a pty session makes the kernel hang up the remote terminal, so the
remote process group gets SIGHUP when the step is canceled or times out. Without a pty, closing
the channel leaves the command running, and OpenSSH's "signal" channel request is refused in the
cases that matter (for root logins sshd answers "session signalling requires privilege
separation"; servers before 7.9 ignore it). The price: a pty merges stderr into stdout, writes
CRLF line ends (turned back into LF here) and gives the command a terminal as stdin. `pty: false`
keeps stdout and stderr apart, at the cost of a canceled command running on until it ends.
Background jobs meant to outlive the step must leave the session (`setsid nohup CMD >LOG 2>&1
</dev/null &`), as with `ssh -t`.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import select
import shlex
import socket
import time
from typing import Any

import paramiko
from paramiko.hostkeys import HostKeyEntry

from connections.redaction import Redactor
from connections.selectors import secret_values
from workflows.steps.base import (
    Problem,
    StepCanceled,
    StepContext,
    StepFailed,
    StepOutcome,
    StepType,
    problem,
    register_step_type,
)

DEFAULT_PORT = 22
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10.0
KEEPALIVE_SECONDS = 30
POLL_SECONDS = 0.1
READ_BYTES = 32 * 1024
TAIL_CHARS = 4096
# After the exit status arrives, how long to wait for the rest of the output (EOF). Without a
# pty, a background job that kept the session's stdout open would otherwise hold the step.
EOF_GRACE_SECONDS = 2.0
PTY_TERM = "dumb"  # no colours or cursor movement in stored logs
PTY_WIDTH = 200
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The log stream of the step's own notes (connecting, exit code), apart from the command's.
SYSTEM_STREAM = "system"


class UnknownHostKeyError(paramiko.SSHException):
    """The server's host name has no key in the connection's known_hosts."""

    def __init__(self, hostname: str, key: paramiko.PKey):
        super().__init__(f"{hostname} is not in known_hosts")
        self.hostname = hostname
        self.key = key


class _RejectUnknownHost(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, raising a type the step can tell apart from other failures."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise UnknownHostKeyError(hostname, key)


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def load_known_hosts(client: paramiko.SSHClient, text: str) -> int:
    """Put the host keys in `text` (known_hosts lines) into the client's own host keys and
    return how many lines were loaded. `@cert-authority` and `@revoked` lines are skipped:
    paramiko supports neither, and skipping leaves those keys untrusted."""
    keys = client.get_host_keys()
    loaded = 0
    for number, raw in enumerate((text or "").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("@"):
            continue
        try:
            entry = HostKeyEntry.from_line(line, lineno=number)
        except Exception as exc:  # InvalidHostKey, UnknownKeyType, binascii errors, ...
            raise StepFailed(
                f"known_hosts line {number} could not be read: {exc}",
                error_type="KnownHostsInvalid",
                retryable=False,
            ) from exc
        if entry is None:
            raise StepFailed(
                f"known_hosts line {number} is not 'HOSTS KEYTYPE BASE64-KEY'",
                error_type="KnownHostsInvalid",
                retryable=False,
            )
        for hostname in entry.hostnames:
            keys.add(hostname, entry.key.get_name(), entry.key)
        loaded += 1
    return loaded


def load_private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    """A paramiko key from PEM or OpenSSH private key text (ed25519, ECDSA or RSA)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    data = text.strip().encode() + b"\n"
    password = passphrase.encode() if passphrase else None
    try:
        try:
            loaded = serialization.load_ssh_private_key(data, password=password)
        except ValueError:
            loaded = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        # cryptography's messages describe the problem, never the key material.
        raise StepFailed(
            f"the connection's private_key could not be loaded: {exc}",
            error_type="SSHKeyInvalid",
            retryable=False,
        ) from None
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        key_class: type[paramiko.PKey] = paramiko.Ed25519Key
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        key_class = paramiko.ECDSAKey
    elif isinstance(loaded, rsa.RSAPrivateKey):
        key_class = paramiko.RSAKey
    else:
        raise StepFailed(
            f"unsupported private key type {type(loaded).__name__}",
            error_type="SSHKeyInvalid",
            retryable=False,
        )
    try:
        return key_class.from_private_key(io.StringIO(data.decode()), password=passphrase or None)
    except (paramiko.SSHException, ValueError, TypeError) as exc:
        raise StepFailed(
            f"the connection's private_key could not be loaded: {exc}",
            error_type="SSHKeyInvalid",
            retryable=False,
        ) from None


def env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def remote_command(command: str, env: dict[str, Any] | None) -> str:
    """The command line sent to the server: `command`, preceded by `export NAME='value' ...;`
    for the `env` mapping. Exports rather than the SSH "env" request, because OpenSSH servers
    only accept the names in their AcceptEnv (Debian: LANG LC_*) and drop the rest without
    telling the client. Values are shell-quoted, so a value from a run's input cannot inject
    commands; the login shell must be POSIX (sh, bash, zsh, ...)."""
    if not env:
        return command
    exports = " ".join(f"{name}={shlex.quote(env_value(value))}" for name, value in env.items())
    return f"export {exports}; {command}"


class StreamText:
    """Bytes of one stream in, text out: incremental UTF-8 (a character split across reads
    survives; invalid bytes become U+FFFD) and CRLF turned into LF (a pty writes CRLF), with a
    CR at the end of a read held until the next one shows whether an LF follows."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held_cr = False

    def feed(self, data: bytes, *, final: bool = False) -> str:
        text = self._decoder.decode(data, final)
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


def _last_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= limit else "…" + line[-limit:]


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@register_step_type
class SshStep(StepType):
    """Runs `command` on the connection's host. Output: {exit_code, stdout_tail}."""

    name = "ssh"
    param_keys = frozenset({"connection", "command", "env", "connect_timeout_seconds", "pty"})
    connection_kinds = frozenset({"ssh"})

    def validate(self, step: dict[str, Any], path: str) -> list[Problem]:
        problems = super().validate(step, path)
        if not isinstance(step.get("connection"), str) or not step.get("connection"):
            problems.append(
                problem(f"{path}.connection", "required: the name of an ssh connection")
            )
        command = step.get("command")
        if not isinstance(command, str) or not command.strip():
            problems.append(problem(f"{path}.command", "required: the command line to run"))
        env = step.get("env")
        if env is not None:
            if not isinstance(env, dict):
                problems.append(problem(f"{path}.env", "must be a mapping of NAME to value"))
            else:
                for name in env:
                    if not isinstance(name, str) or not ENV_NAME_RE.fullmatch(name):
                        problems.append(
                            problem(
                                f"{path}.env.{name}",
                                "not a variable name (letters, digits and _, not starting with a digit)",
                            )
                        )
        timeout = step.get("connect_timeout_seconds")
        if timeout is not None and not _positive_number(timeout):
            problems.append(problem(f"{path}.connect_timeout_seconds", "must be a number > 0"))
        if "pty" in step and not isinstance(step["pty"], bool):
            problems.append(problem(f"{path}.pty", "must be true or false"))
        return problems

    # --- running -----------------------------------------------------------------------------

    def execute(self, ctx: StepContext) -> StepOutcome:
        name = ctx.step["connection"]
        config = ctx.connections[name]["config"]
        secret = ctx.secret(name)
        host, username = config.get("host"), config.get("username")
        if not host or not username:
            raise StepFailed(
                f"connection {name!r} has no host or username",
                error_type="ConnectionInvalid",
                retryable=False,
            )
        port = int(config.get("port") or DEFAULT_PORT)
        use_pty = ctx.step.get("pty", True)
        connect_timeout = float(
            ctx.step.get("connect_timeout_seconds") or DEFAULT_CONNECT_TIMEOUT_SECONDS
        )
        command = remote_command(ctx.step["command"], ctx.step.get("env"))

        client = paramiko.SSHClient()
        try:
            # Only the connection's known_hosts: never load_system_host_keys(), never auto-add.
            if not load_known_hosts(client, config.get("known_hosts", "")):
                raise StepFailed(
                    f"connection {name!r} has no host key in known_hosts; add the server's line "
                    f"(ssh-keyscan -p {port} {host})",
                    error_type="UnknownHostKey",
                    retryable=False,
                )
            client.set_missing_host_key_policy(_RejectUnknownHost())
            ctx.log(f"connecting to {username}@{host}:{port}\n", SYSTEM_STREAM)
            self._connect(
                client,
                host=host,
                port=port,
                username=username,
                secret=secret,
                timeout=connect_timeout,
                connection=name,
            )
            if ctx.canceled:
                raise StepCanceled("the step was canceled")
            transport = client.get_transport()
            transport.set_keepalive(KEEPALIVE_SECONDS)
            channel = transport.open_session(timeout=connect_timeout)
            if use_pty:
                channel.get_pty(term=PTY_TERM, width=PTY_WIDTH)
            ctx.log(f"$ {ctx.step['command']}\n", SYSTEM_STREAM)
            channel.exec_command(command)
            tail = Tail(TAIL_CHARS, secret_values(secret))
            exit_code = self._stream(ctx, channel, tail)
        except paramiko.SSHException as exc:
            raise StepFailed(f"SSH error: {exc}", error_type="SSHError") from exc
        except OSError as exc:
            raise StepFailed(
                f"connection to {host}:{port} lost: {exc}", error_type="SSHConnectionFailed"
            ) from exc
        finally:
            client.close()  # closes the channel too: with a pty, the remote side gets SIGHUP

        output = {"exit_code": exit_code, "stdout_tail": tail.value()}
        if exit_code == 0:
            ctx.log("exit code 0\n", SYSTEM_STREAM)
            return StepOutcome.completed(output, exit_code=0)
        if exit_code is None:
            ctx.log("no exit status\n", SYSTEM_STREAM)
            raise StepFailed(
                "the command ended without an exit status (killed by a signal, or "
                "the connection dropped)",
                error_type="NoExitStatus",
                output=output,
            )
        ctx.log(f"exit code {exit_code}\n", SYSTEM_STREAM)
        last = _last_line(output["stdout_tail"])
        raise StepFailed(
            f"the command exited with code {exit_code}" + (f": {last}" if last else ""),
            error_type="NonZeroExit",
            exit_code=exit_code,
            output=output,
        )

    def _connect(
        self,
        client: paramiko.SSHClient,
        *,
        host: str,
        port: int,
        username: str,
        secret: dict[str, Any],
        timeout: float,
        connection: str,
    ) -> None:
        """Connect and authenticate; every failure becomes a StepFailed naming what happened."""
        pkey = None
        if secret.get("private_key"):
            pkey = load_private_key(secret["private_key"], secret.get("passphrase"))
        password = secret.get("password") or None
        if pkey is None and password is None:
            raise StepFailed(
                f"connection {connection!r} has neither a private_key nor a password in its secret",
                error_type="SSHCredentialsMissing",
                retryable=False,
            )
        where = f"{host}:{port}"
        started = time.monotonic()
        try:
            client.connect(
                host,
                port=port,
                username=username,
                pkey=pkey,
                password=password,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                look_for_keys=False,
                allow_agent=False,
            )
        except UnknownHostKeyError as exc:
            raise StepFailed(
                f"unknown host key: {exc.hostname} is not in connection {connection!r}'s "
                f"known_hosts (the server offered {_fingerprint(exc.key)}); if that is the "
                f"server's key, add its line (ssh-keyscan -p {port} {host})",
                error_type="UnknownHostKey",
                retryable=False,
            ) from None
        except paramiko.BadHostKeyException as exc:
            raise StepFailed(
                f"HOST KEY MISMATCH for {where}: the server offered {_fingerprint(exc.key)}, "
                f"connection {connection!r}'s known_hosts has {_fingerprint(exc.expected_key)}. "
                "Someone may be intercepting the connection, or the host was reinstalled; "
                "check before changing known_hosts",
                error_type="HostKeyMismatch",
                retryable=False,
            ) from None
        except paramiko.AuthenticationException as exc:
            raise StepFailed(
                f"authentication as {username!r} on {where} failed ({exc}); check the "
                f"connection's {'private_key' if pkey else 'password'} and the server's "
                "authorized_keys",
                error_type="SSHAuthenticationFailed",
            ) from None
        except paramiko.ssh_exception.NoValidConnectionsError as exc:
            raise StepFailed(
                f"could not connect to {where}: {exc.strerror or exc}",
                error_type="SSHConnectionFailed",
            ) from None
        except TimeoutError:
            raise StepFailed(
                f"connecting to {where} timed out after {timeout:g}s",
                error_type="SSHConnectTimeout",
            ) from None
        except paramiko.SSHException as exc:
            # The handshake's own timeout either raises from the banner read (a TimeoutError as
            # the context) or gives up without a session ("No existing session"): tell a slow
            # server from a broken one by the time it took.
            cause = exc.__cause__ or exc.__context__
            if (
                isinstance(cause, TimeoutError | socket.timeout)
                or time.monotonic() - started >= timeout * 0.9
            ):
                raise StepFailed(
                    f"{where} accepted the connection but did not complete the SSH handshake "
                    f"within {timeout:g}s",
                    error_type="SSHConnectTimeout",
                ) from None
            raise StepFailed(
                f"SSH handshake with {where} failed: {exc}", error_type="SSHConnectionFailed"
            ) from None
        except socket.gaierror as exc:
            raise StepFailed(
                f"cannot resolve {host!r}: {exc}", error_type="SSHConnectionFailed"
            ) from None
        except OSError as exc:
            raise StepFailed(
                f"could not connect to {where}: {exc}", error_type="SSHConnectionFailed"
            ) from None

    def _stream(self, ctx: StepContext, channel: paramiko.Channel, tail: Tail) -> int | None:
        """Log output as it arrives until the command ends; return its exit code (None when
        the server sent none). Raises StepCanceled as soon as the step is canceled (or timed
        out), after closing the channel."""
        decoders = {"stdout": StreamText(), "stderr": StreamText()}
        status_seen_at: float | None = None

        def take(stream: str, data: bytes, *, final: bool = False) -> None:
            text = decoders[stream].feed(data, final=final)
            if text:
                ctx.log(text, stream)
                if stream == "stdout":
                    tail.add(text)

        while True:
            if ctx.canceled:
                channel.close()
                raise StepCanceled("the step was canceled; the remote command was hung up")
            select.select([channel], [], [], POLL_SECONDS)
            got = False
            while channel.recv_stderr_ready():
                take("stderr", channel.recv_stderr(READ_BYTES))
                got = True
            while channel.recv_ready():
                data = channel.recv(READ_BYTES)
                if not data:
                    break
                take("stdout", data)
                got = True
            ended = channel.eof_received or channel.closed
            if channel.exit_status_ready():
                if ended and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                status_seen_at = status_seen_at or time.monotonic()
                if time.monotonic() - status_seen_at > EOF_GRACE_SECONDS:
                    ctx.log(
                        "the command ended but its output stayed open (a background job "
                        "holding stdout?); not waiting for it\n",
                        SYSTEM_STREAM,
                    )
                    break
            if not got and ended:
                time.sleep(POLL_SECONDS)  # EOF keeps the channel readable: do not spin
        take("stdout", b"", final=True)
        take("stderr", b"", final=True)
        status = channel.recv_exit_status()
        return None if status == -1 else status
