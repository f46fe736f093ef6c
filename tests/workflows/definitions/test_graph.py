"""The step graph: ancestors, descendants and order follow needs."""

import pytest

from tests.workflows.definitions.samples import nightly
from workflows.definitions import (
    step_ancestors,
    step_descendants,
    topological_order,
    validate_definition,
)


def test_ancestors_descendants_and_order_follow_needs():
    definition = validate_definition(nightly())
    assert step_ancestors(definition, "review") == {"fetch", "count", "notify", "agent_done"}
    assert step_ancestors(definition, "fetch") == set()
    assert step_descendants(definition, "agent_done") == {"review", "publish"}
    assert step_descendants(definition, "publish") == set()
    assert topological_order(definition) == [
        "fetch",
        "count",
        "notify",
        "agent_done",
        "review",
        "publish",
    ]
    with pytest.raises(KeyError):
        step_ancestors(definition, "nope")


def test_topological_order_keeps_definition_order_among_ready_steps():
    definition = validate_definition(
        {
            "slug": "d",
            "name": "D",
            "steps": [
                {"key": "z", "type": "wait", "needs": ["b", "a"]},
                {"key": "b", "type": "wait", "needs": []},
                {"key": "a", "type": "wait", "needs": []},
                {"key": "c", "type": "wait", "needs": ["a"]},
            ],
        }
    )
    assert topological_order(definition) == ["b", "a", "z", "c"]
