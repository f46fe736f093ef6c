"""Fixtures for the run services tests."""

import pytest


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
