"""validate_definition: the normalized form, and every problem at its exact path."""

import copy

import pytest

from tests.workflows.definitions.samples import nightly, paths_of, problems_of
from workflows.definitions import topological_order, validate_definition
from workflows.errors import DefinitionInvalid


def test_the_contract_example_normalizes():
    normalized = validate_definition(nightly())
    assert normalized["slug"] == "nightly-report"
    assert normalized["input"] == {
        "repo": {"type": "string", "required": True, "default": None, "description": ""},
        "limit": {"type": "integer", "required": False, "default": 10, "description": ""},
    }
    assert normalized["concurrency"] == {"key": "{{ input.repo }}", "limit": 1, "policy": "queue"}
    assert normalized["triggers"] == [
        {"type": "schedule", "cron": "0 2 * * *", "timezone": "UTC", "input": {"repo": "core"}},
        {"type": "webhook"},
    ]
    steps = {step["key"]: step for step in normalized["steps"]}
    assert steps["fetch"]["needs"] == []
    assert steps["count"]["needs"] == ["fetch"]
    assert steps["publish"]["needs"] == ["review"]
    assert steps["fetch"]["retry"] == {"max_attempts": 3, "backoff_seconds": 2, "backoff_factor": 2}
    assert steps["count"]["retry"] == {"max_attempts": 1, "backoff_seconds": 0, "backoff_factor": 2}
    assert steps["count"]["args"] == {"value": "{{ steps.fetch.output.body.count }}"}


def test_minimal_definition_gets_every_default():
    normalized = validate_definition(
        {
            "slug": "m",
            "name": "M",
            "steps": [{"key": "a", "type": "wait"}, {"key": "b", "type": "wait"}],
        }
    )
    assert normalized == {
        "slug": "m",
        "name": "M",
        "description": "",
        "input": {},
        "concurrency": None,
        "triggers": [],
        "steps": [
            {
                "key": "a",
                "type": "wait",
                "needs": [],
                "retry": {"max_attempts": 1, "backoff_seconds": 0, "backoff_factor": 2},
            },
            {
                "key": "b",
                "type": "wait",
                "needs": ["a"],
                "retry": {"max_attempts": 1, "backoff_seconds": 0, "backoff_factor": 2},
            },
        ],
    }


def test_validation_is_idempotent_and_does_not_mutate_its_input():
    definition = nightly()
    before = copy.deepcopy(definition)
    normalized = validate_definition(definition)
    assert definition == before
    assert validate_definition(normalized) == normalized


def test_explicit_empty_needs_means_no_dependency_and_a_string_is_one_need():
    definition = {
        "slug": "n",
        "name": "N",
        "steps": [
            {"key": "a", "type": "wait"},
            {"key": "b", "type": "wait", "needs": []},
            {"key": "c", "type": "wait", "needs": "a"},
        ],
    }
    steps = validate_definition(definition)["steps"]
    assert [s["needs"] for s in steps] == [[], [], ["a"]]


def test_a_step_may_need_a_step_listed_after_it():
    definition = {
        "slug": "n",
        "name": "N",
        "steps": [
            {
                "key": "late",
                "type": "python",
                "action": "core.echo",
                "needs": ["early"],
                "args": {"v": "{{ steps.early.output.x }}"},
            },
            {"key": "early", "type": "python", "action": "core.echo", "needs": []},
        ],
    }
    normalized = validate_definition(definition)
    assert topological_order(normalized) == ["early", "late"]


def test_when_may_be_a_single_reference_and_concurrency_may_be_flow_wide():
    definition = {
        "slug": "w",
        "name": "W",
        "input": {"go": {"type": "boolean", "default": True}},
        "concurrency": {"policy": "skip"},
        "steps": [{"key": "a", "type": "wait", "when": "{{ input.go }}"}],
    }
    normalized = validate_definition(definition)
    assert normalized["concurrency"] == {"key": None, "limit": 1, "policy": "skip"}


def test_a_schedule_may_name_its_timezone():
    definition = nightly()
    definition["triggers"] = [
        {"type": "schedule", "cron": "@daily", "timezone": "Europe/Paris", "input": {"repo": "x"}}
    ]
    assert validate_definition(definition)["triggers"][0]["timezone"] == "Europe/Paris"


# --- invalid definitions: one problem each, at an exact path ----------------------------------


def _set(path: str, value):
    """A mutation that sets a dotted/indexed path (e.g. "steps.1.args") in the definition."""

    def mutate(definition: dict) -> None:
        *parents, last = path.split(".")
        target = definition
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _delete(path: str):
    def mutate(definition: dict) -> None:
        *parents, last = path.split(".")
        target = definition
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        del target[last]

    return mutate


def _append_step(step: dict):
    return lambda definition: definition["steps"].append(step)


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (_set("slug", "Nightly Report"), "slug", "lowercase"),
        (_set("slug", "-x"), "slug", "lowercase"),
        (_set("slug", "x" * 101), "slug", "at most 100"),
        (_delete("slug"), "slug", "required"),
        (_delete("name"), "name", "required"),
        (_set("name", ""), "name", "non-empty"),
        (_set("description", 3), "description", "must be a string"),
        (_set("owner", "me"), "owner", "unknown field"),
        (
            _set("input.limit.default", "ten"),
            "input.limit.default",
            "must be an integer, got string",
        ),
        (
            _set("input.limit.default", True),
            "input.limit.default",
            "must be an integer, got boolean",
        ),
        (_set("input.limit.type", "int"), "input.limit.type", "unknown type 'int'"),
        (_set("input.limit.required", "yes"), "input.limit.required", "true or false"),
        (_set("input.limit.choices", [1, 2]), "input.limit.choices", "unknown field"),
        (
            _set("input.repo.default", "core"),
            "input.repo.default",
            "required input takes no default",
        ),
        (_set("input.limit", "integer"), "input.limit", "must be a mapping"),
        (_set("input.1st", {"type": "string"}), "input.1st", "input name"),
        (
            _set("concurrency.policy", "drop"),
            "concurrency.policy",
            "allow, queue, skip, cancel_running",
        ),
        (_set("concurrency.limit", 0), "concurrency.limit", "1 or more"),
        (_set("concurrency.key", "{{ steps.fetch.output.x }}"), "concurrency.key", "only input"),
        (
            _set("concurrency.key", "{{ input.nope }}"),
            "concurrency.key",
            "no declared input 'nope'",
        ),
        (_set("concurrency", "repo"), "concurrency", "must be a mapping"),
        (_set("triggers.0.cron", "61 * * * *"), "triggers[0].cron", "not a valid cron"),
        (_delete("triggers.0.cron"), "triggers[0].cron", "required"),
        (_set("triggers.0.timezone", "Mars/Olympus"), "triggers[0].timezone", "unknown time zone"),
        (
            _set("triggers.0.input", {"repo": 5}),
            "triggers[0].input.repo",
            "must be a string, got integer",
        ),
        (_set("triggers.0.input", {}), "triggers[0].input.repo", "required"),
        (
            _set("triggers.0.input", {"repo": "x", "extra": 1}),
            "triggers[0].input.extra",
            "unknown input",
        ),
        (
            _set("triggers.0.input", {"repo": "{{ input.repo }}"}),
            "triggers[0].input.repo",
            "references are not allowed",
        ),
        (_set("triggers.1", {"type": "email"}), "triggers[1].type", "manual, schedule, webhook"),
        (
            _set("triggers.1", {"type": "webhook", "secret": "x"}),
            "triggers[1].secret",
            "unknown field",
        ),
        (
            lambda d: d["triggers"].append({"type": "webhook"}),
            "triggers[2].type",
            "one webhook URL",
        ),
        (_set("steps", []), "steps", "at least one step"),
        (_delete("steps"), "steps", "required"),
        (_set("steps.1", "count"), "steps[1]", "must be a mapping"),
        (_set("steps.5.key", "Publish"), "steps[5].key", "lowercase"),
        (_delete("steps.5.key"), "steps[5].key", "required"),
        (
            _set("steps.0.type", "ftp"),
            "steps[0].type",
            "unknown step type 'ftp'; known: approval, flow, http",
        ),
        (_delete("steps.0.type"), "steps[0].type", "required"),
        (_set("steps.1.action", "core.nope"), "steps[1].action", "unknown action 'core.nope'"),
        (_set("steps.1.colour", "red"), "steps[1].colour", "unknown parameter"),
        (_set("steps.0.request.method", "FETCH"), "steps[0].request.method", "must be one of"),
        (_set("steps.1.needs", ["fetch", "nope"]), "steps[1].needs[1]", "no step 'nope'"),
        (_set("steps.1.needs", ["count"]), "steps[1].needs[0]", "cannot need itself"),
        (_set("steps.1.needs", ["fetch", "fetch"]), "steps[1].needs[1]", "listed twice"),
        (_set("steps.1.needs", "nope"), "steps[1].needs", "no step 'nope'"),
        (_set("steps.1.needs", {"fetch": True}), "steps[1].needs", "list of step keys"),
        (_set("steps.1.retry", {"max_attempts": 0}), "steps[1].retry.max_attempts", "1 to 100"),
        (_set("steps.1.retry", {"max_attempts": 101}), "steps[1].retry.max_attempts", "1 to 100"),
        (
            _set("steps.1.retry", {"backoff_seconds": -1}),
            "steps[1].retry.backoff_seconds",
            "0 or more",
        ),
        (
            _set("steps.1.retry", {"backoff_factor": 0.5}),
            "steps[1].retry.backoff_factor",
            "1 or more",
        ),
        (_set("steps.1.retry", {"jitter": True}), "steps[1].retry.jitter", "unknown field"),
        (_set("steps.1.retry", 3), "steps[1].retry", "must be a mapping"),
        (_set("steps.1.timeout_seconds", 0), "steps[1].timeout_seconds", "above 0"),
        (_set("steps.1.timeout_seconds", "1h"), "steps[1].timeout_seconds", "above 0"),
        (_set("steps.1.when", "yes"), "steps[1].when", "may read only input, steps, item"),
        (_set("steps.1.when", "input.n >"), "steps[1].when", "is not valid CEL"),
        (_set("steps.1.when", 3), "steps[1].when", "must be a CEL expression"),
        (_set("steps.1.until", "output.ok &&"), "steps[1].until.condition", "is not valid CEL"),
        (_set("steps.1.until", {"condition": "steps.a.ok"}), "steps[1].until.condition",
         "may read only output, input"),
        (_set("steps.1.until", {"condition": "output.ok", "max_times": 0}),
         "steps[1].until.max_times", "from 1 to"),
        (_set("steps.1.until", {"condition": "output.ok", "every_seconds": -1}),
         "steps[1].until.every_seconds", "0 or more"),
        (_set("steps.1.until", {"condition": "output.ok", "every": 1}),
         "steps[1].until.every", "unknown field"),
        (_set("steps.1.until", {"every_seconds": 1}), "steps[1].until.condition", "required"),
        (_set("steps.1.continue_on_error", "yes"), "steps[1].continue_on_error", "true or false"),
        (_set("steps.1.when", "{{ input.repo }} == core"), "steps[1].when", "single reference"),
        (
            _set("steps.1.args", {"value": "{{ input.nope }}"}),
            "steps[1].args.value",
            "no declared input 'nope'",
        ),
        (_set("steps.1.args", {"value": "{{ input }}"}), "steps[1].args.value", "name an input"),
        (
            _set("steps.1.args", {"value": "{{ input.repo | upper }}"}),
            "steps[1].args.value",
            "invalid reference",
        ),
        (
            _set("steps.1.args", {"value": "{{ __import__('os') }}"}),
            "steps[1].args.value",
            "invalid reference",
        ),
        (
            _set("steps.1.args", {"value": "{{ secrets.token }}"}),
            "steps[1].args.value",
            "unknown reference root 'secrets'",
        ),
        (
            _set("steps.1.args", {"value": ["{{ input.repo"]}),
            "steps[1].args.value[0]",
            "not closed",
        ),
        (
            _set("steps.1.args", {"value": "{{ steps.nope.output }}"}),
            "steps[1].args.value",
            "no step 'nope'",
        ),
        (
            _set("steps.1.args", {"value": "{{ steps.fetch }}"}),
            "steps[1].args.value",
            "steps.KEY.output",
        ),
        (
            _set("steps.1.args", {"value": "{{ steps.count.output }}"}),
            "steps[1].args.value",
            "its own output",
        ),
        (
            _set("steps.1.args", {"value": "{{ steps.fetch.callback_url }}"}),
            "steps[1].args.value",
            "only wait steps",
        ),
        (
            _set("steps.1.args", {"value": "{{ steps.agent_done.callback_url.x }}"}),
            "steps[1].args.value",
            "nothing can follow",
        ),
        (
            _set("steps.1.args", {"value": "{{ connections.api.token }}"}),
            "steps[1].args.value",
            "connections.NAME",
        ),
        (_set("steps.4.redo_to", "publish"), "steps[4].redo_to", "does not run before this one"),
        (_set("steps.4.redo_to", "nope"), "steps[4].redo_to", "no step 'nope'"),
        (
            _append_step({"key": "count", "type": "wait"}),
            "steps[6].key",
            "duplicate key 'count': steps[1]",
        ),
        (
            _set("steps.1.args", {"when": __import__("datetime").date(2024, 1, 1)}),
            "steps[1].args.when",
            "not JSON data",
        ),
        (_set("steps.1.args", {True: 1}), "steps[1].args.True", "keys must be text"),
    ],
)
def test_an_invalid_definition_reports_the_problem_at_its_path(mutate, path, fragment):
    definition = nightly()
    mutate(definition)
    problems = problems_of(definition)
    assert [p["path"] for p in problems] == [path], problems
    assert fragment in problems[0]["message"]


def test_output_of_a_step_that_is_not_an_ancestor_is_refused_with_a_reason():
    definition = nightly()
    # count runs after fetch only; publish runs much later.
    definition["steps"][1]["args"] = {"value": "{{ steps.publish.output.x }}"}
    [problem] = problems_of(definition)
    assert problem["path"] == "steps[1].args.value"
    assert "'publish' is not among the steps this one needs" in problem["message"]
    assert "add it to needs" in problem["message"]


def test_output_of_a_sibling_branch_is_not_an_ancestor():
    definition = {
        "slug": "b",
        "name": "B",
        "steps": [
            {"key": "root", "type": "wait"},
            {"key": "left", "type": "wait", "needs": ["root"]},
            {
                "key": "right",
                "type": "python",
                "action": "core.echo",
                "needs": ["root"],
                "args": {"x": "{{ steps.left.output }}", "y": "{{ steps.root.output }}"},
            },
        ],
    }
    assert paths_of(definition) == ["steps[2].args.x"]


def test_a_later_wait_steps_callback_url_may_be_handed_out_early():
    definition = nightly()
    # notify (steps[2]) runs before agent_done and hands its URL out: valid as loaded.
    assert validate_definition(definition)["steps"][2]["request"]["json"] == {
        "callback": "{{ steps.agent_done.callback_url }}"
    }


def test_a_cycle_is_reported_with_its_keys():
    definition = {
        "slug": "c",
        "name": "C",
        "steps": [
            {"key": "a", "type": "wait", "needs": ["c"]},
            {"key": "b", "type": "wait"},
            {"key": "c", "type": "wait"},
        ],
    }
    [problem] = problems_of(definition)
    assert problem == {"path": "steps[0].needs", "message": "needs form a cycle: a -> c -> b -> a"}


def test_every_problem_is_reported_together():
    definition = nightly()
    definition["slug"] = "Bad Slug"
    definition["input"]["limit"]["default"] = "ten"
    definition["triggers"][0]["cron"] = "nope"
    definition["steps"][0]["type"] = "ftp"
    definition["steps"][1]["action"] = "core.nope"
    definition["steps"][1]["needs"] = ["missing"]
    definition["steps"][5]["args"] = {"value": "{{ input.nope }}"}
    assert sorted(paths_of(definition)) == sorted(
        [
            "slug",
            "input.limit.default",
            "triggers[0].cron",
            "steps[0].type",
            "steps[1].action",
            "steps[1].needs[0]",
            "steps[5].args.value",
        ]
    )


def test_validate_definition_refuses_a_non_mapping():
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(["steps"])
    assert caught.value.problems[0]["path"] == "(document)"
