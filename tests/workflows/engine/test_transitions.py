"""The transition function refuses illegal moves and changes nothing."""

import pytest

from tests.factories import (
    drain,
    echo,
    simple_definition,
    start,
    steps_of,
)
from workflows.engine.transitions import step_transition
from workflows.errors import (
    TransitionNotAllowed,
)
from workflows.states import StepStatus

pytestmark = pytest.mark.django_db


def test_illegal_moves_raise_and_change_nothing():
    run = start(simple_definition(steps=[echo("only")]))
    drain()
    step = steps_of(run)["only"]
    with pytest.raises(TransitionNotAllowed):
        step_transition(step, StepStatus.RUNNING)
    step.refresh_from_db()
    assert step.status == "completed"
