"""Fixtures for the admin pages: users in each role, and flows with runs made through the
services (steps run in-process with `drain`)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from tests.factories import drain, make_flow
from workflows.models import Run
from workflows.services.runs import run_start

ROLES = ("builders", "operators", "reviewers", "support")


def make_user(username: str, *groups: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username,
                                    is_staff=True, is_superuser=superuser)
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def users(db) -> dict[str, User]:
    """One staff user per role (named after it), plus `nobody` (staff, no group)."""
    made = {role: make_user(role.rstrip("s"), role) for role in ROLES}
    made["nobody"] = make_user("nobody")
    return made


@pytest.fixture
def clients(users) -> dict[str, Client]:
    return {role: login(user) for role, user in users.items()}


def retry_definition(slug: str = "retrying") -> dict:
    """fetch (echo) then flaky (fails twice: two attempts) then report."""
    return {
        "slug": slug,
        "name": slug.title(),
        "input": {"topic": {"type": "string", "default": "weekly"}},
        "steps": [
            {"key": "fetch", "type": "python", "action": "core.echo",
             "args": {"topic": "{{ input.topic }}"}},
            {"key": "flaky", "type": "python", "action": "core.fail",
             "args": {"message": "upstream said no"},
             "retry": {"max_attempts": 2, "backoff_seconds": 0}},
            {"key": "report", "type": "python", "action": "core.echo", "args": {"done": True}},
        ],
    }


def echo_definition(slug: str = "echoes", keys: tuple[str, ...] = ("first", "second")) -> dict:
    return {
        "slug": slug,
        "name": slug.title(),
        "steps": [{"key": k, "type": "python", "action": "core.echo", "args": {"k": k}}
                  for k in keys],
    }


def approval_definition(slug: str = "reviewed") -> dict:
    return {
        "slug": slug,
        "name": slug.title(),
        "input": {"topic": {"type": "string", "default": "q3 report"}},
        "steps": [
            {"key": "prepare", "type": "python", "action": "core.echo",
             "args": {"topic": "{{ input.topic }}"}},
            {"key": "review", "type": "approval", "assignees": {"groups": ["reviewers"]},
             "instructions": "Approve publishing {{ steps.prepare.output.topic }}"},
            {"key": "publish", "type": "python", "action": "core.echo",
             "args": {"published": True}},
        ],
    }


def start(flow, **kwargs) -> Run:
    run, _ = run_start(flow=flow, **kwargs)
    drain()
    run.refresh_from_db()
    return run


@pytest.fixture
def failed_run(db) -> Run:
    flow = make_flow(retry_definition())
    return start(flow)


@pytest.fixture
def completed_run(db) -> Run:
    flow = make_flow(echo_definition())
    return start(flow)


@pytest.fixture
def waiting_run(db) -> Run:
    """A run stopped at its approval step (pending approval for the reviewers group)."""
    flow = make_flow(approval_definition())
    return start(flow)
