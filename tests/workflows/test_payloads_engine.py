"""The storage rule wired into the engine: odd, binary and large values end with the run
completed and the data retrievable byte for byte (issue 9), against a real HTTP server."""

from __future__ import annotations

import hashlib
import json
import math
from http.server import BaseHTTPRequestHandler

import pytest

from resources.models import Resource, ResourceKind
from resources.payloads import is_descriptor, value_load
from resources.selectors import resource_from_uri
from tests.conftest import local_http_server
from tests.factories import drain, make_flow, simple_definition, steps_of
from workflows.engine import callback_token
from workflows.models import Attempt, LogChunk
from workflows.services.callbacks import callback_receive
from workflows.services.runs import run_start
from workflows.steps.actions import action, get_action

pytestmark = pytest.mark.django_db

BINARY = bytes(range(256)) * 64  # every byte value, NUL included
INVALID_UTF8 = b"caf\xe9 au lait \xff\xfe and more\n" * 10
FIVE_MIB = (b"0123456789abcdef" * 65536) * 5

BODIES = {
    "/json-nul": (b'{"text": "a\\u0000b", "n": 1}', "application/json"),
    "/binary": (BINARY, "application/octet-stream"),
    "/png": (b"\x89PNG\r\n\x1a\n" + BINARY[:512], "image/png"),
    "/latin": (INVALID_UTF8, "text/plain; charset=utf-8"),
    "/big": (FIVE_MIB, "application/octet-stream"),
    "/inf": (b'{"x": 1e400, "y": 2}', "application/json"),
    "/small": (b'{"count": 7}', "application/json"),
}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        unsized = self.path.startswith("/unsized")  # HTTP/1.0: the body ends at close
        body, content_type = BODIES[self.path.removeprefix("/unsized")]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if not unsized:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the step stopped reading at its cap


@pytest.fixture(scope="module")
def server():
    with local_http_server(Handler) as url:
        yield url


def run_steps(*steps):
    flow = make_flow(simple_definition(steps=list(steps)))
    run, _ = run_start(flow=flow, input={})
    drain()
    run.refresh_from_db()
    return run


def fetch(server, path, **extra):
    return {"key": "fetch", "type": "http", "request": {"method": "GET", "url": server + path},
            **extra}


def read_resource(uri: str) -> bytes:
    with resource_from_uri(uri).file.open("rb") as handle:
        return handle.read()


def test_json_with_an_escaped_nul_is_kept_losslessly_and_references_still_resolve(server):
    run = run_steps(fetch(server, "/json-nul"),
                    {"key": "use", "type": "python", "action": "core.echo",
                     "args": {"text": "{{ steps.fetch.output.body.text }}",
                              "n": "{{ steps.fetch.output.body.n }}"}})
    assert run.status == "completed", steps_of(run)["fetch"].error
    steps = steps_of(run)
    output = steps["fetch"].output
    assert is_descriptor(output) and output["reason"] == "unstorable"
    assert value_load(output)["body"] == {"text": "a\x00b", "n": 1}
    assert value_load(steps["use"].output) == {"text": "a\x00b", "n": 1}


@pytest.mark.parametrize(("path", "data"), [
    ("/binary", BINARY), ("/latin", INVALID_UTF8), ("/big", FIVE_MIB),
], ids=["nul-bytes", "invalid-utf8", "5MiB"])
def test_binary_undecodable_and_large_bodies_become_resources_byte_for_byte(server, path, data):
    run = run_steps(fetch(server, path))
    assert run.status == "completed", steps_of(run)["fetch"].error
    body = steps_of(run)["fetch"].output["body"]
    assert is_descriptor(body) and body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert read_resource(body["$resource"]) == data
    resource = resource_from_uri(body["$resource"])
    assert resource.run_id == run.pk and resource.kind == ResourceKind.VALUE


def test_a_small_json_body_stays_inline(server):
    run = run_steps(fetch(server, "/small"))
    assert steps_of(run)["fetch"].output["body"] == {"count": 7}


def test_a_non_finite_number_follows_the_storage_rule(server):
    run = run_steps(fetch(server, "/inf"))
    assert run.status == "completed", steps_of(run)["fetch"].error
    output = steps_of(run)["fetch"].output
    assert is_descriptor(output)
    body = value_load(output)["body"]
    assert math.isinf(body["x"]) and body["y"] == 2


def test_a_body_over_the_cap_fails_the_attempt_naming_the_cap(server, settings):
    settings.WF_HTTP_MAX_BYTES = 100_000
    values = Resource.objects.filter(kind=ResourceKind.VALUE)
    before = values.count()
    run = run_steps(fetch(server, "/big", retry={"max_attempts": 3, "backoff_seconds": 0}))
    step = steps_of(run)["fetch"]
    assert run.status == "failed" and step.error["type"] == "ResponseTooLarge"
    assert "100000 bytes" in step.error["message"]
    assert "WF_HTTP_MAX_BYTES" in step.error["message"]
    assert step.attempt_count == 1  # the same response would come back: not retried
    assert values.count() == before


def test_a_body_over_the_cap_without_a_length_is_refused_while_streaming(server, settings):
    settings.WF_HTTP_MAX_BYTES = 100_000
    values = Resource.objects.filter(kind=ResourceKind.VALUE)
    run = run_steps(fetch(server, "/unsized/big"))
    step = steps_of(run)["fetch"]
    assert step.error["type"] == "ResponseTooLarge" and "100000 bytes" in step.error["message"]
    assert not values.exists()


if get_action("tests.nul_string") is None:
    @action("tests.nul_string")
    def nul_string(ctx, **_):
        ctx.log("before \x00 after\n")
        return "a\x00b"

    @action("tests.chatty")
    def chatty(ctx, lines: int = 1000, **_):
        for index in range(int(lines)):
            ctx.log(f"line {index:05d} " + "x" * 90 + "\n")
        return {"lines": lines}


def test_a_python_action_returning_a_string_with_nul_completes():
    run = run_steps({"key": "odd", "type": "python", "action": "tests.nul_string"})
    assert run.status == "completed", steps_of(run)["odd"].error
    step = steps_of(run)["odd"]
    assert value_load(step.output) == "a\x00b"
    attempt = Attempt.objects.get(step_run=step)
    assert value_load(attempt.output) == "a\x00b"
    # The log shows the NUL visibly and keeps going; the whole log keeps the byte.
    assert "".join(LogChunk.objects.filter(step_run=step).values_list("text", flat=True)) \
        == "before \u2400 after\n"
    log = Resource.objects.get(step_run=step, kind=ResourceKind.LOG)
    assert read_resource(log.uri) == b"before \x00 after\n"


def test_a_long_log_keeps_a_window_in_the_database_and_everything_in_its_resource(settings):
    settings.WF_LOG_INLINE_BYTES = 20_000
    run = run_steps({"key": "talk", "type": "python", "action": "tests.chatty",
                     "args": {"lines": 2000}})
    assert run.status == "completed"
    step = steps_of(run)["talk"]
    kept = list(LogChunk.objects.filter(step_run=step).order_by("seq"))
    inline = sum(len(c.text) for c in kept if c.stream != "omitted")
    assert inline <= 20_000
    log = Resource.objects.get(step_run=step, kind=ResourceKind.LOG)
    assert any(c.stream == "omitted" and log.uri in c.text for c in kept)
    whole = read_resource(log.uri).decode()
    assert whole.count("\n") == 2000 and whole.startswith("line 00000 ")
    assert kept[-1].text.endswith("line 01999 " + "x" * 90 + "\n")


def test_a_large_output_is_offloaded_and_a_reference_loads_it():
    items = [{"id": i, "name": "n" * 50} for i in range(2000)]
    run = run_steps(
        {"key": "make", "type": "python", "action": "core.echo", "args": {"items": items}},
        {"key": "pick", "type": "python", "action": "core.echo",
         "args": {"first": "{{ steps.make.output.items }}"}},
    )
    assert run.status == "completed"
    steps = steps_of(run)
    assert is_descriptor(steps["make"].output) and steps["make"].output["reason"] == "size"
    assert value_load(steps["make"].output)["items"] == items
    # The attempt's input holding the loaded list is kept the same way.
    pick_input = Attempt.objects.get(step_run=steps["pick"]).input
    assert is_descriptor(pick_input) and value_load(pick_input)["args"]["first"] == items


def test_a_300_kb_callback_body_is_accepted_and_offloaded():
    flow = make_flow(simple_definition(steps=[
        {"key": "agent_done", "type": "wait", "timeout_seconds": 600},
        {"key": "after", "type": "python", "action": "core.echo",
         "args": {"size": "{{ steps.agent_done.output.size }}"}},
    ]))
    run, _ = run_start(flow=flow, input={})
    drain()
    step = steps_of(run)["agent_done"]
    payload = {"blob": "é" * (150 * 1024), "odd": "nul\x00", "size": 300}
    assert len(json.dumps(payload, ensure_ascii=False).encode()) > 300_000
    callback_receive(token=callback_token(step.callback_nonce), payload=payload)
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    steps = steps_of(run)
    assert is_descriptor(steps["agent_done"].callback_payload)
    assert value_load(steps["agent_done"].output) == payload
    assert steps["after"].output == {"size": 300}
