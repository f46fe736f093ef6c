"""Fixtures for API tests: users in each role, their tokens, and a JSON client."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from tests.factories import make_flow, simple_definition
from workflows.services.tokens import api_token_create
from workflows.steps.actions import action

API = "/api/v1"


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def error(self) -> dict[str, Any]:
        return self.body["error"]


class ApiClient:
    """Django's test client speaking JSON with a Bearer token."""

    def __init__(self, token: str | None = None):
        self.client = Client()
        self.token = token

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        result = dict(headers or {})
        if self.token is not None:
            result.setdefault("Authorization", f"Bearer {self.token}")
        return result

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                content_type: str = "application/json", headers: dict[str, str] | None = None,
                params: dict[str, Any] | None = None) -> Response:
        url = path if path.startswith(("/api/", "http")) else API + path
        data: Any = raw if raw is not None else (json.dumps(body) if body is not None else "")
        kwargs: dict[str, Any] = {"headers": self._headers(headers)}
        if method in ("get", "delete"):
            response = getattr(self.client, method)(url, params or {}, **kwargs)
        else:
            if params:
                from urllib.parse import urlencode

                url = f"{url}?{urlencode(params)}"
            response = getattr(self.client, method)(url, data, content_type=content_type,
                                                    **kwargs)
        content = b"".join(response.streaming_content) if response.streaming \
            else response.content
        try:
            parsed = json.loads(content) if content else None
        except ValueError:
            parsed = content
        return Response(response.status_code, parsed, dict(response.headers))

    def get(self, path: str, **params: Any) -> Response:
        return self.request("get", path, params=params)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return self.request("post", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return self.request("put", path, body, **kwargs)


def make_user(username: str, *groups: str, superuser: bool = False):
    users = get_user_model().objects
    if superuser:
        user = users.create_superuser(username=username, email=f"{username}@example.com",
                                      password="pw")
    else:
        user = users.create_user(username=username, password="pw")
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def users(db):
    return {
        "admin": make_user("admin", superuser=True),
        "builder": make_user("builder", "builders"),
        "operator": make_user("operator", "operators"),
        "reviewer": make_user("reviewer", "reviewers"),
        "support": make_user("support", "support"),
        "nobody": make_user("nobody"),
    }


@pytest.fixture
def tokens(users):
    return {name: api_token_create(user=user, name="test")[1] for name, user in users.items()}


@pytest.fixture
def as_user(tokens):
    """as_user("operator") -> an ApiClient with that user's token."""

    def make(name: str | None) -> ApiClient:
        return ApiClient(tokens[name] if name else None)

    return make


@pytest.fixture
def admin_api(as_user) -> ApiClient:
    return as_user("admin")


@pytest.fixture
def anon_api(db) -> ApiClient:
    return ApiClient(None)


@pytest.fixture
def flow(db):
    return make_flow(simple_definition("simple"))


def approval_definition(slug: str = "reviewed", **extra) -> dict:
    return simple_definition(slug, steps=[
        {"key": "build", "type": "python", "action": "core.echo", "args": {"built": True}},
        {"key": "review", "type": "approval", "assignees": {"groups": ["reviewers"]},
         "instructions": "Look at it"},
        {"key": "publish", "type": "python", "action": "core.echo", "args": {"done": True}},
    ], **extra)


def wait_definition(slug: str = "waiting", **extra) -> dict:
    return simple_definition(slug, steps=[
        {"key": "start", "type": "python", "action": "core.echo", "args": {"n": 1}},
        {"key": "agent_done", "type": "wait", "timeout_seconds": 3600},
        {"key": "finish", "type": "python", "action": "core.echo",
         "args": {"pr": "{{ steps.agent_done.output.pr_url }}"}},
    ], **extra)


@action("test.chatty")
def chatty(ctx, lines: int = 3, **_: Any) -> dict[str, Any]:
    """Writes `lines` log lines (for log tests)."""
    for number in range(int(lines)):
        ctx.log(f"line {number}\n")
    return {"lines": int(lines)}


def chatty_definition(slug: str = "chatty", lines: int = 3) -> dict:
    return simple_definition(slug, steps=[
        {"key": "talk", "type": "python", "action": "test.chatty", "args": {"lines": lines}},
    ])


def failing_definition(slug: str = "failing") -> dict:
    return simple_definition(slug, steps=[
        {"key": "first", "type": "python", "action": "core.echo", "args": {"n": 1}},
        {"key": "boom", "type": "python", "action": "core.fail", "args": {"message": "nope"}},
        {"key": "last", "type": "python", "action": "core.echo", "args": {"n": 3}},
    ])
