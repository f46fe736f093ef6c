"""What each role may read, and that the records stay read-only in the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from workflows.models import Event, FlowVersion

pytestmark = pytest.mark.django_db

READABLE = [
    "workflows_flow", "workflows_flowversion", "workflows_run", "workflows_steprun",
    "workflows_attempt", "workflows_event", "workflows_logchunk", "approvals_approval",
    "resources_resource",
]


@pytest.mark.parametrize("name", READABLE)
def test_support_reads_every_list(clients, failed_run, name):
    assert clients["support"].get(reverse(f"admin:{name}_changelist")).status_code == 200


def test_support_does_not_see_connections(clients):
    assert clients["support"].get("/admin/connections/connection/").status_code == 403
    index = clients["support"].get("/admin/").content.decode()
    assert "/admin/connections/" not in index and "/admin/workflows/run/" in index


@pytest.mark.parametrize("name", ["workflows_event", "workflows_steprun", "workflows_attempt",
                                  "workflows_flowversion", "workflows_run",
                                  "workflows_logchunk"])
def test_records_cannot_be_added_or_deleted_even_by_a_superuser(admin_client, failed_run, name):
    assert admin_client.get(reverse(f"admin:{name}_add")).status_code == 403
    model = {"workflows_event": Event, "workflows_flowversion": FlowVersion}.get(name)
    if model is not None:
        obj = model.objects.first()
        assert admin_client.post(reverse(f"admin:{name}_delete", args=[obj.pk]),
                                 {"post": "yes"}).status_code == 403
        assert model.objects.filter(pk=obj.pk).exists()


def test_an_event_page_is_read_only(admin_client, failed_run):
    event = Event.objects.filter(run=failed_run).first()
    url = reverse("admin:workflows_event_change", args=[event.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="reason"' not in page and event.kind in page
    response = admin_client.post(url, {"reason": "rewritten", "kind": "x"})
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.reason != "rewritten"


def test_flows_cannot_be_deleted_from_the_admin(admin_client, failed_run):
    url = reverse("admin:workflows_flow_delete", args=[failed_run.flow_id])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert failed_run.flow.__class__.objects.filter(pk=failed_run.flow_id).exists()


def test_a_user_without_a_role_sees_no_runs(clients, failed_run):
    assert clients["nobody"].get(reverse("admin:workflows_run_changelist")).status_code == 403
    url = reverse("admin:workflows_run_change", args=[failed_run.pk])
    assert clients["nobody"].get(url).status_code == 403


@pytest.mark.parametrize("name", ["workflows_steprun", "workflows_attempt", "workflows_event",
                                  "workflows_logchunk", "workflows_run"])
@pytest.mark.parametrize("term", ["flaky", "12", "not a number"])
def test_searching_the_record_lists_never_fails(admin_client, failed_run, name, term):
    response = admin_client.get(reverse(f"admin:{name}_changelist"), {"q": term})
    assert response.status_code == 200
