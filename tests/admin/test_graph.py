"""The flow graph on the flow page, the run page and under the draft editor."""

import re

import pytest
from django.urls import reverse

from tests.admin.conftest import retry_definition
from tests.factories import drain, make_flow
from workflows.models import StepRun
from workflows.services.runs import run_start

pytestmark = pytest.mark.django_db


def graph_nodes(page: str, section: str = "graph") -> list[tuple[str, str | None]]:
    block = page.split(f'data-section="{section}"', 1)[1].split("</svg>", 1)[0]
    return [(m.group(1), m.group(3)) for m in re.finditer(
        r'<g class="gr-node[^"]*" data-step="([^"]+)"( data-status="([^"]+)")?', block)]


def test_the_run_page_graph_has_every_step_with_its_status_and_panel_link(clients):
    flow = make_flow(retry_definition())
    run, _ = run_start(flow=flow, input={})
    drain()
    run.refresh_from_db()
    page = clients["support"].get(reverse("admin:workflows_run_change", args=[run.pk])
                                  ).content.decode()
    statuses = dict(StepRun.objects.filter(run=run).values_list("key", "status"))
    assert dict(graph_nodes(page)) == statuses
    key = next(iter(statuses))
    panel = reverse("admin:workflows_run_step", args=[run.pk, key])
    assert f'data-step="{key}" data-status="{statuses[key]}" hx-get="{panel}"' in page


def test_the_flow_page_graph_and_the_saved_drafts_graph(clients):
    flow = make_flow(retry_definition())
    page = clients["builders"].get(reverse("admin:workflows_flow_change", args=[flow.pk])
                                   ).content.decode()
    keys = [s["key"] for s in flow.live_version.definition["steps"]]
    assert [k for k, _s in graph_nodes(page)] == keys
    assert all(status is None for _k, status in graph_nodes(page))  # no run yet

    draft = "slug: retrying\nname: Retrying\nsteps:\n" + "".join(
        f"  - {{key: s{i}, type: python, action: core.echo{', needs: [s0]' if i > 1 else ''}}}\n"
        for i in range(4))
    clients["builders"].post(reverse("admin:workflows_flow_draft", args=[flow.pk]),
                             {"definition": draft})
    page = clients["builders"].get(reverse("admin:workflows_flow_change", args=[flow.pk])
                                   ).content.decode()
    assert [k for k, _s in graph_nodes(page, "draft-graph")] == ["s0", "s1", "s2", "s3"]
    assert [k for k, _s in graph_nodes(page)] == keys  # the live one is unchanged
