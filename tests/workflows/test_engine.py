import pytest

from tests.workflows.conftest import drain, make_flow, simple_definition, steps_of
from workflows.models import Attempt, Event
from workflows.services.runs import run_start

pytestmark = pytest.mark.django_db


def test_a_sequential_run_completes_and_passes_outputs_along():
    flow = make_flow(simple_definition())
    run, created = run_start(flow=flow, input={})
    assert created and run.status == "queued"
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    steps = steps_of(run)
    assert steps["second"].output == {"prev": 1}
    assert Attempt.objects.get(step_run=steps["second"]).input["args"] == {"prev": 1}
    kinds = list(Event.objects.filter(run=run).values_list("kind", flat=True))
    assert kinds[0] == "run_created" and kinds[-1] == "run_completed"
