"""Opening an authenticated SSH transport to a connection's host, through its jump hosts.

Trust is the connection's `known_hosts` and nothing else: no system or user known_hosts file,
no agent, no key from ~/.ssh, never auto-adding. Every failure becomes a `StepFailed` whose
`error_type` names it (`UnknownHostKey`, `HostKeyMismatch`, `SSHAuthenticationFailed`,
`SSHConnectTimeout`, `SSHConnectionFailed`, ...), so the step, the connection test and the
attempt record all speak the same words.

Jump hosts: a connection's `proxy_jump` names another ssh connection. `open_chain` connects to
the outermost jump host directly, then opens a `direct-tcpip` channel through it to the next hop
and runs a fresh SSH handshake over that channel, and so on to the target. Each hop is verified
against its own connection's known_hosts and authenticated with its own secret.
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paramiko
from paramiko.hostkeys import HostKeyEntry

from connections.jumps import JumpChainInvalid, jump_chain
from workflows.steps.base import StepFailed

DEFAULT_PORT = 22
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10.0
DEFAULT_KEEPALIVE_SECONDS = 30


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


def fingerprint(key: paramiko.PKey) -> str:
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


@dataclass
class Chain:
    """The open clients of a connection chain, outermost jump host first, target last."""

    clients: list[paramiko.SSHClient] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @property
    def target(self) -> paramiko.SSHClient:
        return self.clients[-1]

    @property
    def transport(self) -> paramiko.Transport:
        transport = self.target.get_transport()
        assert transport is not None
        return transport

    def close(self) -> None:
        for client in reversed(self.clients):
            try:
                client.close()
            except Exception:  # closing is best effort; the sockets go with the process
                pass


def open_chain(
    *,
    name: str,
    connections: dict[str, dict[str, Any]],
    secrets: dict[str, dict[str, Any]],
    timeout: float,
    keepalive_seconds: float | None = None,
    log: Callable[[str], None] | None = None,
) -> Chain:
    """Connect to connection `name`, through its `proxy_jump` chain, and return the open chain
    (the caller closes it). `connections` maps names to {"kind", "config"} and `secrets` names
    to decrypted secrets, for the target and every jump host. Raises StepFailed."""
    try:
        names = jump_chain(name, lambda n: connections.get(n))
    except JumpChainInvalid as exc:
        raise StepFailed(str(exc), error_type="ConnectionInvalid", retryable=False) from None
    hops = list(reversed(names))  # outermost jump host first
    chain = Chain()
    try:
        sock: Any = None
        for index, hop in enumerate(hops):
            config = connections[hop]["config"]
            host, username = config.get("host"), config.get("username")
            if not host or not username:
                raise StepFailed(
                    f"connection {hop!r} has no host or username",
                    error_type="ConnectionInvalid",
                    retryable=False,
                )
            port = int(config.get("port") or DEFAULT_PORT)
            if log is not None:
                via = f" via {hops[index - 1]}" if index else ""
                log(f"connecting to {username}@{host}:{port}{via}\n")
            client = _connect_one(
                name=hop,
                config=config,
                secret=secrets.get(hop) or {},
                timeout=timeout,
                sock=sock,
            )
            chain.clients.append(client)
            chain.names.append(hop)
            transport = client.get_transport()
            keepalive = config.get("keepalive_seconds", DEFAULT_KEEPALIVE_SECONDS)
            if hop == name and keepalive_seconds is not None:
                keepalive = keepalive_seconds
            transport.set_keepalive(int(keepalive) if keepalive else 0)
            if index + 1 < len(hops):
                nxt = connections[hops[index + 1]]["config"]
                target = (nxt.get("host") or "", int(nxt.get("port") or DEFAULT_PORT))
                try:
                    sock = transport.open_channel(
                        "direct-tcpip", target, ("127.0.0.1", 0), timeout=timeout
                    )
                except (paramiko.SSHException, OSError) as exc:
                    raise StepFailed(
                        f"jump host {hop!r} could not open a channel to "
                        f"{target[0]}:{target[1]}: {exc}",
                        error_type="SSHConnectionFailed",
                    ) from None
    except BaseException:
        chain.close()
        raise
    return chain


def _connect_one(
    *,
    name: str,
    config: dict[str, Any],
    secret: dict[str, Any],
    timeout: float,
    sock: Any = None,
) -> paramiko.SSHClient:
    """One authenticated client for one connection; `sock` is a channel of the previous hop.
    Every failure becomes a StepFailed naming what happened."""
    host, username = config["host"], config["username"]
    port = int(config.get("port") or DEFAULT_PORT)
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
        pkey = None
        if secret.get("private_key"):
            pkey = load_private_key(secret["private_key"], secret.get("passphrase"))
        password = secret.get("password") or None
        if pkey is None and password is None:
            raise StepFailed(
                f"connection {name!r} has neither a private_key nor a password in its secret",
                error_type="SSHCredentialsMissing",
                retryable=False,
            )
        _authenticate(
            client, host=host, port=port, username=username, pkey=pkey, password=password,
            timeout=timeout, connection=name, sock=sock,
        )
    except BaseException:
        client.close()
        raise
    return client


def _authenticate(
    client: paramiko.SSHClient,
    *,
    host: str,
    port: int,
    username: str,
    pkey: paramiko.PKey | None,
    password: str | None,
    timeout: float,
    connection: str,
    sock: Any,
) -> None:
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
            sock=sock,
        )
    except UnknownHostKeyError as exc:
        raise StepFailed(
            f"unknown host key: {exc.hostname} is not in connection {connection!r}'s "
            f"known_hosts (the server offered {fingerprint(exc.key)}); if that is the "
            f"server's key, add its line (ssh-keyscan -p {port} {host})",
            error_type="UnknownHostKey",
            retryable=False,
        ) from None
    except paramiko.BadHostKeyException as exc:
        raise StepFailed(
            f"HOST KEY MISMATCH for {where}: the server offered {fingerprint(exc.key)}, "
            f"connection {connection!r}'s known_hosts has {fingerprint(exc.expected_key)}. "
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


def probe(
    *,
    name: str,
    connections: dict[str, dict[str, Any]],
    secrets: dict[str, dict[str, Any]],
    timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
) -> str:
    """Connect (through the jump chain), authenticate, and describe the target: its host key
    fingerprint and server version. Raises StepFailed. Used by the connection test."""
    chain = open_chain(name=name, connections=connections, secrets=secrets, timeout=timeout)
    try:
        transport = chain.transport
        key = transport.get_remote_server_key()
        via = f" (via {' → '.join(chain.names[:-1])})" if len(chain.names) > 1 else ""
        return f"host key {fingerprint(key)}; server {transport.remote_version}{via}"
    finally:
        chain.close()
