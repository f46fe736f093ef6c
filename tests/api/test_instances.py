"""GET /runs/{id}/steps/{key}/instances and the `instances` counts of step run documents."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import drain, make_flow, simple_definition
from workflows.models import Flow

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(as_user):
    return as_user("operator")


def fan_definition():
    return simple_definition(slug="fan", steps=[
        {"key": "each", "type": "python", "action": "core.sleep", "for_each": "{{ input.items }}",
         "args": {"seconds": "{{ item }}"}},
    ], input={"items": {"type": "array", "default": []}})


def start(api, items) -> dict:
    if not Flow.objects.filter(slug="fan").exists():
        make_flow(fan_definition())
    response = api.post("/flows/fan/runs", {"input": {"items": items}})
    assert response.status == 201, response.body
    drain()
    return response.body


def test_instances_are_paged_in_item_order_and_filtered_by_status(operator):
    run = start(operator, [0] * 7)
    url = f"/runs/{run['id']}/steps/each/instances"
    first = operator.get(url, limit=3).body
    assert [i["index"] for i in first["items"]] == [0, 1, 2]
    item = first["items"][0]
    assert item["status"] == "completed" and item["attempts"] == 1 and item["item"] == 0
    assert item["output"] == {"slept_seconds": 0.0} and item["duration_ms"] is not None
    second = operator.get(url, limit=3, cursor=first["next_cursor"]).body
    assert [i["index"] for i in second["items"]] == [3, 4, 5]
    assert operator.get(url, status="failed").body == {"items": [], "next_cursor": None}
    assert len(operator.get(url, status="completed").body["items"]) == 7
    assert operator.get(url, status="bogus").status == 422
    assert operator.get(url, cursor="%%%").status == 400


def test_the_step_documents_carry_the_counts(operator):
    run = start(operator, [0, 0, 0])
    doc = operator.get(f"/runs/{run['id']}").body
    assert doc["steps"][0]["instances"] == {"total": 3, "by_status": {"completed": 3}}
    step = operator.get(f"/runs/{run['id']}/steps/each").body
    assert step["instances"] == {"total": 3, "by_status": {"completed": 3}}
    assert step["output"] == [{"slept_seconds": 0.0}] * 3


def test_one_instance_with_its_attempts_and_log(operator):
    run = start(operator, [0, 0.01])
    body = operator.get(f"/runs/{run['id']}/steps/each/instances/1").body
    assert body["index"] == 1 and body["attempt_list"][0]["status"] == "completed"
    assert body["logs"][0]["text"] == "sleeping 0.01s\n" and body["logs"][0]["attempt"] == 1
    assert operator.get(f"/runs/{run['id']}/steps/each/instances/9").status == 404


def test_pages_take_a_fixed_number_of_queries_whatever_the_instances(operator):
    counts = []
    for items in ([0] * 3, [0] * 60):
        run = start(operator, items)
        with CaptureQueriesContext(connection) as page:
            assert operator.get(f"/runs/{run['id']}/steps/each/instances", limit=50).status == 200
        with CaptureQueriesContext(connection) as document:
            assert operator.get(f"/runs/{run['id']}").status == 200
        counts.append((len(page), len(document)))
    assert counts[0] == counts[1]


def test_the_step_panel_summarizes_and_pages_the_instances(operator, admin_client):
    run = start(operator, [0] * 55)
    panel = admin_client.get(f"/admin/workflows/run/{run['id']}/steps/each/")
    html = panel.content.decode()
    assert 'data-section="instances"' in html and 'data-total="55"' in html
    assert 'data-count="55"' in html and html.count("data-instance=") == 50
    more = admin_client.get(f"/admin/workflows/run/{run['id']}/steps/each/instances/",
                            {"after": 49}).content.decode()
    assert more.count("data-instance=") == 5
    none = admin_client.get(f"/admin/workflows/run/{run['id']}/steps/each/instances/",
                            {"status": "failed"}).content.decode()
    assert "No instance failed" in none
    one = admin_client.get(f"/admin/workflows/run/{run['id']}/steps/each/instances/3/")
    assert 'data-instance="3"' in one.content.decode() and "sleeping 0s" in one.content.decode()
    assert admin_client.get(
        f"/admin/workflows/run/{run['id']}/steps/each/instances/99/").status_code == 404


def test_the_matrix_cell_shows_done_over_total(operator, admin_client):
    run = start(operator, [0, 0, 0])
    flow = Flow.objects.get(slug="fan")
    html = admin_client.get(f"/admin/workflows/flow/{flow.pk}/change/").content.decode()
    assert 'data-instances="3"' in html and 'data-instances-done="3"' in html
    assert ">3/3</span>" in html and f'data-run="{run["id"]}"' in html


def test_the_flow_graph_draws_a_for_each_step_as_a_stack_with_its_counts(operator, admin_client):
    start(operator, [0, 0])
    flow = Flow.objects.get(slug="fan")
    html = admin_client.get(f"/admin/workflows/flow/{flow.pk}/change/").content.decode()
    assert 'class="gr-stack"' in html
    assert 'data-for-each="true" data-instances="2" data-instances-done="2"' in html
