"""The API shows what the storage rule kept: `log_ref` and `log_size` of the whole log on the
step document and the logs page, descriptors as stored, and the resource behind each."""

from __future__ import annotations

import pytest

from resources.payloads import is_descriptor
from tests.factories import drain, make_flow, simple_definition
from workflows.steps.actions import action, get_action

pytestmark = pytest.mark.django_db

if get_action("tests.api_talk") is None:
    @action("tests.api_talk")
    def api_talk(ctx, **_):
        for index in range(300):
            ctx.log(f"line {index}\n")
        return {"big": "y" * 100_000}


def test_the_step_document_and_the_logs_page_link_the_whole_log(admin_api, settings):
    settings.WF_LOG_INLINE_BYTES = 1000
    make_flow(simple_definition("talk", steps=[
        {"key": "talk", "type": "python", "action": "tests.api_talk"}]))
    run = admin_api.post("/flows/talk/runs", {"input": {}}).body
    drain()
    step = admin_api.get(f"/runs/{run['id']}/steps/talk").body
    whole = sum(len(f"line {i}\n") for i in range(300))
    assert step["log_ref"].startswith("res://") and step["log_size"] == whole
    assert step["attempts"][0]["log_ref"] == step["log_ref"]
    logs = admin_api.get(f"/runs/{run['id']}/steps/talk/logs?limit=1000").body
    assert logs["log_ref"] == step["log_ref"] and logs["log_size"] == whole
    streams = [item["stream"] for item in logs["items"]]
    assert "omitted" in streams and sum(len(i["text"]) for i in logs["items"]) < whole
    resource = admin_api.get(f"/resources/{step['log_ref']}").body
    assert resource["size"] == whole and resource["url"].startswith("http")
    # The offloaded output is the same descriptor in the run and the step documents.
    document = admin_api.get(f"/runs/{run['id']}").body
    assert is_descriptor(step["output"]) and document["steps"][0]["output"] == step["output"]
    assert document["output"] == step["output"]


def test_an_unknown_resource_is_a_404(admin_api):
    response = admin_api.get("/resources/res://00000000-0000-0000-0000-000000000000")
    assert response.status == 404 and response.error["code"] == "not_found"
