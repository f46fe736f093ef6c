"""The definition most tests start from, and helpers to read the problems of an invalid one."""

import pytest

from workflows.definitions import parse_definition, validate_definition
from workflows.errors import DefinitionInvalid

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
