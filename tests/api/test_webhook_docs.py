"""docs/webhooks.md's GitHub walkthrough works as written: its flow is valid, GitHub's ping is
filtered and a pull request starts a run with the mapped input."""

import hashlib
import hmac
import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from tests.factories import drain
from workflows.models import Run

pytestmark = pytest.mark.django_db

DOC = Path(settings.BASE_DIR) / "docs" / "webhooks.md"


def github_flow() -> dict:
    section = DOC.read_text().split("## GitHub", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)
    return yaml.safe_load(textwrap.dedent(block))


def test_the_github_walkthrough_rebuilds_the_repo_event_example(as_user, anon_api):
    builder, operator = as_user("builder"), as_user("operator")
    assert builder.post("/flows", {"definition": github_flow()}).status == 201
    assert as_user("admin").post("/flows/repo-events/releases").status == 201
    assert as_user("admin").post("/flows/repo-events/releases/1/promote").status == 200
    secret = "0f" * 32
    assert operator.put("/flows/repo-events/webhook-secret", {"secret": secret}).status == 200

    def send(event, payload, delivery):
        body = json.dumps(payload).encode()
        return anon_api.post("/hooks/repo-events", raw=body, headers={
            "X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body,
                                                        hashlib.sha256).hexdigest()})

    ping = send("ping", {"zen": "Design for failure.", "hook_id": 1}, "d-ping")
    assert ping.status == 200 and ping.body["outcome"] == "filtered"
    opened = send("pull_request", {"action": "opened", "number": 42,
                                   "pull_request": {"title": "Fix the build"},
                                   "repository": {"full_name": "acme/core"}}, "d-42")
    assert opened.status == 202, opened.body
    run = Run.objects.get(pk=opened.body["id"])
    assert run.input == {"repo": "acme/core", "pr": 42, "title": "Fix the build"}
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
