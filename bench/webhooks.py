"""Latency of webhook deliveries, in process: `POST /api/v1/hooks/{slug}` through Django's full
handler (middleware, django-ninja, verification, CEL filter, input mapping, the delivery log,
the run start) on a throwaway PostgreSQL database.

A GitHub-style flow (`verify: github`, `events: [pull_request]`, a `when:` condition and an
`input:` mapping) receives a 25 KB pull_request payload signed with X-Hub-Signature-256:
- started: a new delivery id each time (a run starts: 202);
- filtered: `action: closed` (the condition is false: 200 filtered);
- duplicate: a delivery id already seen (200 duplicate).
Prints p50 / p90 / max in ms of the wall-clock time of each request, the web process's CPU
time (p50), the queries each kind sent, and the machine's load average (on a shared machine the
wall-clock figures grow with the load, mostly in PostgreSQL's answers). The steps a start queues go to the configured broker (REDIS_URL, or the ORM
broker), as they would in production; no cluster runs them.

Usage (needs PostgreSQL; the database `wf_bench_webhooks` is dropped and created):
    python bench/webhooks.py [--requests 300] [--pg postgres://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BENCH_FIELD_KEY, PG_ADMIN_URL, database_release, recreate_database  # noqa: E402,I001

SLUG = "repo-events"
SECRET = "bench-github-secret-0123456789"
DATABASE = "wf_bench_webhooks"
FLOW = {
    "slug": SLUG, "name": "Repo events",
    "input": {"repo": {"type": "string", "required": True}, "pr": {"type": "integer"}},
    "triggers": [{"type": "webhook", "verify": "github", "events": ["pull_request"],
                  "when": 'body.action in ["opened", "synchronize"]',
                  "input": {"repo": "{{ webhook.body.repository.full_name }}",
                            "pr": "{{ webhook.body.number }}"}}],
    "steps": [{"key": "build", "type": "python", "action": "core.echo",
               "args": {"repo": "{{ input.repo }}"}},
              {"key": "report", "type": "python", "action": "core.echo", "args": {"ok": True}}],
}


def payload(action: str) -> bytes:
    """About 25 KB, like a GitHub pull_request delivery."""
    user = {"login": "octocat", "id": 1, "type": "User", "site_admin": False,
            **{f"{k}_url": f"https://api.github.com/users/octocat/{k}" for k in (
                "followers", "following", "gists", "starred", "subscriptions", "orgs", "repos",
                "events", "received_events")}}
    repo = {"id": 1296269, "full_name": "acme/core", "private": False, "owner": user,
            **{f"{k}_url": f"https://api.github.com/repos/acme/core/{k}" for k in (
                "forks", "keys", "collaborators", "teams", "hooks", "issue_events", "events",
                "assignees", "branches", "tags", "blobs", "git_tags", "git_refs", "trees",
                "statuses", "languages", "stargazers", "contributors", "subscribers",
                "subscription", "commits", "git_commits", "comments", "issue_comment",
                "contents", "compare", "merges", "archive", "downloads", "issues", "pulls",
                "milestones", "notifications", "labels", "releases", "deployments")}}
    body = {"action": action, "number": 42, "repository": repo, "sender": user,
            "pull_request": {"number": 42, "title": "Fix the build", "user": user,
                             "body": "x" * 4000, "head": {"repo": repo, "ref": "fix"},
                             "base": {"repo": repo, "ref": "main"},
                             "labels": [{"name": f"label-{i}"} for i in range(20)]}}
    return json.dumps(body).encode()


def measure(client, body: bytes, delivery: str | None) -> tuple[float, float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"X-GitHub-Event": "pull_request",
               "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body,
                                                           hashlib.sha256).hexdigest()}
    with CaptureQueriesContext(connection) as queries:
        started, cpu = time.perf_counter(), time.process_time()
        response = client.post(f"/api/v1/hooks/{SLUG}", body, content_type="application/json",
                               headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        cpu = (time.process_time() - cpu) * 1000
    return elapsed, cpu, response.status_code, len(queries)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--pg", default=PG_ADMIN_URL)
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = recreate_database(DATABASE, args.pg)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-secret-key")
    os.environ.setdefault("FIELD_ENCRYPTION_KEYS", BENCH_FIELD_KEY)
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ["WF_ANON_THROTTLE"] = ""  # one client address sends everything
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from workflows.services.flows import flow_create, flow_promote, flow_release
    from workflows.services.webhooks import webhook_secret_set

    try:
        call_command("migrate", "--noinput", verbosity=0)
        flow = flow_create(definition=FLOW)
        flow_promote(flow=flow, number=flow_release(flow=flow).number)
        webhook_secret_set(flow=flow, secret=SECRET, actor=None)
        client = Client()
        opened, closed = payload("opened"), payload("closed")
        print(f"payload {len(opened)} bytes; {args.requests} requests of each kind")
        for _ in range(20):  # warm up: caches, prepared statements, connections
            measure(client, opened, None)
        kinds = {
            "started": lambda i: measure(client, opened, None),
            "filtered": lambda i: measure(client, closed, None),
            "duplicate": lambda i: measure(client, opened, "dup-1"),
        }
        measure(client, opened, "dup-1")
        for name, send in kinds.items():
            times, cpus, statuses, queries = [], [], set(), set()
            for i in range(args.requests):
                elapsed, cpu, status, count = send(i)
                times.append(elapsed)
                cpus.append(cpu)
                statuses.add(status)
                queries.add(count)
            times.sort()
            print(f"{name:9} status {sorted(statuses)} queries {sorted(queries)}  "
                  f"p50 {statistics.median(times):.2f} ms  "
                  f"p90 {times[int(len(times) * 0.9)]:.2f} ms  max {times[-1]:.2f} ms  "
                  f"web CPU p50 {statistics.median(cpus):.2f} ms")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        database_release(DATABASE, args.pg)


if __name__ == "__main__":
    main()
