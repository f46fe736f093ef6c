"""Web CPU per run start, in process: `POST /api/v1/flows/{slug}/runs` through Django's full
handler (middleware, django-ninja, the service, the JSON answer) with a Bearer token.

No broker and no server: the steps a start queues are not enqueued (`engine.dispatch.enqueue`
is replaced by a no-op), so what is measured is the web side only. Prints the CPU ms per start
(time.process_time of this process, which includes the database driver but not the database
server), the part spent inside `run_start` (the service and the engine) and the rest (Django,
middleware, auth, permissions, ninja, the answer). `--profile FILE` writes a cProfile of the
measured starts; `--operator` starts as a member of the operators group instead of a superuser.

Usage (a database of your own, or a throwaway SQLite file without DATABASE_URL; it is
migrated, and a flow, a user and a token are created once):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/wf_web SECRET_KEY=x \
    FIELD_ENCRYPTION_KEYS=<a Fernet key> DEBUG=false LOG_LEVEL=ERROR \
    python bench/start_cpu.py [--runs 300] [--repeat 3] [--operator] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BENCH_FIELD_KEY  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
# Runnable as is (`make bench`): bench keys, and without DATABASE_URL a throwaway SQLite file.
os.environ.setdefault("SECRET_KEY", "bench-secret-key")
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", BENCH_FIELD_KEY)
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("LOG_LEVEL", "ERROR")
if not os.environ.get("DATABASE_URL"):
    import tempfile

    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='start-cpu-')}/db.sqlite3"

# The 6-step fan-out/fan-in flow of bench/throughput.py.
from bench.throughput import FLOW, SLUG  # noqa: E402


def setup(operator: bool) -> str:
    """Migrate, then (once) the flow, released and live, and a user with a fresh token."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", "--noinput", verbosity=0)
    from django.contrib.auth.models import Group, User

    from workflows.models import Flow
    from workflows.services.flows import flow_create, flow_promote, flow_release
    from workflows.services.tokens import api_token_create

    admin, _ = User.objects.get_or_create(username="bench-admin",
                                          defaults={"is_superuser": True, "is_staff": True})
    if not Flow.objects.filter(slug=SLUG).exists():
        flow = flow_create(definition=FLOW, actor=admin)
        version = flow_release(flow=flow, actor=admin, notes="")
        flow_promote(flow=Flow.objects.get(pk=flow.pk), number=version.number, actor=admin)
    if operator:
        user, _ = User.objects.get_or_create(username="bench-operator")
        user.groups.add(Group.objects.get(name="operators"))
    else:
        user = admin
    return api_token_create(user=user, name="start_cpu bench")[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--operator", action="store_true")
    parser.add_argument("--profile", default="")
    parser.add_argument("--broker", action="store_true",
                        help="keep enqueueing the queued steps (REDIS_URL or the ORM broker)")
    args = parser.parse_args()

    token = setup(args.operator)
    from django.test import Client

    from workflows.api import flows as flows_api
    from workflows.engine import dispatch

    if not args.broker:
        dispatch.enqueue = lambda step_run_ids: None  # the web side only: no broker
    inside = [0.0]
    real_run_start = flows_api.run_start

    def timed_run_start(**kwargs):
        began = time.process_time()
        try:
            return real_run_start(**kwargs)
        finally:
            inside[0] += time.process_time() - began

    flows_api.run_start = timed_run_start
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    path = f"/api/v1/flows/{SLUG}/runs"
    body = json.dumps({"input": {}})

    def start() -> None:
        response = client.post(path, body, content_type="application/json")
        if response.status_code != 201:
            raise SystemExit(f"start answered {response.status_code}: {response.content[:500]}")

    for _ in range(args.warmup):
        start()
    totals, services = [], []
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    for _ in range(args.repeat):
        inside[0] = 0.0
        if profiler:
            profiler.enable()
        began = time.process_time()
        for _ in range(args.runs):
            start()
        spent = time.process_time() - began
        if profiler:
            profiler.disable()
        totals.append(spent * 1000 / args.runs)
        services.append(inside[0] * 1000 / args.runs)
    if profiler:
        profiler.dump_stats(args.profile)
    # The median of the repeats; on a busy machine the minimum is the steadier figure.
    total, service = statistics.median(totals), statistics.median(services)
    print(json.dumps({
        "runs": args.runs, "repeat": args.repeat, "user": "operator" if args.operator else
        "superuser", "cpu_ms_per_start": round(total, 2), "run_start_ms": round(service, 2),
        "rest_ms": round(total - service, 2),
        "min_cpu_ms_per_start": round(min(totals), 2),
        "min_rest_ms": round(min(t - s for t, s in zip(totals, services, strict=True)), 2),
        "each_repeat": [round(t, 2) for t in totals],
    }))


if __name__ == "__main__":
    main()
