"""The storage rule: values the databases cannot store, or that are too big, become resources
and round-trip exactly, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from resources.models import Resource, ResourceKind
from resources.payloads import (
    OutputNotStorable,
    is_descriptor,
    storable_json,
    storable_text,
    value_load,
)
from workflows.models import Attempt, LogChunk, StepRun

pytestmark = pytest.mark.django_db

BIG_ITEMS = [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(3000)]


def same(a, b) -> bool:
    """Equality that treats NaN as equal to NaN and tells bytes from str."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


ODD_VALUES = {
    "nul in a string": {"body": {"text": "before\x00after"}},
    "nul in a key": {"ke\x00y": 1},
    "unpaired surrogate": {"stdout": "bytes \udc80\udcff and \ud800 alone"},
    "1e400 from a remote reply": json.loads('{"amount": 1e400, "low": -1e400}'),
    "nan": {"ratio": float("nan")},
    "bytes inside json": {"status": 200, "body": b"\x00\x01\xff binary"},
    "a tag look-alike next to an odd value": {"$bytes": "not base64!", "x": "\x00",
                                              "y": {"$float": "NaN"}},
}


def write_and_read(step_run: StepRun, attempt: Attempt, value):
    StepRun.objects.filter(pk=step_run.pk).update(output=value)
    Attempt.objects.filter(pk=attempt.pk).update(output=value, input={"echo": value})
    step_run.refresh_from_db()
    attempt.refresh_from_db()
    assert step_run.output == value
    assert attempt.output == value and attempt.input == {"echo": value}
    return step_run.output


@pytest.mark.parametrize("value", ODD_VALUES.values(), ids=ODD_VALUES.keys())
def test_odd_values_become_resources_and_round_trip(step_run, attempt, value):
    stored = storable_json(value, run=step_run.run, step_run=step_run, attempt=attempt,
                           name="first-output.json")
    assert is_descriptor(stored)
    assert stored["reason"] in {"unstorable", "binary"}
    read_back = write_and_read(step_run, attempt, stored)
    assert same(value_load(read_back), value)
    resource = Resource.objects.get(pk=read_back["$resource"].removeprefix("res://"))
    assert resource.kind == ResourceKind.VALUE and resource.step_run_id == step_run.pk
    assert resource.run_id == step_run.run_id and resource.attempt_id == attempt.pk
    with resource.file.open("rb") as handle:
        content = handle.read()
    assert hashlib.sha256(content).hexdigest() == read_back["sha256"] == resource.sha256
    assert len(content) == read_back["size"]
    content.decode("utf-8")  # the resource itself is valid UTF-8 JSON
    json.loads(content)


def test_a_big_value_is_kept_as_plain_json_byte_for_byte(step_run, attempt, settings):
    settings.WF_INLINE_OUTPUT_BYTES = 64 * 1024
    value = {"status": 200, "body": {"items": BIG_ITEMS}}
    stored = storable_json(value, step_run=step_run, name="fetch.json")
    assert is_descriptor(stored) and stored["reason"] == "size"
    assert stored["content_type"] == "application/json"
    assert stored["preview"].startswith('{"status":200,"body":{"items":[{"id":0')
    assert len(json.dumps(stored)) < 1000
    read_back = write_and_read(step_run, attempt, stored)
    resource = Resource.objects.get(pk=read_back["$resource"].removeprefix("res://"))
    with resource.file.open("rb") as handle:
        assert handle.read() == json.dumps(value, separators=(",", ":")).encode()
    assert value_load(read_back) == value


def test_small_storable_values_stay_inline_unchanged(step_run, attempt):
    value = {"status": 200, "body": {"ok": True, "text": "héllo ✓ 😀", "n": 1.5, "none": None}}
    assert storable_json(value, step_run=step_run) is value
    assert write_and_read(step_run, attempt, value) == value
    assert not Resource.objects.exists()
    assert storable_json(None) is None and storable_json([]) == []


def test_the_limit_is_the_compact_utf8_size(step_run):
    value = {"s": "é" * 100}  # 200 bytes of UTF-8 plus 8 of JSON
    assert storable_json(value, limit=208) is value
    assert is_descriptor(storable_json(value, limit=207))


def test_bytes_at_the_top_are_stored_raw(step_run, attempt):
    data = bytes(range(256)) * 40
    stored = storable_json(data, step_run=step_run, name="download.json")
    assert stored["reason"] == "binary" and stored["preview"] is None
    assert stored["content_type"] == "application/octet-stream"
    read_back = write_and_read(step_run, attempt, stored)
    assert value_load(read_back) == data
    text = storable_json(b"plain text body", content_type="text/plain")
    assert text["preview"] == "plain text body" and value_load(text) == b"plain text body"


def test_a_descriptor_is_itself_storable_inline():
    stored = storable_json({"x": "\x00"})
    assert storable_json(stored) is stored
    assert "\x00" not in stored["preview"]


@pytest.mark.parametrize(("value", "message"), [
    ({"when": object()}, "not JSON"),
    ({"set": {1, 2}}, "not JSON"),
])
def test_what_is_not_json_is_refused_with_a_typed_error(value, message):
    with pytest.raises(OutputNotStorable, match=message):
        storable_json(value)


def test_circular_and_too_deep_values_are_refused():
    circular: dict = {}
    circular["self"] = circular
    with pytest.raises(OutputNotStorable, match="circular"):
        storable_json(circular)
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(OutputNotStorable, match="too deeply"):
        storable_json(deep)


def test_values_nested_900_deep_are_kept(step_run, attempt):
    """Issue 10: outputs nested about 900 deep must be kept (the page renders them safely)."""
    deep: list = ["bottom"]
    for _ in range(900):
        deep = [deep]
    stored = storable_json(deep, step_run=step_run)
    if is_descriptor(stored):
        assert value_load(stored) == deep
    else:
        assert write_and_read(step_run, attempt, stored) == deep


@pytest.mark.parametrize(("text", "expected"), [
    ("plain", "plain"),
    ("a\x00b", "a\u2400b"),
    ("raw \udc80\udcff bytes", "raw \ufffd\ufffd bytes"),
    ("lone \ud800 high", "lone \ufffd high"),
    ("ok 😀 é", "ok 😀 é"),
    (b"bytes", "b'bytes'"),
])
def test_storable_text_shows_nul_and_replaces_surrogates(text, expected):
    assert storable_text(text) == expected


def test_log_text_round_trips_through_the_database(step_run, attempt):
    text = storable_text("start\x00middle\udc80end\n")
    chunk = LogChunk.objects.create(step_run=step_run, attempt=attempt, seq=1, text=text)
    chunk.refresh_from_db()
    assert chunk.text == "start\u2400middle\ufffdend\n"


def test_a_payload_kept_before_its_run_existed_is_attached_to_it(step_run):
    from resources.payloads import keep_json

    kept = keep_json({"event": "push", "blob": "\x00"}, name="webhook-payload.json")
    assert kept.attach(run=step_run.run) == 1
    assert Resource.objects.get().run_id == step_run.run_id
    assert kept.attach(run=step_run.run) == 0  # already attached
    assert keep_json({"plain": 1}).attach(run=step_run.run) == 0


def test_a_streamed_resource_is_described_like_an_offloaded_value():
    from resources.payloads import describe_resource
    from resources.services import resource_create

    resource = resource_create(content=iter([b"\x89PNG", b"\x00" * 10]), content_type="image/png")
    descriptor = describe_resource(resource, preview="\x00", reason="binary")
    assert is_descriptor(descriptor) and descriptor["preview"] == "\u2400"
    assert value_load(descriptor) == b"\x89PNG" + b"\x00" * 10
