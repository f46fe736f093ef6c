"""With REDIS_URL, django-q2 sends tasks through one Redis client per process (ops/broker.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from ops import broker as shared

SOURCE = Path(__file__).resolve().parents[2]


def broker_setup_in_a_process(tmp_path, **env: str) -> list[str]:
    code = ("import django; django.setup(); from django_q.brokers import get_broker; "
            "a, b = get_broker(), get_broker(); "
            "print(type(a).__name__, a.connection is b.connection)")
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(SOURCE), "DEBUG": "true",
             "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_with_redis_url_every_broker_of_a_process_shares_one_client(tmp_path):
    assert broker_setup_in_a_process(tmp_path, REDIS_URL="redis://127.0.0.1:1/0") == [
        "SharedClientRedis", "True"]


def test_without_redis_url_the_orm_broker_is_unchanged(tmp_path):
    assert broker_setup_in_a_process(tmp_path)[0] == "ORM"


@pytest.fixture
def shared_broker(redis_url, monkeypatch):
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    monkeypatch.setattr(Conf, "DJANGO_REDIS", None)
    monkeypatch.setattr(Conf, "BROKER_CLASS", "ops.broker.SharedClientRedis")
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(shared, "_clients", {})
    broker = get_broker("wf-test-shared-broker")
    broker.delete_queue()
    yield broker
    broker.delete_queue()


def test_tasks_sent_without_a_broker_arrive_through_the_one_client(shared_broker):
    for number in range(3):
        async_task("math.floor", number + 0.5, cluster="wf-test-shared-broker")
    assert len(shared._clients) == 1
    assert get_broker("wf-test-shared-broker").connection is shared_broker.connection
    received = []
    while (message := shared_broker.dequeue()) is not None:
        received.append(SignedPackage.loads(message[0][1]))
    assert [(task["func"], task["args"]) for task in received] == [
        ("math.floor", (0.5,)), ("math.floor", (1.5,)), ("math.floor", (2.5,))]
