"""A real qcluster process against the test database, for end-to-end engine tests.

The test process and the cluster share the database (committed data: `transactional_db`) and
the broker: the ORM broker by default, Redis when REDIS_URL is set (the PostgreSQL pass in CI).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from workflows.models import Run

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"completed", "failed", "canceled"}


def database_url() -> str:
    """The URL of the test database this process is using."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:"
            f"{db.get('PORT') or 5432}/{db['NAME']}")


class Cluster:
    """A `manage.py qcluster` subprocess in its own process group (so kill reaches workers)."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Cluster:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole cluster: the process and its workers die mid-step."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """Ask the cluster to stop; whatever is left after a few seconds is killed."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.process:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def cluster_env(transactional_db) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": database_url(),
        "Q_POLL": "0.05",
        "Q_WORKERS": "2",
        "WF_HEARTBEAT_SECONDS": "0.5",
        "WF_LEASE_SECONDS": "3",
        "PYTHONUNBUFFERED": "1",
    })
    if settings.REDIS_URL:
        from django_q.brokers import get_broker

        get_broker().purge_queue()
    return env


@pytest.fixture
def qcluster(cluster_env, tmp_path) -> Iterator[Callable[[], Cluster]]:
    """Call it to start a cluster (several times to replace a killed one); all are stopped at
    the end. The cluster's output is printed when the test fails."""
    started: list[Cluster] = []

    def start() -> Cluster:
        cluster = Cluster(cluster_env, tmp_path / f"qcluster-{len(started)}.log").start()
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()
    for cluster in started:
        sys.stdout.write(f"--- {cluster.log_path.name} ---\n{cluster.log()[-4000:]}\n")


def wait_for(predicate: Callable[[], bool], *, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for_run(run: Run, statuses: set[str] = TERMINAL, timeout: float = 120) -> Run:
    def reached() -> bool:
        run.refresh_from_db()
        return run.status in statuses

    wait_for(reached, timeout=timeout, what=f"run {run.pk} to reach {sorted(statuses)}")
    return run
