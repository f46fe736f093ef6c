"""Decided approvals read as decisions (no form, no timeout line), and the inbox filters by
flow, status and decider and searches, with a bounded number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus
from approvals.services import approval_approve, approval_reject
from tests.admin.conftest import approval_definition, make_user, start
from tests.factories import make_flow

pytestmark = pytest.mark.django_db

INBOX = "/admin/approvals/approval/"


def detail_url(approval) -> str:
    return reverse("admin:approvals_approval_change", args=[approval.pk])


def rows(page: str) -> set[int]:
    import re

    return {int(n) for n in re.findall(r'data-approval="(\d+)"', page)}


@pytest.fixture
def history(db, users):
    """Two flows; approvals approved by `reviewer`, rejected by `rita`, and two pending."""
    rita = make_user("rita", "reviewers")
    reviewer = users["reviewers"]
    reports = make_flow(approval_definition("reports"))
    invoices = make_flow({**approval_definition("invoices"),
                          "input": {"topic": {"type": "string", "default": "march invoices"}}})
    made = {}
    for name, flow in (("approved", reports), ("rejected", invoices),
                       ("pending_reports", reports), ("pending_invoices", invoices)):
        run = start(flow)
        made[name] = Approval.objects.get(run=run)
    approval_approve(approval=made["approved"], actor=reviewer, comment="ship it")
    approval_reject(approval=made["rejected"], actor=rita, comment="totals are off")
    for approval in made.values():
        approval.refresh_from_db()
    made["rita"] = rita
    return made


def test_a_decided_approval_shows_the_decision_and_no_form_nor_timeout(clients, history):
    approval = history["approved"]
    Approval.objects.filter(pk=approval.pk).update(
        timeout_at=timezone.now() + timedelta(hours=23))
    page = clients["reviewers"].get(detail_url(approval)).content.decode()
    assert 'data-section="decision" data-status="approved"' in page
    decision = page[page.index('data-section="decision"'):page.index("</section>")]
    assert "<strong data-decider>reviewer</strong>" in decision
    assert "ship it" in decision and "<time " in decision  # who, comment, when
    assert 'class="ap-form"' not in page
    assert 'data-action="' not in page
    assert "times out" not in page and "waiting " not in page and "past its timeout" not in page


def test_a_rejected_approval_reads_as_a_rejection_with_its_reason(clients, history):
    page = clients["support"].get(detail_url(history["rejected"])).content.decode()
    assert 'data-section="decision" data-status="rejected"' in page
    assert "<strong data-decider>rita</strong>" in page and "totals are off" in page


def test_a_pending_approval_still_offers_the_form_and_its_timeout(clients, history):
    approval = history["pending_reports"]
    Approval.objects.filter(pk=approval.pk).update(
        timeout_at=timezone.now() + timedelta(hours=23))
    page = clients["reviewers"].get(detail_url(approval)).content.decode()
    assert 'data-action="approve"' in page and "times out in 22" in page
    assert 'data-section="decision"' not in page


@pytest.mark.parametrize(("query", "expected"), [
    ("flow=reports", {"approved"}),
    ("flow=invoices", {"rejected"}),
    ("status=rejected", {"rejected"}),
    ("status=approved", {"approved"}),
    ("decider=rita", {"rejected"}),
    ("decider=reviewer&status=rejected", set()),
    ("q=totals", {"rejected"}),  # the comment
    ("q=march", {"rejected"}),  # the data shown to the reviewer
    ("q=INVOICES", {"rejected"}),  # the flow, any case
])
def test_the_decided_tab_filters_by_flow_status_decider_and_searches(
        clients, history, query, expected):
    page = clients["support"].get(f"{INBOX}?tab=decided&{query}").content.decode()
    assert rows(page) == {history[name].pk for name in expected}


def test_search_finds_an_approval_by_its_id_and_by_its_run(clients, history):
    approval = history["approved"]
    for q in (f"A{approval.pk}", str(approval.pk)):
        page = clients["support"].get(f"{INBOX}?tab=decided&q={q}").content.decode()
        assert approval.pk in rows(page)
    page = clients["support"].get(f"{INBOX}?tab=decided&q={approval.run_id}").content.decode()
    assert approval.pk in rows(page)


@pytest.mark.parametrize(("query", "expected"), [
    ("", {"pending_reports", "pending_invoices"}),
    ("flow=invoices", {"pending_invoices"}),
    ("q=march", {"pending_invoices"}),
    ("q=nothing-like-this", set()),
    ("status=approved&decider=rita", {"pending_reports", "pending_invoices"}),  # decided only
])
def test_the_pending_tabs_filter_by_flow_and_search(clients, history, query, expected):
    for tab in ("pending", "all"):
        page = clients["reviewers" if tab == "pending" else "support"].get(
            f"{INBOX}?tab={tab}&{query}").content.decode()
        assert rows(page) == {history[name].pk for name in expected}, (tab, query)


def test_the_filters_keep_their_values_in_the_form_tabs_and_pages(clients, history):
    page = clients["support"].get(f"{INBOX}?tab=decided&flow=invoices&status=rejected"
                                  "&decider=rita&q=totals").content.decode()
    assert '<option value="invoices" selected>' in page
    assert '<option value="rejected" selected>' in page
    assert '<option value="rita" selected>' in page
    assert 'value="totals"' in page
    assert 'href="?tab=pending&amp;flow=invoices&amp;status=rejected&amp;decider=rita&amp;q=totals"' \
        in page
    assert "data-clear-filters" in page


def test_an_unknown_status_is_named_and_ignored(clients, history):
    page = clients["support"].get(f"{INBOX}?tab=decided&status=bogus").content.decode()
    assert "unknown status &#x27;bogus&#x27;" in page
    assert rows(page) == {history["approved"].pk, history["rejected"].pk}


def test_who_may_not_read_every_approval_filters_only_their_own_decisions(
        clients, users, history):
    from tests.admin.conftest import login

    page = clients["nobody"].get(f"{INBOX}?tab=decided&decider=rita").content.decode()
    assert rows(page) == set()  # rita's decisions are not theirs to read
    assert '<option value="rita"' not in page
    rita = login(history["rita"])
    page = rita.get(f"{INBOX}?tab=decided&decider=rita").content.decode()
    assert rows(page) == {history["rejected"].pk}


def _more_history(count: int) -> None:
    flow = make_flow(approval_definition("bulk"))
    decider = make_user("bulk_decider", "reviewers")
    for n in range(count):
        run = start(flow)
        approval = Approval.objects.get(run=run)
        if n % 2:
            approval_approve(approval=approval, actor=decider, comment=f"ok {n}")


@pytest.mark.parametrize("tab", ["pending", "all", "decided"])
def test_the_inbox_query_count_does_not_grow_with_the_approvals(
        clients, history, tab, django_assert_max_num_queries):
    client = clients["support"] if tab != "pending" else clients["reviewers"]
    url = f"{INBOX}?tab={tab}&q=o"
    with django_assert_max_num_queries(20) as few:
        client.get(url)
    _more_history(8)
    with django_assert_max_num_queries(len(few.captured_queries)) as many:
        page = client.get(url).content.decode()
    assert rows(page)  # the bigger history is listed with no more queries
    assert Approval.objects.exclude(status=ApprovalStatus.PENDING).count() >= 6
    assert len(many.captured_queries) <= len(few.captured_queries)
