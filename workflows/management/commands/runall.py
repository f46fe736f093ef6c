"""Run the web server and a django-q2 cluster together, for the one-command local setup.

Both are started as `manage.py` subprocesses with this process's environment (so `.env`,
DATABASE_URL and REDIS_URL apply to both). SIGINT and SIGTERM are forwarded to both and we wait
for them to stop. When one of them exits on its own, the other is stopped and this command
exits non-zero: half a platform (a web server with no worker, or the reverse) is never left
running.

Callback, webhook and `admin_url` links are written with PUBLIC_BASE_URL: unless it is set (in
the environment or `.env`), the children get the address served here (`make run PORT=8765`
writes links on port 8765, not 8000).

Each child runs in its own process group so a Ctrl-C in the terminal reaches only this
command, which forwards it once; on Linux each child also gets SIGTERM if this process dies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand, CommandError

STOP_GRACE_SECONDS = 30.0
POLL_SECONDS = 0.2
PR_SET_PDEATHSIG = 1


WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def child_environment(host: str, port: int, environ: dict[str, str]) -> dict[str, str]:
    """The children's environment: `environ`, plus PUBLIC_BASE_URL derived from the address
    served when it is not set (a wildcard host is reached on loopback)."""
    env = dict(environ)
    if not env.get("PUBLIC_BASE_URL", "").strip():
        reach = WILDCARD_HOSTS.get(host, host)
        env["PUBLIC_BASE_URL"] = (f"http://[{reach}]:{port}" if ":" in reach
                                  else f"http://{reach}:{port}")
    return env


def _die_with_parent(parent_pid: int):
    def preexec() -> None:
        if sys.platform.startswith("linux"):
            try:
                ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            except (OSError, AttributeError):
                pass
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class Command(BaseCommand):
    help = "Run `runserver --noreload` and `qcluster` together; Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))

    def handle(self, *args, host: str, port: int, **options):
        self.received: int | None = None
        self.signals_seen = 0
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        # `python -m django` (DJANGO_SETTINGS_MODULE is in the environment the children get),
        # so an installed copy without manage.py runs too.
        manage = [sys.executable, "-m", "django"]
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        commands = {
            "web": [*manage, "runserver", "--noreload", address],
            "qcluster": [*manage, "qcluster"],
        }
        children: dict[str, subprocess.Popen] = {}
        env = child_environment(host, port, dict(os.environ))
        try:
            for name, command in commands.items():
                children[name] = subprocess.Popen(
                    command,
                    env=env,
                    process_group=0,
                    preexec_fn=_die_with_parent(os.getpid()),
                )
            self.stdout.write(
                self.style.SUCCESS(
                    f"Web server: http://{address}/  (admin: http://{address}/admin/)"
                )
            )
            self.stdout.write(f"Links (callbacks, webhooks, admin_url): {env['PUBLIC_BASE_URL']}")
            self.stdout.write(
                "Worker: qcluster. Press Ctrl-C to stop both. "
                f"[web pid {children['web'].pid}, qcluster pid {children['qcluster'].pid}]"
            )
            died = self._wait_for_signal_or_exit(children)
        finally:
            self._stop(children, self.received or signal.SIGTERM)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        if died is not None:
            code = children[died].returncode
            raise CommandError(
                f"{died} exited on its own (code {code}); stopped the other process.",
                returncode=code if code and code > 0 else 1,
            )
        self.stdout.write("Stopped web server and qcluster.")

    def _on_signal(self, signum, frame) -> None:
        self.received = self.received or signum
        self.signals_seen += 1

    def _wait_for_signal_or_exit(self, children: dict[str, subprocess.Popen]) -> str | None:
        """Returns the name of a child that exited by itself, or None when we were signalled."""
        while self.received is None:
            for name, proc in children.items():
                if proc.poll() is not None:
                    return name
            time.sleep(POLL_SECONDS)
        return None

    def _stop(self, children: dict[str, subprocess.Popen], signum: int) -> None:
        """Send `signum` to every live child once, wait up to STOP_GRACE_SECONDS, then kill
        what is left (at once if a second Ctrl-C arrives)."""
        for proc in children.values():
            if proc.poll() is None:
                try:
                    proc.send_signal(signum)
                except ProcessLookupError:
                    pass
        seen = self.signals_seen
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(proc.poll() is None for proc in children.values()):
            if time.monotonic() > deadline or self.signals_seen > seen:
                for proc in children.values():
                    if proc.poll() is None:
                        try:
                            os.killpg(proc.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                break
            time.sleep(POLL_SECONDS)
        for proc in children.values():
            proc.wait()
