import copy
import json

import pytest

from workflows.definitions import (
    content_hash,
    definition_diff,
    parse_definition,
    step_ancestors,
    step_descendants,
    topological_order,
    validate_definition,
    validate_run_input,
)
from workflows.errors import DefinitionInvalid, InputInvalid

# The contract's example, without the ssh step (its type arrives separately).
NIGHTLY_REPORT = """
slug: nightly-report
name: Nightly report
description: Builds and publishes the nightly report.
input:
  repo: {type: string, required: true}
  limit: {type: integer, default: 10}
concurrency: {key: "{{ input.repo }}", limit: 1, policy: queue}
triggers:
  - {type: schedule, cron: "0 2 * * *", input: {repo: core}}
  - {type: webhook}
steps:
  - key: fetch
    type: http
    connection: reports-api
    request: {method: GET, url: "/reports/{{ input.repo }}"}
    retry: {max_attempts: 3, backoff_seconds: 2}
    timeout_seconds: 30
  - key: count
    type: python
    action: core.echo
    args: {value: "{{ steps.fetch.output.body.count }}"}
  - key: notify
    type: http
    request: {method: POST, url: "https://example.test/hook", json: {callback: "{{ steps.agent_done.callback_url }}"}}
  - key: agent_done
    type: wait
    timeout_seconds: 7200
  - key: review
    type: approval
    assignees: {groups: [reviewers], users: []}
    instructions: "Review {{ steps.agent_done.output.pr_url }}"
    redo_to: notify
    timeout_seconds: 86400
  - key: publish
    type: python
    action: core.echo
    args: {published: true}
    needs: [review]
"""


def nightly() -> dict:
    return parse_definition(NIGHTLY_REPORT)


def problems_of(definition: dict, **kwargs) -> list[dict]:
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(definition, **kwargs)
    return caught.value.problems


def paths_of(definition: dict, **kwargs) -> list[str]:
    return [p["path"] for p in problems_of(definition, **kwargs)]


# --- parsing ----------------------------------------------------------------------------------


def test_parse_definition_reads_yaml_json_bytes_and_dicts_alike():
    from_yaml = parse_definition(NIGHTLY_REPORT)
    from_json = parse_definition(json.dumps(from_yaml))
    from_bytes = parse_definition(NIGHTLY_REPORT.encode())
    from_dict = parse_definition(from_yaml)
    assert from_yaml == from_json == from_bytes == from_dict
    assert from_dict is not from_yaml


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("slug: x\nsteps: [1, 2\nname: y\n", "line 3, column 5"),
        ("slug: [unclosed", "YAML error at line 1"),
        ("", "empty"),
        ("- a\n- b\n", "got list"),
        ("just text", "got string"),
        (b"\xff\xfe", "not UTF-8"),
        ("a: &a [*a]", "deeper than"),
    ],
)
def test_parse_definition_reports_document_problems_at_the_document(source, fragment):
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition(source)
    [problem] = caught.value.problems
    assert problem["path"] == "(document)"
    assert fragment in problem["message"]


def test_parse_definition_refuses_alias_bombs():
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    laughs += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition("\n".join(laughs))
    assert "too large" in caught.value.problems[0]["message"]


# --- a valid definition -----------------------------------------------------------------------


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
            "unknown step type 'ftp'; known: approval, http",
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
        (_set("steps.1.when", "yes"), "steps[1].when", "single reference"),
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


# --- connections ------------------------------------------------------------------------------


def _connection(name: str, kind: str):
    from connections.models import Connection

    return Connection.objects.create(name=name, kind=kind)


@pytest.mark.django_db
def test_check_connections_accepts_existing_connections_of_a_fitting_kind(
    django_assert_num_queries,
):
    _connection("reports-api", "http")
    definition = nightly()
    definition["steps"][1]["args"]["conn"] = "{{ connections.reports-api }}"
    with django_assert_num_queries(1):
        validate_definition(definition, check_connections=True)


@pytest.mark.django_db
def test_check_connections_reports_missing_ones_at_their_paths_in_one_query(
    django_assert_num_queries,
):
    definition = nightly()
    definition["steps"][1]["args"]["conn"] = "{{ connections.build-vm }}"
    with django_assert_num_queries(1):
        problems = problems_of(definition, check_connections=True)
    assert problems == [
        {"path": "steps[0].connection", "message": "no connection named 'reports-api'"},
        {"path": "steps[1].args.conn", "message": "no connection named 'build-vm'"},
    ]


@pytest.mark.django_db
def test_check_connections_reports_a_connection_of_the_wrong_kind():
    _connection("reports-api", "ssh")
    [problem] = problems_of(nightly(), check_connections=True)
    assert problem["path"] == "steps[0].connection"
    assert "is a ssh connection; a http step needs generic or http" in problem["message"]


@pytest.mark.django_db
def test_a_generic_connection_fits_an_http_step():
    _connection("reports-api", "generic")
    validate_definition(nightly(), check_connections=True)


def test_connections_are_not_looked_up_unless_asked():
    validate_definition(nightly())  # no django_db mark: a query would fail the test


# --- run input --------------------------------------------------------------------------------


@pytest.fixture
def typed_definition() -> dict:
    return validate_definition(
        {
            "slug": "typed",
            "name": "Typed",
            "input": {
                "repo": {"type": "string", "required": True},
                "limit": {"type": "integer", "default": 10},
                "ratio": {"type": "number"},
                "dry_run": {"type": "boolean", "default": False},
                "options": {"type": "object", "default": {"a": 1}},
                "tags": {"type": "array"},
            },
            "steps": [{"key": "a", "type": "wait"}],
        }
    )


def test_run_input_gets_defaults_and_every_declared_name(typed_definition):
    assert validate_run_input(typed_definition, {"repo": "core", "ratio": 2}) == {
        "repo": "core",
        "limit": 10,
        "ratio": 2,
        "dry_run": False,
        "options": {"a": 1},
        "tags": None,
    }


def test_run_input_defaults_are_copies(typed_definition):
    complete = validate_run_input(typed_definition, {"repo": "core"})
    complete["options"]["a"] = 2
    assert typed_definition["input"]["options"]["default"] == {"a": 1}


@pytest.mark.parametrize(
    ("value", "problems"),
    [
        ({}, [{"path": "input.repo", "message": "required"}]),
        ({"repo": None}, [{"path": "input.repo", "message": "required"}]),
        (
            {"repo": "x", "extra": 1},
            [
                {
                    "path": "input.extra",
                    "message": "unknown input; declared: repo, limit, ratio, dry_run, options, tags",
                }
            ],
        ),
        ({"repo": 1}, [{"path": "input.repo", "message": "must be a string, got integer"}]),
        (
            {"repo": "x", "limit": True},
            [{"path": "input.limit", "message": "must be an integer, got boolean"}],
        ),
        (
            {"repo": "x", "limit": 1.5},
            [{"path": "input.limit", "message": "must be an integer, got number"}],
        ),
        (
            {"repo": "x", "ratio": False},
            [{"path": "input.ratio", "message": "must be a number, got boolean"}],
        ),
        (
            {"repo": "x", "dry_run": "no"},
            [{"path": "input.dry_run", "message": "must be true or false, got string"}],
        ),
        (
            {"repo": "x", "options": []},
            [{"path": "input.options", "message": "must be a mapping, got list"}],
        ),
        (
            {"repo": "x", "tags": "a,b"},
            [{"path": "input.tags", "message": "must be a list, got string"}],
        ),
        (
            ["core"],
            [{"path": "input", "message": "must be a mapping of input name to value, got list"}],
        ),
    ],
)
def test_run_input_problems_are_reported_at_input_paths(typed_definition, value, problems):
    with pytest.raises(InputInvalid) as caught:
        validate_run_input(typed_definition, value)
    assert caught.value.problems == problems


def test_run_input_reports_every_problem_together(typed_definition):
    with pytest.raises(InputInvalid) as caught:
        validate_run_input(typed_definition, {"limit": "x", "nope": 1})
    assert [p["path"] for p in caught.value.problems] == ["input.nope", "input.repo", "input.limit"]


def test_no_input_is_fine_when_nothing_is_required():
    definition = validate_definition(
        {"slug": "s", "name": "S", "steps": [{"key": "a", "type": "wait"}]}
    )
    assert validate_run_input(definition, None) == {}
    assert validate_run_input(definition, {}) == {}


# --- graph, hash, diff ------------------------------------------------------------------------


def test_ancestors_descendants_and_order_follow_needs():
    definition = validate_definition(nightly())
    assert step_ancestors(definition, "review") == {"fetch", "count", "notify", "agent_done"}
    assert step_ancestors(definition, "fetch") == set()
    assert step_descendants(definition, "agent_done") == {"review", "publish"}
    assert step_descendants(definition, "publish") == set()
    assert topological_order(definition) == [
        "fetch",
        "count",
        "notify",
        "agent_done",
        "review",
        "publish",
    ]
    with pytest.raises(KeyError):
        step_ancestors(definition, "nope")


def test_topological_order_keeps_definition_order_among_ready_steps():
    definition = validate_definition(
        {
            "slug": "d",
            "name": "D",
            "steps": [
                {"key": "z", "type": "wait", "needs": ["b", "a"]},
                {"key": "b", "type": "wait", "needs": []},
                {"key": "a", "type": "wait", "needs": []},
                {"key": "c", "type": "wait", "needs": ["a"]},
            ],
        }
    )
    assert topological_order(definition) == ["b", "a", "z", "c"]


def test_content_hash_is_stable_under_key_order():
    definition = validate_definition(nightly())
    reordered = json.loads(json.dumps(definition, sort_keys=True))
    reversed_keys = {key: definition[key] for key in reversed(list(definition))}
    assert content_hash(definition) == content_hash(reordered) == content_hash(reversed_keys)
    assert len(content_hash(definition)) == 64


def test_content_hash_changes_with_content():
    definition = validate_definition(nightly())
    changed = copy.deepcopy(definition)
    changed["steps"][0]["timeout_seconds"] = 31
    assert content_hash(definition) != content_hash(changed)


def test_definition_diff_of_equal_definitions_is_empty():
    definition = validate_definition(nightly())
    assert definition_diff(definition, copy.deepcopy(definition)) == {
        "metadata": {},
        "input": {},
        "concurrency": {},
        "triggers": {},
        "steps": {"added": [], "removed": [], "changed": {}, "order": {}},
    }


def test_definition_diff_lists_what_changed():
    a = validate_definition(nightly())
    source = nightly()
    source["name"] = "Nightly report v2"
    source["input"]["limit"]["default"] = 20
    source["input"]["since"] = {"type": "string"}
    source["concurrency"]["policy"] = "skip"
    source["steps"][0]["timeout_seconds"] = 60
    del source["steps"][1]  # count
    source["steps"].append(
        {"key": "announce", "type": "python", "action": "core.echo", "needs": ["publish"]}
    )
    b = validate_definition(source)

    diff = definition_diff(a, b)

    assert diff["metadata"] == {"name": {"from": "Nightly report", "to": "Nightly report v2"}}
    assert diff["input"] == {
        "limit": {
            "from": {"type": "integer", "required": False, "default": 10, "description": ""},
            "to": {"type": "integer", "required": False, "default": 20, "description": ""},
        },
        "since": {
            "from": None,
            "to": {"type": "string", "required": False, "default": None, "description": ""},
        },
    }
    assert diff["concurrency"] == {"from": a["concurrency"], "to": b["concurrency"]}
    assert diff["triggers"] == {}
    assert diff["steps"]["added"] == ["announce"]
    assert diff["steps"]["removed"] == ["count"]
    # notify now defaults to needing fetch, since count is gone.
    assert diff["steps"]["changed"] == {
        "fetch": {"timeout_seconds": {"from": 30, "to": 60}},
        "notify": {"needs": {"from": ["count"], "to": ["fetch"]}},
    }
    assert diff["steps"]["order"] == {}
    assert json.loads(json.dumps(diff)) == diff


def test_definition_diff_notices_reordered_steps():
    a = validate_definition(
        {
            "slug": "o",
            "name": "O",
            "steps": [
                {"key": "x", "type": "wait", "needs": []},
                {"key": "y", "type": "wait", "needs": []},
            ],
        }
    )
    b = validate_definition(
        {
            "slug": "o",
            "name": "O",
            "steps": [
                {"key": "y", "type": "wait", "needs": []},
                {"key": "x", "type": "wait", "needs": []},
            ],
        }
    )
    assert definition_diff(a, b)["steps"]["order"] == {"from": ["x", "y"], "to": ["y", "x"]}
    assert definition_diff(a, b)["steps"]["changed"] == {}


def test_nul_characters_from_yaml_escapes_are_refused_with_their_path():
    from workflows.definitions import parse_definition, validate_definition
    from workflows.errors import DefinitionInvalid

    text = 'slug: nul\nname: "a\\0b"\nsteps:\n  - {key: a, type: python, action: core.echo}\n'
    with pytest.raises(DefinitionInvalid) as info:
        validate_definition(parse_definition(text))
    assert {"path": "name", "message": "text cannot contain NUL characters"} in info.value.problems
