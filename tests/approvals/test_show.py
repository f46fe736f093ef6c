"""What the reviewer sees: `show:` (references resolved when the approval is requested,
labelled by the reference), by default the outputs of the steps the approval needs."""

from __future__ import annotations

import pytest

from approvals.models import Approval
from tests.factories import drain, echo, simple_definition, start
from tests.workflows.definitions.samples import problems_of
from workflows.definitions import validate_definition

pytestmark = pytest.mark.django_db


def review(**extra) -> dict:
    return {"key": "review", "type": "approval", "assignees": {"groups": ["reviewers"]},
            "instructions": "Ship it?", **extra}


def flow_with(review_step: dict, **extra) -> dict:
    return simple_definition(
        input={"repo": {"type": "string", "default": "core"}},
        steps=[echo("build", url="https://ci.example.com/b/7", size=42),
               echo("retry_helper", needs=["build"], attempt=1),
               {**review_step, "needs": ["retry_helper"]},
               echo("publish", needs=["review"])],
        **extra)


def test_show_resolves_each_reference_under_its_label_when_the_approval_is_requested():
    run = start(flow_with(review(show=["{{ steps.build.output.url }}", "{{ input.repo }}",
                                      "{{ steps.build.output.size }}"])))
    drain()
    approval = Approval.objects.get(run=run)
    assert approval.data == {"steps.build.output.url": "https://ci.example.com/b/7",
                             "input.repo": "core", "steps.build.output.size": 42}


def test_without_show_the_reviewer_sees_the_outputs_of_the_steps_it_needs_by_key():
    run = start(flow_with(review()))
    drain()
    assert Approval.objects.get(run=run).data == {"retry_helper": {"attempt": 1}}


@pytest.mark.parametrize(("show", "path", "message"), [
    ("{{ steps.build.output.url }}", "steps[2].show", "non-empty list of references"),
    ([], "steps[2].show", "non-empty list of references"),
    (["the build"], "steps[2].show[0]", "must be one reference"),
    (["{{ input.repo }}", "url: {{ steps.build.output.url }}"], "steps[2].show[1]",
     "must be one reference"),
    ([7], "steps[2].show[0]", "must be one reference"),
])
def test_show_must_be_a_list_of_single_references(show, path, message):
    problems = problems_of(flow_with(review(show=show)))
    assert any(p["path"] == path and message in p["message"] for p in problems), problems


def test_show_refers_only_to_what_the_step_may_see():
    problems = problems_of(flow_with(review(show=["{{ steps.publish.output.x }}",
                                                  "{{ input.nope }}"])))
    paths = {p["path"]: p["message"] for p in problems}
    assert "is not among the steps this one needs" in paths["steps[2].show[0]"]
    assert "no declared input 'nope'" in paths["steps[2].show[1]"]


def test_a_valid_show_passes_the_checks():
    definition = validate_definition(flow_with(review(show=["{{ steps.build.output.url }}"])))
    step = next(s for s in definition["steps"] if s["key"] == "review")
    assert step["show"] == ["{{ steps.build.output.url }}"]
