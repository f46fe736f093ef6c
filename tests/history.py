"""A flow history where a release broke a step, for the support-desk tests (issue 12): v1 runs
complete; v2 changed `transform`'s action from core.echo to core.fail, so v2 runs fail there.

    history = broken_release_history(good=2, bad=3)
    history.good_runs / history.bad_runs / history.flow / history.v1 / history.v2
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from tests.factories import drain, make_flow
from workflows.models import Flow, FlowVersion, Run
from workflows.services.flows import flow_promote, flow_release, flow_update_draft
from workflows.services.runs import run_start


def pipeline_definition(slug: str = "pipeline", transform_action: str = "core.echo") -> dict:
    return {
        "slug": slug,
        "name": slug.title(),
        "input": {"customer": {"type": "string", "default": "acme"}},
        "steps": [
            {"key": "fetch", "type": "python", "action": "core.echo",
             "args": {"customer": "{{ input.customer }}"}},
            {"key": "transform", "type": "python", "action": transform_action,
             "args": {"message": "transform exploded"}},
            {"key": "load", "type": "python", "action": "core.echo", "args": {"n": 1}},
        ],
    }


@dataclass
class History:
    flow: Flow
    v1: FlowVersion
    v2: FlowVersion
    good_runs: list[Run] = field(default_factory=list)
    bad_runs: list[Run] = field(default_factory=list)


def run_to_end(flow: Flow, **input) -> Run:
    run, _ = run_start(flow=flow, input=input)
    drain()
    run.refresh_from_db()
    return run


def release_live(flow: Flow, definition: dict) -> FlowVersion:
    flow_update_draft(flow=flow, definition=definition)
    version = flow_release(flow=flow)
    flow_promote(flow=flow, number=version.number)
    flow.refresh_from_db()
    return version


def broken_release_history(*, slug: str = "pipeline", good: int = 2, bad: int = 3) -> History:
    flow = make_flow(pipeline_definition(slug))
    v1 = FlowVersion.objects.get(flow=flow, number=1)
    good_runs = [run_to_end(flow, customer=f"good-{n}") for n in range(good)]
    broken = copy.deepcopy(pipeline_definition(slug, transform_action="core.fail"))
    v2 = release_live(flow, broken)
    bad_runs = [run_to_end(flow, customer=f"bad-{n}") for n in range(bad)]
    return History(flow=flow, v1=v1, v2=v2, good_runs=good_runs, bad_runs=bad_runs)
