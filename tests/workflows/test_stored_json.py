"""Issue 25 (M2): the decoder of Run.input and Run.trigger_payload reads any stored text."""

from __future__ import annotations

import json

import pytest

from tests.hostile import LONG_DIGITS
from workflows.stored_json import UNREADABLE, StoredJSONDecoder


def read(text: str):
    return json.loads(text, cls=StoredJSONDecoder)


def test_ordinary_values_read_as_they_are():
    value = {"a": [1, 2.5, None, True], "emoji": "\U0001f600", "nested": {"k": "v"}}
    assert read(json.dumps(value)) == value
    assert read(json.dumps(value, ensure_ascii=False)) == value


def test_unpaired_surrogates_read_as_the_replacement_character_and_pairs_stay():
    assert read('{"a": "x\\ud800y", "\\udfff": ["\\ud83d\\ude00", "\\ud800"]}') == {
        "a": "x\ufffdy", "\ufffd": ["\U0001f600", "\ufffd"]}
    assert read('"\\ud800"') == "\ufffd"


@pytest.mark.parametrize(("text", "why"), [
    ('{"n": ' + LONG_DIGITS + "}", "cannot be read: Exceeds the limit (4300 digits)"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply to read"),
])
def test_what_python_cannot_read_is_a_marker_with_a_preview(text, why):
    value = read(text)
    assert set(value) == {UNREADABLE, "preview"}
    assert value[UNREADABLE].startswith(why) and value["preview"] == text[:200]


def test_text_that_is_not_json_stays_djangos_business():
    with pytest.raises(json.JSONDecodeError):
        read("{not json")
