"""One search (issue 24): the runs list's search box, the Find box's candidates and
`GET /runs?q=` use one lookup, say which field matched with a snippet, and a bare number that
is a run's id finds that run rather than text containing the digits."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.factories import make_flow, simple_definition
from workflows.investigation import lookup_resolve, runs_search, search_matches
from workflows.models import Run
from workflows.services.runs import run_start

pytestmark = pytest.mark.django_db


def via_api(client: Client, q: str) -> list[int]:
    response = client.get("/api/v1/runs", {"q": q})
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def via_list(client: Client, q: str) -> list[int]:
    response = client.get("/admin/workflows/run/", {"q": q})
    assert response.status_code == 200
    return [int(n) for n in re.findall(r'<span data-run="(\d+)">', response.content.decode())]


def via_service(desk, q: str) -> list[int]:
    return list(runs_search(actor=desk.support, q=q).values_list("id", flat=True))


@pytest.fixture
def invoices(desk):
    flow = make_flow(simple_definition(
        "invoices", input={"invoice": {"type": "string"}},
        steps=[{"key": "post", "type": "python", "action": "core.echo"}]))
    run, _ = run_start(flow=flow, input={"invoice": "INV-1010"})
    return run


@pytest.fixture
def staff(desk) -> Client:
    """The support user (role: support) signed in to the admin, which needs staff status."""
    desk.support.is_staff = True
    desk.support.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(desk.support)
    return client


@pytest.mark.parametrize("q", ["INV-1010", "inv-1010", "A{approval}", "a{approval}",
                               "dlv-7781", "order-1234", "rita", "transform exploded",
                               "{token}", "{url}", "#{bad}", "{bad}"])
def test_the_runs_list_the_api_and_the_service_find_the_same_runs(desk, invoices, staff, q):
    q = q.format(approval=desk.approval.pk, token=desk.token, url=desk.url,
                 bad=desk.history.bad_runs[0].pk)
    expected = via_service(desk, q)
    assert expected, q
    assert via_api(staff, q) == expected
    assert via_list(staff, q) == expected


def test_an_input_value_and_an_approval_id_are_found(desk, invoices):
    """The runs list found nothing for INV-1010 (shown in its own Input column) nor A6."""
    assert via_service(desk, "INV-1010") == [invoices.pk]
    assert via_service(desk, f"A{desk.approval.pk}") == [desk.approved.pk]


def test_a_bare_number_matches_the_run_id_before_error_text(desk):
    target = desk.history.good_runs[0]
    noisy = desk.history.bad_runs[0]
    Run.objects.filter(pk=noisy.pk).update(
        error={"step": "transform", "type": "ConnectError",
               "message": f"connection to {target.pk}27.0.0.1:9 refused"})
    assert via_service(desk, str(target.pk)) == [target.pk]
    assert via_service(desk, f"#{target.pk}") == [target.pk]
    # A number that is no run's id is searched as text.
    unused = Run.objects.order_by("-id").values_list("id", flat=True).first() + 1000
    Run.objects.filter(pk=noisy.pk).update(
        error={"step": "transform", "message": f"ticket {unused} reopened"})
    assert via_service(desk, str(unused)) == [noisy.pk]


def test_each_result_says_which_field_matched_with_a_snippet(desk, invoices):
    def match(q, run):
        found = search_matches(list(runs_search(actor=desk.support, q=q)), q)
        return found[run.pk]

    assert match("INV-1010", invoices) == {"field": "input", "snippet": "invoice=INV-1010"}
    error = match("exploded", desk.history.bad_runs[0])
    assert error["field"] == "error" and "exploded" in error["snippet"]
    assert match(f"A{desk.approval.pk}", desk.approved) == {
        "field": "approval", "snippet": f"A{desk.approval.pk}"}
    assert match("rita", desk.approved) == {"field": "approver", "snippet": "decided by rita"}
    assert match("dlv-7781", desk.hooked) == {"field": "delivery key", "snippet": "dlv-7781"}
    assert match("order-1234", desk.keyed) == {"field": "idempotency key",
                                               "snippet": "order-1234"}
    callback = match(desk.url, desk.waiting)
    assert callback["field"] == "callback" and desk.token not in callback["snippet"]
    bad = desk.history.bad_runs[0]
    assert match(str(bad.pk), bad) == {"field": "run id", "snippet": f"#{bad.pk}"}


def test_a_long_value_gives_a_snippet_around_the_match(desk):
    flow = make_flow(simple_definition(
        "notes", input={"note": {"type": "string"}},
        steps=[{"key": "post", "type": "python", "action": "core.echo"}]))
    run, _ = run_start(flow=flow, input={"note": "x" * 200 + " NEEDLE-42 " + "y" * 200})
    found = search_matches([Run.objects.select_related("flow").get(pk=run.pk)], "needle-42")
    snippet = found[run.pk]["snippet"]
    assert found[run.pk]["field"] == "input"
    assert snippet.startswith("…") and snippet.endswith("…") and "NEEDLE-42" in snippet
    assert len(snippet) < 100


def test_the_api_items_carry_the_match(desk, invoices, staff):
    items = staff.get("/api/v1/runs", {"q": "INV-1010"}).json()["items"]
    assert items[0]["match"] == {"field": "input", "snippet": "invoice=INV-1010"}
    assert staff.get("/api/v1/runs").json()["items"][0]["match"] is None


def test_the_find_box_lists_candidates_with_the_matched_field(desk, staff):
    page = staff.get("/admin/lookup/", {"q": "exploded"}).content.decode()
    assert "2 runs match" in page
    assert page.count('data-match-field="error"') == 2 and "transform exploded" in page
    one = desk.history.bad_runs[0]
    Run.objects.filter(pk=desk.history.bad_runs[1].pk).update(error={"message": "other"})
    page = staff.get("/admin/lookup/", {"q": "exploded"}).content.decode()
    assert "1 run matches" in page and f'data-run="{one.pk}"' in page
    result = lookup_resolve(actor=desk.support, text="INV-none")
    assert result["candidates"] == []


def test_the_search_boxes_say_what_they_search(desk, staff):
    page = staff.get("/admin/workflows/run/").content.decode()
    box = re.search(r'<input type="text"[^>]*id="searchbar"[^>]*>', page).group(0)
    assert 'placeholder="Run id, A123, input value, error text' in box
    assert "input value, error text, delivery or idempotency key, approver, callback URL" in (
        page)
    lookup = re.search(r'<form data-lookup.*?</form>', page, re.S).group(0)
    assert "input value" in lookup and "error text" in lookup
