"""Run search across flows and the one lookup box, for every kind of key."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from workflows.errors import NotPermitted
from workflows.investigation import lookup_resolve, runs_search
from workflows.models import Run

pytestmark = pytest.mark.django_db


def found(desk, **filters) -> list[int]:
    return list(runs_search(actor=desk.support, **filters).values_list("id", flat=True))


def test_search_lists_every_run_newest_first(desk):
    assert found(desk) == list(Run.objects.order_by("-id").values_list("id", flat=True))


@pytest.mark.parametrize("form", ["{id}", "#{id}", " {id} "])
def test_q_matches_a_run_id(desk, form):
    run = desk.history.good_runs[0]
    assert run.pk in found(desk, q=form.format(id=run.pk))


def test_q_matches_input_values_case_insensitively(desk):
    assert found(desk, q="BAD-1") == [desk.history.bad_runs[1].pk]
    assert found(desk, q="gadgets") == [desk.keyed.pk]


def test_q_matches_error_text(desk):
    assert found(desk, q="transform exploded") == [r.pk for r in reversed(desk.history.bad_runs)]
    assert found(desk, q="ActionFailed") == [r.pk for r in reversed(desk.history.bad_runs)]


def test_q_matches_idempotency_and_webhook_delivery_keys(desk):
    assert found(desk, q="order-1234") == [desk.keyed.pk]
    assert found(desk, q="dlv-7781") == [desk.hooked.pk]
    assert found(desk, q="webhook:dlv-7781") == [desk.hooked.pk]


def test_q_matches_the_approver(desk):
    assert found(desk, q="rita") == [desk.approved.pk]
    assert found(desk, q="RITA") == [desk.approved.pk]


def test_q_matches_a_callback_url_or_token_by_its_hash(desk):
    assert found(desk, q=desk.url) == [desk.waiting.pk]
    assert found(desk, q=desk.token) == [desk.waiting.pk]
    assert found(desk, q=desk.token[:-2] + "xx") == []


def test_nothing_matches_unknown_text(desk):
    assert found(desk, q="no such text anywhere") == []


def test_filters_status_flow_error_kind_and_finish_time(desk):
    bad = [r.pk for r in reversed(desk.history.bad_runs)]
    assert found(desk, status="failed") == bad
    assert found(desk, error_kind="error") == bad
    assert found(desk, error_kind="rejected") == []
    assert found(desk, flow="pipeline", status="completed") == [
        r.pk for r in reversed(desk.history.good_runs)]
    assert found(desk, flow=desk.history.flow, q="good-0") == [desk.history.good_runs[0].pk]
    assert found(desk, flow="no-such-flow") == []
    old = desk.history.good_runs[0]
    Run.objects.filter(pk=old.pk).update(finished_at=timezone.now() - dt.timedelta(days=3))
    yesterday = timezone.now() - dt.timedelta(days=1)
    assert old.pk not in found(desk, finished_after=yesterday)
    assert found(desk, finished_before=yesterday) == [old.pk]
    # A run that has not finished has no finish time: a finish-time filter leaves it out.
    assert desk.waiting.pk not in found(desk, finished_after=yesterday)


def test_search_needs_the_view_permission(desk):
    from tests.workflows.investigation.conftest import user

    with pytest.raises(NotPermitted):
        runs_search(actor=user("nobody"))
    with pytest.raises(NotPermitted):
        lookup_resolve(actor=user("nobody2"), text="1")


# --- the lookup box -----------------------------------------------------------------------------


def resolved(desk, text: str) -> tuple[int | None, str]:
    result = lookup_resolve(actor=desk.support, text=text)
    return (result["run"].pk if result["run"] else None), result["kind"]


@pytest.mark.parametrize("form", [
    "{id}", "#{id}", "http://127.0.0.1:8000/admin/workflows/run/{id}/change/",
    "https://wf.example.com/admin/workflows/run/{id}/change/?step=x",
    "/admin/workflows/run/{id}/", "http://127.0.0.1:8000/api/v1/runs/{id}",
    "http://127.0.0.1:8000/api/v1/runs/{id}/events",
])
def test_lookup_resolves_a_run_id_or_url(desk, form):
    run = desk.history.bad_runs[0]
    assert resolved(desk, form.format(id=run.pk)) == (run.pk, "run")


@pytest.mark.parametrize("form", [
    "A{id}", "a{id}", "A#{id}", "http://127.0.0.1:8000/admin/approvals/approval/{id}/change/",
    "/api/v1/approvals/{id}",
])
def test_lookup_resolves_an_approval_id_or_url(desk, form):
    assert resolved(desk, form.format(id=desk.approval.pk)) == (desk.approved.pk, "approval")


def test_lookup_resolves_a_callback_url_or_token(desk):
    assert resolved(desk, desk.url) == (desk.waiting.pk, "callback")
    assert resolved(desk, desk.token) == (desk.waiting.pk, "callback")
    other_host = "https://hooks.example.org/api/v1/callbacks/" + desk.token
    assert resolved(desk, other_host) == (desk.waiting.pk, "callback")


def test_lookup_resolves_a_webhook_delivery_key_and_an_idempotency_key(desk):
    assert resolved(desk, "dlv-7781") == (desk.hooked.pk, "delivery_key")
    assert resolved(desk, "order-1234") == (desk.keyed.pk, "idempotency_key")


def test_lookup_lists_candidates_for_free_text(desk):
    result = lookup_resolve(actor=desk.support, text="transform exploded")
    assert result["run"] is None and result["kind"] == "search"
    assert [r.pk for r in result["candidates"]] == [r.pk for r in reversed(desk.history.bad_runs)]
    by_approver = lookup_resolve(actor=desk.support, text="rita")
    assert [r.pk for r in by_approver["candidates"]] == [desk.approved.pk]


@pytest.mark.parametrize("text", ["", "   ", "A999999", "999999",
                                  "http://127.0.0.1:8000/admin/workflows/run/999999/change/",
                                  "http://127.0.0.1:8000/api/v1/callbacks/" + "x" * 43])
def test_lookup_of_an_unknown_key_finds_nothing(desk, text):
    result = lookup_resolve(actor=desk.support, text=text)
    assert result["run"] is None and result["candidates"] == []


def test_the_same_idempotency_key_in_two_flows_lists_both(desk):
    from workflows.services.runs import run_start

    other, _ = run_start(flow=desk.history.flow, idempotency_key="order-1234")
    result = lookup_resolve(actor=desk.support, text="order-1234")
    assert result["run"] is None
    assert [r.pk for r in result["candidates"]] == [other.pk, desk.keyed.pk]
