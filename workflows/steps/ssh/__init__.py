"""The ssh step: run one command on a remote host over SSH (paramiko), as `ssh host 'cmd'` does.

Connection (kind ssh): config `{host, port (22), username, known_hosts, proxy_jump?,
keepalive_seconds?}`, secret `{private_key (PEM or OpenSSH text), passphrase?}` and/or
`{password}`. Trust is the connection's known_hosts only (client.py); `proxy_jump` names the ssh
connection the host is reached through.

Parameters: `connection`, `command` (references resolved by the engine before the handler runs),
`env` (a mapping, exported shell-quoted before the command), `pty` (false), `upload` and
`download` (sftp.py), `connect_timeout_seconds` (10), `keepalive_seconds` (the connection's, or
30), and the common `timeout_seconds` / `retry`.

Without a pty (the default) stdout and stderr are separate streams with their line ends as sent,
a job the command starts in the background outlives the step, and cancel and timeout end the
command's process group through a second channel (session.py). `pty: true` gives the command a
terminal: stderr merged into stdout, CRLF turned into LF, and closing the session also hangs the
terminal up, so background jobs must detach themselves (`setsid nohup ... &`).

Output `{exit_code, stdout_tail}` (the last TAIL_CHARS characters of stdout, as a database
can store them: NUL shown as ␀, undecodable bytes as U+FFFD; the whole log resource keeps the
bytes) plus `files:
{name: res://…}` when the step downloads; a non-zero exit is a failed attempt (`NonZeroExit`)
carrying the same output, a dropped connection a retryable `SSHConnectionLost`.
"""

from __future__ import annotations

from typing import Any

import paramiko

from connections.jumps import JumpChainInvalid, jump_chain, jump_chain_names
from connections.models import Connection
from connections.selectors import secret_values
from resources.payloads import storable_text
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
from workflows.steps.ssh import sftp
from workflows.steps.ssh.client import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    load_known_hosts,
    load_private_key,
    open_chain,
    probe,
)
from workflows.steps.ssh.session import (
    ENV_NAME_RE,
    SYSTEM_STREAM,
    RemoteCommand,
    SSHConnectionLost,
    StreamText,
    Tail,
    remote_command,
    wrapped_command,
)

__all__ = [
    "SSHConnectionLost",
    "SshStep",
    "StreamText",
    "Tail",
    "load_known_hosts",
    "load_private_key",
    "probe",
    "remote_command",
    "wrapped_command",
]

TAIL_CHARS = 4096


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
    """Runs `command` on the connection's host. Output: {exit_code, stdout_tail, files?}."""

    name = "ssh"
    param_keys = frozenset({
        "connection", "command", "env", "connect_timeout_seconds", "pty", "upload", "download",
        "keepalive_seconds",
    })
    input_keys = frozenset({"command", "env", "upload", "download"})
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
        for key in ("connect_timeout_seconds", "keepalive_seconds"):
            value = step.get(key)
            if value is not None and not _positive_number(value):
                problems.append(problem(f"{path}.{key}", "must be a number > 0"))
        if "pty" in step and not isinstance(step["pty"], bool):
            problems.append(problem(f"{path}.pty", "must be true or false"))
        return problems + sftp.validate_transfers(step, path)

    def connections_to_load(self, step: dict[str, Any]) -> list[str]:
        """The step's connection and its jump hosts: their secrets are needed to connect."""
        names = self.connection_names(step)
        return jump_chain_names(names[0]) if names else []

    def release_problems(self, step: dict[str, Any], path: str) -> list[Problem]:
        """At release: the connection's proxy_jump chain must reach ssh connections only,
        without a cycle."""

        name = step.get("connection")
        if not isinstance(name, str) or not name:
            return []

        def lookup(n: str) -> dict[str, Any] | None:
            row = Connection.objects.filter(name=n).values("kind", "config").first()
            return None if row is None else {"kind": row["kind"], "config": row["config"] or {}}

        if lookup(name) is None:
            return []  # reported by the existence check
        try:
            jump_chain(name, lookup)
        except JumpChainInvalid as exc:
            return [problem(f"{path}.connection", exc.reason)]
        return []

    # --- running -----------------------------------------------------------------------------

    def execute(self, ctx: StepContext) -> StepOutcome:

        step = ctx.step
        name = step["connection"]
        secrets = {n: ctx.secret(n) for n in ctx.connections}
        use_pty = bool(step.get("pty", False))
        timeout = float(step.get("connect_timeout_seconds") or DEFAULT_CONNECT_TIMEOUT_SECONDS)
        secret_texts = [v for s in secrets.values() for v in secret_values(s)]
        tail = Tail(TAIL_CHARS, secret_texts)
        tails = {"stdout": tail, "stderr": Tail(TAIL_CHARS, secret_texts)}
        output: dict[str, Any] = {"exit_code": None, "stdout_tail": ""}

        def system(text: str) -> None:
            ctx.log(text, SYSTEM_STREAM)

        chain = open_chain(
            name=name, connections=ctx.connections, secrets=secrets, timeout=timeout,
            keepalive_seconds=step.get("keepalive_seconds"), log=system,
        )
        try:
            if ctx.canceled:
                raise StepCanceled("the step was canceled")
            transport = chain.transport
            if step.get("upload"):
                sftp.upload(transport, step["upload"], system)
            command = RemoteCommand(
                transport, log=ctx.log, canceled=lambda: ctx.canceled,
                on_output=lambda stream, text: tails[stream].add(text),
                use_pty=use_pty, open_timeout=timeout,
            )
            system(f"$ {step['command']}\n")
            env = step.get("env")
            if getattr(ctx, "traceparent", None):  # the attempt's span (ops.tracing)
                trace = {"TRACEPARENT": ctx.traceparent}
                if getattr(ctx, "tracestate", None):
                    trace["TRACESTATE"] = ctx.tracestate
                env = {**trace, **(env or {})}
            command.start(step["command"], env)
            try:
                exit_code = command.wait()
            except SSHConnectionLost as exc:
                exc.output = {"exit_code": None, "stdout_tail": storable_text(tail.value())}
                raise
            output = {"exit_code": exit_code, "stdout_tail": storable_text(tail.value())}
            if step.get("download") and transport.is_active():
                output["files"] = sftp.download(
                    transport, step["download"], store=ctx.resource_store, log=system,
                    best_effort=exit_code != 0,
                )
        except paramiko.SSHException as exc:
            if not chain.target.get_transport() or not chain.transport.is_active():
                raise SSHConnectionLost(
                    f"the SSH connection dropped: {exc}",
                    output={"exit_code": None, "stdout_tail": storable_text(tail.value())},
                ) from exc
            raise StepFailed(f"SSH error: {exc}", error_type="SSHError", output=output) from exc
        except OSError as exc:
            raise SSHConnectionLost(
                f"the SSH connection dropped: {exc}",
                output={"exit_code": None, "stdout_tail": storable_text(tail.value())},
            ) from exc
        finally:
            chain.close()
        return self._outcome(ctx, output, last=_last_line(tails["stderr"].value())
                             or _last_line(tail.value()))

    def _outcome(self, ctx: StepContext, output: dict[str, Any], *, last: str) -> StepOutcome:
        exit_code = output["exit_code"]
        if exit_code == 0:
            ctx.log("exit code 0\n", SYSTEM_STREAM)
            return StepOutcome.completed(output, exit_code=0)
        if exit_code is None:
            ctx.log("no exit status\n", SYSTEM_STREAM)
            raise StepFailed(
                "the command ended without an exit status (killed by a signal?)",
                error_type="NoExitStatus",
                output=output,
            )
        ctx.log(f"exit code {exit_code}\n", SYSTEM_STREAM)
        raise StepFailed(
            f"the command exited with code {exit_code}" + (f": {last}" if last else ""),
            error_type="NonZeroExit",
            exit_code=exit_code,
            output=output,
        )


def run_once(*, name: str, connections: dict[str, Any], secrets: dict[str, dict[str, Any]],
             command: str, timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
             max_chars: int = TAIL_CHARS) -> dict[str, Any]:
    """Run `command` once on connection `name` (a wait's `on_cancel`): `{exit_code, output}`,
    the output's tail redacted of the connections' secrets. Raises StepFailed when the host
    cannot be reached (the caller records it)."""
    secret_texts = [v for s in secrets.values() for v in secret_values(s)]
    tail = Tail(max_chars, secret_texts)
    chain = open_chain(name=name, connections=connections, secrets=secrets, timeout=timeout)
    try:
        remote = RemoteCommand(chain.transport, log=lambda text, stream="stdout": None,
                               canceled=lambda: False,
                               on_output=lambda stream, text: tail.add(text),
                               use_pty=False, open_timeout=timeout)
        remote.start(command, None)
        exit_code = remote.wait()
    finally:
        chain.close()
    return {"exit_code": exit_code, "output": storable_text(tail.value())}
