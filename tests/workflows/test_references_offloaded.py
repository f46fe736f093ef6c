"""References into outputs that were kept as resources (the storage rule)."""

from __future__ import annotations

from unittest import mock

import pytest

from resources.models import Resource
from resources.payloads import is_descriptor, storable_json
from workflows.references import ReferenceTooLarge, ReferenceUnresolved, resolve

pytestmark = pytest.mark.django_db

ITEMS = [{"id": i, "name": f"item {i}"} for i in range(5000)]


@pytest.fixture
def context():
    output = storable_json({"status": 200, "body": {"items": ITEMS, "odd": "a\x00b"}})
    assert is_descriptor(output)
    return {"input": {}, "steps": {"fetch": {"output": output}}}


def test_a_path_into_an_offloaded_output_loads_it(context):
    assert resolve("{{ steps.fetch.output.body.items[42].name }}", context) == "item 42"
    assert resolve("{{ steps.fetch.output.status }}", context) == 200
    assert resolve("{{ steps.fetch.output.body.odd }}", context) == "a\x00b"
    assert resolve("n={{ steps.fetch.output.body.items.7.id }}", context) == "n=7"


def test_a_path_ending_at_the_descriptor_passes_the_ref_on(context):
    assert resolve("{{ steps.fetch.output }}", context) == context["steps"]["fetch"]["output"]


def test_each_resource_is_loaded_once_per_resolve(context):
    from resources import payloads

    with mock.patch("workflows.references.value_load", wraps=payloads.value_load) as loads:
        resolved = resolve({"a": "{{ steps.fetch.output.status }}",
                            "b": ["{{ steps.fetch.output.body.items[1].id }}"]}, context)
    assert resolved == {"a": 200, "b": [1]}
    assert loads.call_count == 1


def test_a_reference_beyond_the_load_limit_names_it(context, settings):
    settings.WF_REFERENCE_LOAD_BYTES = 1000
    with pytest.raises(ReferenceTooLarge) as caught:
        resolve("{{ steps.fetch.output.status }}", context)
    assert "WF_REFERENCE_LOAD_BYTES" in str(caught.value) and "1000" in str(caught.value)
    assert caught.value.limit == 1000
    assert isinstance(caught.value, ReferenceUnresolved)


def test_missing_keys_inside_a_loaded_value_say_where(context):
    with pytest.raises(ReferenceUnresolved, match="has no key 'nope'"):
        resolve("{{ steps.fetch.output.body.nope }}", context)


def test_binary_and_vanished_resources_are_unresolved():
    binary = storable_json(b"\x00\x01")
    with pytest.raises(ReferenceUnresolved, match="not JSON"):
        resolve("{{ steps.d.output.x }}", {"steps": {"d": {"output": binary}}})
    gone = storable_json({"x": "\x00"})
    Resource.objects.all().delete()
    with pytest.raises(ReferenceUnresolved, match="is gone"):
        resolve("{{ steps.d.output.x }}", {"steps": {"d": {"output": gone}}})
