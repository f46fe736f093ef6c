"""Admission: the concurrency policies queue, skip and cancel_running."""

import pytest

from tests.factories import (
    concurrency_definition,
    drain,
    make_flow,
)
from workflows.models import Event
from workflows.services.runs import run_start

pytestmark = pytest.mark.django_db


def test_concurrency_queue_holds_a_run_until_the_slot_frees():
    flow = make_flow(concurrency_definition("queue"))
    first, _ = run_start(flow=flow, input={"repo": "core"})
    held, _ = run_start(flow=flow, input={"repo": "core"})
    other, _ = run_start(flow=flow, input={"repo": "web"})
    assert (first.status, held.status, other.status) == ("queued", "created", "queued")
    drain()
    for run in (first, held, other):
        run.refresh_from_db()
        assert run.status == "completed"


def test_concurrency_skip_cancels_the_new_run():
    flow = make_flow(concurrency_definition("skip"))
    run_start(flow=flow, input={"repo": "core"})
    skipped, _ = run_start(flow=flow, input={"repo": "core"})
    assert skipped.status == "canceled"
    assert "skipped" in Event.objects.filter(run=skipped).last().reason


def test_concurrency_cancel_running_cancels_the_older_run():
    flow = make_flow(concurrency_definition("cancel_running"))
    first, _ = run_start(flow=flow, input={"repo": "core"})
    second, _ = run_start(flow=flow, input={"repo": "core"})
    first.refresh_from_db()
    assert first.status == "canceled" and second.status == "queued"
