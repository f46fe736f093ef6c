import pytest

from workflows.errors import WorkflowError
from workflows.references import (
    ReferenceSyntaxError,
    ReferenceUnresolved,
    find_references,
    find_unclosed,
    format_path,
    is_single_reference,
    parse_reference,
    resolve,
)

CONTEXT = {
    "input": {"repo": "core", "limit": 10, "flags": {"fast": True}, "empty": None},
    "steps": {
        "fetch": {
            "output": {"status": 200, "body": {"items": [{"id": 7}, {"id": 8}], "count": 2}},
            "callback_url": None,
        },
        "agent_done": {"output": None, "callback_url": "http://127.0.0.1:8000/api/v1/callbacks/t"},
        "7up": {"output": {"0": "zero-key"}},
    },
    "connections": {"build-vm": "build-vm"},
}


@pytest.mark.parametrize(
    ("expr", "segments"),
    [
        ("input.repo", ["input", "repo"]),
        ("  input.repo  ", ["input", "repo"]),
        (
            "steps.fetch.output.body.items.0.id",
            ["steps", "fetch", "output", "body", "items", 0, "id"],
        ),
        (
            "steps.fetch.output.body.items[0].id",
            ["steps", "fetch", "output", "body", "items", 0, "id"],
        ),
        ("a[0][12]", ["a", 0, 12]),
        ("connections.build-vm", ["connections", "build-vm"]),
        ("steps.7up.output", ["steps", "7up", "output"]),
        ("_private", ["_private"]),
    ],
)
def test_parse_reference_splits_dotted_paths_and_indices(expr, segments):
    assert parse_reference(expr) == segments


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "   ",
        "__import__('os')",
        "input.repo | upper",
        "input.repo + 1",
        "input.repo()",
        "input..repo",
        "input.",
        "input[-1]",
        "input[x]",
        "input['repo']",
        "0.input",
        "input repo",
        "steps.fetch.output.body.items[0",
    ],
)
def test_parse_reference_rejects_anything_but_a_path(expr):
    with pytest.raises(ReferenceSyntaxError):
        parse_reference(expr)


def test_reference_syntax_error_is_a_value_error():
    assert issubclass(ReferenceSyntaxError, ValueError)
    assert issubclass(ReferenceUnresolved, WorkflowError)


def test_format_path_writes_indices_in_brackets():
    assert (
        format_path(["steps", "fetch", "output", "items", 0, "id"])
        == "steps.fetch.output.items[0].id"
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ input.limit }}", 10),
        ("{{input.limit}}", 10),
        ("{{ input.flags }}", {"fast": True}),
        ("{{ input.flags.fast }}", True),
        ("{{ input.empty }}", None),
        ("{{ steps.fetch.output.body.items }}", [{"id": 7}, {"id": 8}]),
        ("{{ steps.fetch.output.body.items.1.id }}", 8),
        ("{{ steps.fetch.output.body.items[1].id }}", 8),
        ("{{ steps.7up.output.0 }}", "zero-key"),
        ("{{ connections.build-vm }}", "build-vm"),
        ("{{ steps.agent_done.callback_url }}", "http://127.0.0.1:8000/api/v1/callbacks/t"),
    ],
)
def test_a_string_that_is_one_reference_keeps_the_value_type(template, expected):
    assert resolve(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("/reports/{{ input.repo }}", "/reports/core"),
        ("{{ input.repo }}-{{ input.limit }}", "core-10"),
        ("limit={{ input.limit }}", "limit=10"),
        ("fast={{ input.flags.fast }}", "fast=true"),
        ("flags={{ input.flags }}", 'flags={"fast":true}'),
        ("ids={{ steps.fetch.output.body.items }}", 'ids=[{"id":7},{"id":8}]'),
        ("empty=[{{ input.empty }}]", "empty=[]"),
        (" {{ input.limit }}", " 10"),
        ("no references", "no references"),
        ("", ""),
    ],
)
def test_references_with_text_around_them_are_interpolated(template, expected):
    assert resolve(template, CONTEXT) == expected


def test_resolve_walks_nested_structures_and_leaves_keys_and_other_values_alone():
    value = {
        "request": {"url": "/r/{{ input.repo }}", "json": {"n": "{{ input.limit }}", "on": True}},
        "list": ["{{ steps.fetch.output.status }}", 1.5, None, ["{{ input.repo }}"]],
        "{{ input.repo }}": "key stays",
    }
    assert resolve(value, CONTEXT) == {
        "request": {"url": "/r/core", "json": {"n": 10, "on": True}},
        "list": [200, 1.5, None, ["core"]],
        "{{ input.repo }}": "key stays",
    }


def test_resolve_does_not_mutate_the_value_or_share_context_objects():
    value = {"x": "{{ input.flags }}"}
    resolved = resolve(value, CONTEXT)
    resolved["x"]["fast"] = False
    assert value == {"x": "{{ input.flags }}"}
    assert CONTEXT["input"]["flags"] == {"fast": True}


def test_resolved_values_are_data_and_are_not_resolved_again():
    context = {"input": {"text": "{{ input.secret }}", "secret": "s3cret"}}
    assert resolve("{{ input.text }}", context) == "{{ input.secret }}"
    assert resolve("say {{ input.text }}", context) == "say {{ input.secret }}"


def test_resolve_never_evaluates_code():
    with pytest.raises(ReferenceUnresolved) as caught:
        resolve("{{ __import__('os').system('echo hacked') }}", CONTEXT)
    assert "invalid reference" in str(caught.value)


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{ input.nope }}", "input has no key 'nope'"),
        ("{{ input.flags.slow }}", "input.flags has no key 'slow'"),
        (
            "{{ steps.fetch.output.body.items[5].id }}",
            "steps.fetch.output.body.items has no index 5 (it has 2 items)",
        ),
        (
            "{{ steps.fetch.output.body.items.first }}",
            "steps.fetch.output.body.items is a list; expected an index",
        ),
        ("{{ input.repo.name }}", "input.repo is str, so it has no 'name'"),
        ("{{ input.empty.x }}", "input.empty is null"),
        ("{{ steps.later.output }}", "no step 'later' here"),
        ("{{ secrets.token }}", "unknown root 'secrets'"),
        ("url={{ input.nope }}", "input has no key 'nope'"),
    ],
)
def test_missing_keys_and_indices_raise_with_the_missing_part_named(template, fragment):
    with pytest.raises(ReferenceUnresolved) as caught:
        resolve(template, CONTEXT)
    assert fragment in caught.value.message
    assert caught.value.expr in template


def test_reference_unresolved_message_shows_the_reference():
    with pytest.raises(ReferenceUnresolved) as caught:
        resolve("{{ input.nope }}", CONTEXT)
    assert str(caught.value).startswith("{{ input.nope }}: ")


def test_find_references_reports_paths_within_the_value():
    value = {
        "args": {
            "x": "{{ input.a }}",
            "items": ["plain", "{{ steps.s.output[0] }} and {{input.b}}"],
        },
        "n": 3,
    }
    assert find_references(value) == [
        ("args.x", "input.a"),
        ("args.items[1]", "steps.s.output[0]"),
        ("args.items[1]", "input.b"),
    ]


def test_find_references_on_a_bare_string_has_an_empty_path():
    assert find_references("{{ input.a }}") == [("", "input.a")]
    assert find_references(["{{ x }}"]) == [("[0]", "x")]


def test_find_references_returns_bad_expressions_for_the_caller_to_check():
    assert find_references({"a": "{{ 1 + 1 }}"}) == [("a", "1 + 1")]


def test_find_unclosed_reports_strings_with_an_open_brace_pair():
    assert find_unclosed({"a": "{{ input.a", "b": "{{ input.b }}", "c": ["x {{ y }} {{"]}) == [
        "a",
        "c[0]",
    ]


@pytest.mark.parametrize(
    ("text", "single"),
    [
        ("{{ a }}", True),
        ("{{a.b[0]}}", True),
        (" {{ a }}", False),
        ("{{ a }}{{ b }}", False),
        ("x {{ a }}", False),
        ("a", False),
    ],
)
def test_is_single_reference(text, single):
    assert is_single_reference(text) is single
