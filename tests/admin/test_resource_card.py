"""The step panel shows a value kept as a resource as a card (name, size, content type,
sha256, signed download, preview or inline image) and links each attempt's whole log."""

from __future__ import annotations

import hashlib
from http.server import BaseHTTPRequestHandler

import pytest
from django.urls import reverse

from tests.conftest import local_http_server, respond
from tests.factories import drain, make_flow, steps_of
from workflows.services.runs import run_start
from workflows.steps.actions import action, get_action

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

if get_action("tests.card_values") is None:
    @action("tests.card_values")
    def card_values(ctx, **_):
        ctx.log("hello from the step\n")
        image = ctx.resource(PNG, name="chart.png", content_type="image/png")
        return {"rows": [f"row {i:05d}" for i in range(8000)], "image": image}


def panel(admin_client, run, key):
    url = reverse("admin:workflows_run_step", args=[run.pk, key])
    return admin_client.get(url).content.decode()


def test_a_large_output_renders_as_a_card_with_a_signed_link_and_a_text_preview(admin_client,
                                                                              client):
    flow = make_flow({"slug": "cards", "name": "Cards", "steps": [
        {"key": "make", "type": "python", "action": "tests.card_values"}]})
    run, _ = run_start(flow=flow, input={})
    drain()
    step = steps_of(run)["make"]
    descriptor = step.output
    page = panel(admin_client, run, "make")
    assert f'data-resource="{descriptor["$resource"]}"' in page
    assert descriptor["sha256"] in page and "make-output.json" in page
    assert "application/json" in page and "row 00000" in page  # the preview (first 4 KB)
    assert "row 07999" not in page
    link = page.split('data-resource="' + descriptor["$resource"])[1].split('href="', 1)[1]
    link = link.split('"', 1)[0]
    response = client.get(link)  # signed: no session needed
    body = b"".join(response.streaming_content)
    assert response.status_code == 200 and hashlib.sha256(body).hexdigest() == descriptor["sha256"]
    # The attempt's whole log is linked, with its size.
    assert "download the full log, 20" in page


class ImageHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        respond(self, 200, PNG, content_type="image/png")


@pytest.fixture
def image_server():
    with local_http_server(ImageHandler) as url:
        yield url


def test_an_image_body_is_shown_inline_with_its_signed_link(admin_client, client, image_server):
    flow = make_flow({"slug": "image", "name": "Image", "steps": [
        {"key": "fetch", "type": "http", "request": {"method": "GET",
                                                     "url": image_server + "/chart.png"}}]})
    run, _ = run_start(flow=flow, input={})
    drain()
    body = steps_of(run)["fetch"].output["body"]
    assert body["content_type"] == "image/png" and body["reason"] == "binary"
    page = panel(admin_client, run, "fetch")
    source = page.split('class="wf-resource-image" src="', 1)[1].split('"', 1)[0]
    response = client.get(source)
    assert response.status_code == 200 and b"".join(response.streaming_content) == PNG
    assert "wf-resource-preview" not in page
