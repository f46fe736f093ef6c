"""CEL conditions: compile errors name the problem, evaluation errors are reasons, work is
bounded."""

import pytest

from workflows.conditions import (
    MAX_LENGTH,
    ConditionFailed,
    ConditionInvalid,
    condition_compile,
    condition_evaluate,
)

VALUES = {"body": {"action": "opened", "pull_request": {"labels": [{"name": "ci"}]}},
          "headers": {"x-github-event": "pull_request"}, "event": "pull_request"}


@pytest.mark.parametrize("source, expected", [
    ('body.action in ["opened", "synchronize"]', True),
    ('event == "push"', False),
    ('headers["x-github-event"] == event', True),
    ('body.pull_request.labels.exists(l, l.name == "ci")', True),
    ("has(body.missing)", False),
])
def test_a_condition_reads_only_the_values_given(source, expected):
    assert condition_evaluate(condition_compile(source), VALUES) is expected


@pytest.mark.parametrize("source, message", [
    ("body.action ==", "not valid CEL"),
    ("", "must be a CEL expression"),
    (None, "must be a CEL expression"),
    ("x" * (MAX_LENGTH + 1), "characters long"),
    ("body.a.all(x, body.a.all(y, body.a.all(z, true)))", "3 deep"),
    (" + ".join(["1"] * 30), "29 '[+]' operators"),
])
def test_a_bad_condition_is_refused_at_compile_time(source, message):
    with pytest.raises(ConditionInvalid, match=message):
        condition_compile(source)


def test_a_plus_inside_a_string_is_not_counted():
    assert condition_evaluate(condition_compile('"' + "+" * 40 + '" != ""'), {})


@pytest.mark.parametrize("source, reason", [
    ("body.missing == 1", "KeyError"),
    ("body.action", "not true or false"),
    ('size(body) > "x"', "No such overload"),
])
def test_an_evaluation_error_is_a_reason_not_an_exception(source, reason):
    with pytest.raises(ConditionFailed, match=reason):
        condition_evaluate(condition_compile(source), VALUES)


def test_nested_comprehensions_over_a_large_list_are_not_evaluated():
    nested = condition_compile("body.a.exists(x, body.a.exists(y, x == y + 1))")
    assert condition_evaluate(nested, {"body": {"a": [1, 2, 3]}})
    with pytest.raises(ConditionFailed, match="more than 1000000 iterations"):
        condition_evaluate(nested, {"body": {"a": list(range(2000))}})
