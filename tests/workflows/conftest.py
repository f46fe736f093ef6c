"""Fixtures for the workflows tests; the builders they use live in tests/factories.py."""

from __future__ import annotations

import pytest

from tests.factories import make_flow


@pytest.fixture
def flow_factory(db):
    return make_flow


@pytest.fixture
def outage(monkeypatch):
    """An action that fails while `outage["on"]` is true: the world is broken, then fixed."""
    from workflows.steps import actions
    from workflows.steps.base import StepFailed

    state = {"on": True}

    def depends_on_the_world(ctx, **args):
        if state["on"]:
            raise StepFailed("the service is down", error_type="Outage")
        return {"ok": True}

    monkeypatch.setitem(actions._ACTIONS, "test.outage", depends_on_the_world)
    return state
