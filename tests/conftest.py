"""Test infrastructure shared by the whole suite: real components on loopback.

A test that needs a real component (OpenSSH server, Chromium, Redis, PostgreSQL) asks for its
fixture. When the component is missing, `require_component` skips the test on a developer
machine and fails it under CI=true, where every component must be present: a green CI run
never hides a suite that did not run.

Feature fixtures (factories, flows, a running qcluster) belong in the conftest.py of the
directory that uses them; this file stays about infrastructure.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

COMPONENT_MISSING = "component missing:"
SSHD = "/usr/sbin/sshd"
CHROMIUM = "/usr/bin/chromium"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_component(name: str, reason: str) -> None:
    """Stop the current test because `name` is not available: a skip locally, a failure in CI."""
    message = f"{COMPONENT_MISSING} {name}: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: every component must be present)", pytrace=False)
    pytest.skip(message)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under CI=true, a skip for a missing component is a failure, however it was raised."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if reason.startswith(COMPONENT_MISSING):
        report.outcome = "failed"
        report.longrepr = f"{reason} (CI=true: every component must be present)"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, *, timeout: float = 15.0,
                  proc: subprocess.Popen | None = None) -> None:
    """Block until something accepts on host:port; raise if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


@contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 and a free port, answering with `handler` in threads;
    yields its base URL (`http://127.0.0.1:PORT`) and shuts it down, socket closed, after."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def respond(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", *,
            content_type: str | None = "application/json",
            headers: dict[str, str] | None = None) -> None:
    """Answer a request to a `local_http_server` handler: the status, the headers, the body's
    Content-Length and the body."""
    handler.send_response(status)
    if content_type is not None:
        handler.send_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


# --- OpenSSH server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    username: str
    client_key_path: str
    client_private_key: str
    host_key_line: str  # known_hosts line for this server: "[127.0.0.1]:PORT ssh-ed25519 AAAA..."
    other_host_key_line: str  # same host, a different key: for "wrong host key" tests
    log_path: str = ""  # the server's log (LogLevel VERBOSE)


def _keygen(path: Path) -> str:
    """Generate an ed25519 key pair at `path`; return the public key as "TYPE BASE64"."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "wf-test", "-f", str(path)],
        check=True, capture_output=True,
    )
    key_type, key_data, *_ = path.with_suffix(".pub").read_text().split()
    return f"{key_type} {key_data}"


def _start_sshd(workdir: Path) -> tuple[subprocess.Popen, SshServer]:
    """Start an OpenSSH server on 127.0.0.1 and a free port with fresh keys in `workdir`."""
    if not os.access(SSHD, os.X_OK):
        require_component("sshd", f"{SSHD} not found (apt-get install openssh-server)")
    if shutil.which("ssh-keygen") is None:
        require_component("sshd", "ssh-keygen not found (apt-get install openssh-client)")

    host_public = _keygen(workdir / "host_ed25519")
    other_public = _keygen(workdir / "other_host_ed25519")
    client_public = _keygen(workdir / "client_ed25519")
    authorized_keys = workdir / "authorized_keys"
    authorized_keys.write_text(client_public + "\n")

    host, port = "127.0.0.1", free_port()
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join([
            f"ListenAddress {host}",
            f"Port {port}",
            f"HostKey {workdir / 'host_ed25519'}",
            f"PidFile {workdir / 'sshd.pid'}",
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            f"AuthorizedKeysFile {authorized_keys}",
            "StrictModes no",
            "PermitRootLogin yes",
            "AllowTcpForwarding yes",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
        ]) + "\n"
    )
    if os.geteuid() == 0:
        # Debian's sshd refuses to start without it: "Missing privilege separation directory".
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)

    log_path = workdir / "sshd.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(host, port, proc=proc)
    except (RuntimeError, TimeoutError) as exc:
        _stop(proc)
        pytest.fail(f"sshd did not start: {exc}\n{log_path.read_text()}", pytrace=False)
    return proc, SshServer(
        host=host,
        port=port,
        username=getpass.getuser(),
        client_key_path=str(workdir / "client_ed25519"),
        client_private_key=(workdir / "client_ed25519").read_text(),
        host_key_line=f"[{host}]:{port} {host_public}",
        other_host_key_line=f"[{host}]:{port} {other_public}",
        log_path=str(log_path),
    )


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real OpenSSH server on 127.0.0.1 and a free port, accepting one client key for the
    current user (tests run as root in CI, hence PermitRootLogin). Stopped after the session."""
    proc, server = _start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def sshd_jump(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A second OpenSSH server on loopback, with keys of its own: the jump host (bastion) in
    proxy_jump tests. It allows TCP forwarding (direct-tcpip), as bastions do."""
    proc, server = _start_sshd(tmp_path_factory.mktemp("sshd_jump"))
    try:
        yield server
    finally:
        _stop(proc)


# --- Chromium through Playwright ------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The system Chromium (Debian package). Playwright's own browser downloads are not used."""
    path = os.environ.get("WF_CHROMIUM_PATH", CHROMIUM)
    if not os.access(path, os.X_OK):
        require_component("chromium", f"{path} not found (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str):
    """A headless Chromium for the session, driven with Playwright's sync API."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_component("playwright", "the playwright package is not installed")
    # Playwright's sync API keeps an asyncio loop on this thread, which makes Django refuse ORM
    # calls from the test body ("SynchronousOnlyOperation"). Tests call the ORM synchronously
    # between browser calls, which is safe.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (no shared cookies) and page for one test."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


# --- Redis ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis database for tests (WF_TEST_REDIS_URL, default db 15 on loopback), answering."""
    import redis

    url = os.environ.get("WF_TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_component("redis", f"{url} does not answer: {exc}")
    finally:
        client.close()
    return url


@pytest.fixture(autouse=True)
def _fresh_version_cache() -> Iterator[None]:
    """The engine caches released versions by primary key; rolled-back tests reuse keys."""
    from workflows.engine.versions import forget_versions

    forget_versions()
    yield
    forget_versions()
