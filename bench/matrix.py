"""Run matrix benchmark: the flow page and its matrix fragment at 100,000 runs.

Seeds a flow of 30 steps with 100,000 runs (3,000,000 step runs) with bulk_create, then asks
the flow page and the matrix fragment (50 runs) through django.test.Client as a logged-in
superuser, and prints the median server time of several requests and the number of queries.

    python bench/matrix.py                        # a throwaway SQLite file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_matrix python bench/matrix.py

On PostgreSQL the database is dropped and created again, so its name must contain "bench".
Options: --runs N (default 100000), --steps N (default 30), --repeat N (default 15),
--keep (reuse an already seeded database of the same size).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BENCH_FIELD_KEY, recreate_postgres_database  # noqa: E402

TARGET_MS = 100
TARGET_QUERIES = 12


def configure(database_url: str | None) -> str:
    if not database_url:
        database_url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-matrix-')}/matrix.sqlite3"
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "bench-matrix-not-secret")
    os.environ.setdefault("FIELD_ENCRYPTION_KEYS", BENCH_FIELD_KEY)
    os.environ["DEBUG"] = "false"
    os.environ["ALLOWED_HOSTS"] = "testserver,localhost,127.0.0.1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    return database_url


def definition(steps: int) -> dict:
    return {
        "slug": "bench-matrix",
        "name": "Bench matrix",
        "steps": [{"key": f"step_{n:02d}", "type": "python", "action": "core.echo",
                   "args": {"n": n}} for n in range(steps)],
    }


def seed(runs: int, steps: int) -> tuple[int, float]:
    """Runs through bulk_create; their step runs through executemany with values prepared once
    per step position (the ORM's per-object work would take most of the seeding time)."""
    from datetime import timedelta

    from django.db import connection, transaction
    from django.utils import timezone

    from workflows.models import Run, StepRun
    from workflows.services.flows import flow_create, flow_promote, flow_release
    from workflows.states import RunStatus, StepStatus

    started = time.perf_counter()
    flow = flow_create(definition=definition(steps))
    version = flow_release(flow=flow)
    flow_promote(flow=flow, number=version.number)
    keys = [s["key"] for s in version.definition["steps"]]
    needs = [s["needs"] for s in version.definition["steps"]]

    fields = [f for f in StepRun._meta.concrete_fields if not f.primary_key]
    by_name = {f.name: f for f in fields}
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(StepRun._meta.db_table)} "
           f"({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")

    def prep(name: str, value):
        return by_name[name].get_db_prep_save(value, connection)

    def at(value):
        return connection.ops.adapt_datetimefield_value(value)

    constant = {f.name: prep(f.name, f.get_default()) for f in fields
                if f.name not in ("run", "updated_at")}
    per_position = []
    for position, key in enumerate(keys):
        per_position.append({
            "key": key, "type": "python", "position": position,
            "needs": prep("needs", needs[position]),
            "output": prep("output", {"n": position}),
        })
    failed_error = prep("error", {"type": "ActionFailed", "message": "bench failure"})
    no_json = prep("output", None)
    names = [f.name for f in fields]
    base = timezone.now() - timedelta(seconds=runs * 30)
    batch = 2000
    made = 0
    while made < runs:
        count = min(batch, runs - made)
        run_rows = []
        for i in range(made, made + count):
            failed = i % 17 == 0
            when = base + timedelta(seconds=i * 30)
            run_rows.append(Run(
                flow=flow, version=version, status=RunStatus.FAILED if failed
                else RunStatus.COMPLETED, trigger_kind="schedule", trigger_actor="schedule",
                input={"i": i}, created_at=when, queued_at=when, started_at=when,
                finished_at=when + timedelta(seconds=20),
            ))
        with transaction.atomic():
            created = Run.objects.bulk_create(run_rows)
            rows = []
            for run in created:
                fail_at = (run.input["i"] % steps) if run.status == RunStatus.FAILED else -1
                updated = at(run.finished_at)
                for position in range(steps):
                    values = dict(constant, **per_position[position], run=run.pk,
                                  updated_at=updated)
                    if fail_at >= 0 and position > fail_at:
                        values.update(status=StepStatus.NOT_STARTED, output=no_json)
                    else:
                        begin = run.started_at + timedelta(milliseconds=position * 600)
                        end = begin + timedelta(milliseconds=100 + (position * 37) % 500)
                        values.update(started_at=at(begin), finished_at=at(end),
                                      status=StepStatus.COMPLETED, attempt_count=1)
                        if position == fail_at:
                            values.update(status=StepStatus.FAILED, attempt_count=2,
                                          output=no_json, error=failed_error)
                    rows.append([values[name] for name in names])
            with connection.cursor() as cursor:
                cursor.executemany(sql, rows)
        made += count
        print(f"\r  seeded {made:,}/{runs:,} runs", end="", flush=True)
    print()
    with connection.cursor() as cursor:
        # What autovacuum would have done by the time a flow has this much history.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return flow.pk, time.perf_counter() - started


def measure(client, url: str, repeat: int) -> tuple[float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):
        client.get(url)  # warm caches and connections
    times = []
    status = 0
    for _ in range(repeat):
        begin = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - begin) * 1000)
        status = response.status_code
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return statistics.median(times), len(queries), status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    url = configure(os.environ.get("DATABASE_URL"))
    if url.startswith("postgres") and not args.keep:
        recreate_postgres_database(url)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from workflows.models import Flow, Run

    call_command("migrate", verbosity=0)
    flow = Flow.objects.filter(slug="bench-matrix").first()
    if flow is None or not args.keep or Run.objects.filter(flow=flow).count() != args.runs:
        print(f"Seeding {args.runs:,} runs of {args.steps} steps on {connection.vendor} ...")
        flow_id, seconds = seed(args.runs, args.steps)
        print(f"  seeded in {seconds:.0f} s")
    else:
        flow_id = flow.pk
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first() or \
        user_model.objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client()
    client.force_login(user)
    page = reverse("admin:workflows_flow_change", args=[flow_id])
    fragment = reverse("admin:workflows_flow_matrix", args=[flow_id])
    middle = Run.objects.filter(flow_id=flow_id).order_by("id").values_list(
        "id", flat=True)[args.runs // 2]
    cases = [
        ("flow page (newest 50 runs)", page),
        ("matrix fragment (newest 50 runs)", fragment),
        ("matrix fragment (50 runs, before=middle)", f"{fragment}?before={middle}"),
        ("matrix fragment (failed only)", f"{fragment}?status=failed"),
    ]
    print(f"\n{connection.vendor}: {args.runs:,} runs x {args.steps} steps, median of "
          f"{args.repeat} requests (django.test.Client, logged-in superuser)")
    print(f"{'request':<44} {'median ms':>10} {'queries':>8} {'status':>7}")
    ok = True
    for label, target in cases:
        median, queries, status = measure(client, target, args.repeat)
        ok = ok and median < TARGET_MS and queries < TARGET_QUERIES and status in (200, 286)
        print(f"{label:<44} {median:>10.1f} {queries:>8} {status:>7}")
    print(f"\ntarget: under {TARGET_MS} ms and under {TARGET_QUERIES} queries: "
          f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
