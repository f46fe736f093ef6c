"""The run page, the matrix, the explain and home pages with the flow language: optional
failures marked, not counted as failed runs; subflow links both ways."""

from __future__ import annotations

import pytest

from tests.admin.helpers import flow_url, run_url
from tests.factories import echo, make_flow, simple_definition, start
from tests.workflows.flow_language.test_subflows import drain
from workflows.models import Run, StepRun
from workflows.selectors import run_matrix

pytestmark = pytest.mark.django_db


def _optional_failure_run():
    return start(simple_definition(slug="chatty", steps=[
        echo("a"), {"key": "chat", "type": "python", "action": "core.fail",
                    "continue_on_error": True}, echo("b")]))


def test_a_completed_run_with_a_failed_optional_step_is_marked_on_the_run_page(admin_client):
    run = _optional_failure_run()
    drain()
    assert Run.objects.get(pk=run.pk).status == "completed"
    page = admin_client.get(run_url(run)).content.decode()
    assert "completed with failed optional steps" in page
    assert 'data-optional-failed="chat"' in page
    assert 'data-optional="true"' in page


def test_the_matrix_marks_it_and_the_home_and_explain_pages_do_not_count_it_failed(admin_client):
    run = _optional_failure_run()
    drain()
    page = admin_client.get(flow_url(run.flow)).content.decode()
    assert f'data-run-header="{run.pk}" data-status="completed" data-optional-failed="true"' in page
    home = admin_client.get("/admin/").content.decode()
    failed_section = home.split('data-section="failed-recent"')[1].split("data-section=")[0]
    assert f'data-run="{run.pk}"' not in failed_section
    assert run_matrix(flow=run.flow, limit=5)["runs"][0]["status"] == "completed"


def test_parent_and_child_run_pages_link_to_each_other(admin_client):
    make_flow(simple_definition(slug="release-train", steps=[echo("ship", status="shipped")]))
    run = start(simple_definition(slug="parent", steps=[
        {"key": "release", "type": "flow", "flow": "release-train"}]))
    drain()
    step = StepRun.objects.get(run=run, key="release")
    child = Run.objects.get(parent_step=step)
    parent_page = admin_client.get(run_url(run)).content.decode()
    assert f'data-child-run="{child.pk}"' in parent_page
    assert f'href="{run_url(child)}"' in parent_page
    child_page = admin_client.get(run_url(child)).content.decode()
    assert f'data-parent-run="{run.pk}"' in child_page
    assert f'href="{run_url(run)}"' in child_page
    assert "step release" in child_page


def test_a_fanned_subflow_counts_its_children_and_each_instance_links_its_child(admin_client):
    from django.urls import reverse

    make_flow(simple_definition(slug="build-one", input={"repo": {"type": "string",
                                                                  "default": ""}},
                                steps=[echo("build", repo="{{ input.repo }}")]))
    run = start(simple_definition(
        slug="parent", input={"repos": {"type": "array", "default": []}},
        steps=[{"key": "builds", "type": "flow", "flow": "build-one",
                "for_each": "{{ input.repos }}", "input": {"repo": "{{ item }}"}}]),
        input={"repos": ["x", "y"]})
    drain()
    step = StepRun.objects.get(run=run, key="builds")
    second = Run.objects.get(pk=step.instances.get(index=1).child_run_id)
    parent_page = admin_client.get(run_url(run)).content.decode()
    assert 'data-child-runs="2"' in parent_page and "2 subflow runs" in parent_page
    detail = admin_client.get(reverse("admin:workflows_run_step_instance",
                                      args=[run.pk, "builds", "1"])).content.decode()
    assert f'data-child-run="{second.pk}"' in detail and f'href="{run_url(second)}"' in detail
    child_page = admin_client.get(run_url(second)).content.decode()
    assert f'data-parent-run="{run.pk}"' in child_page
    assert "step builds, instance 1" in child_page
