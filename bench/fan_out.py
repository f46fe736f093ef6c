"""for_each at 10,000 items on PostgreSQL + Redis with 3 qclusters (docs/performance.md).

What it does, on a throwaway PostgreSQL database it creates and drops and its own Redis db:
- migrates, starts N `qcluster` processes (Redis broker, `nice -n 10` as the Procfile runs
  them) and waits until they report;
- creates, releases and promotes a flow of one `core.echo` step with `for_each` over the run's
  input (`max_parallel`, default 30) and starts one run of `--items` (10,000) items;
- prints instances completed per second (from the step's start to its end), and the resident
  memory (VmRSS) of every qcluster process before the run and after it (the growth per
  process, largest first);
- checks exactly once: the run completed, every instance completed in one attempt, with one
  `instance_running` and one `instance_completed` event, and the step's output lists the
  10,000 outputs in item order; exits 1 loudly if not;
- then times, in this process through Django's test client (so no web server's own overhead
  is counted), the run's document (`GET /api/v1/runs/{id}`), its step's document, a page of
  50 instances (and one filtered by status), the admin run page and the flow page, each the
  median of 20 requests, with the number of queries each made.

Usage: `python bench/fan_out.py [--items 10000] [--parallel 30] [--clusters 3] [--q-workers 2]
[--timeout 900]`. Needs PostgreSQL (BENCH_PG_URL, an admin URL) and Redis
(BENCH_FAN_OUT_REDIS_URL, default redis://127.0.0.1:6379/12; the db is flushed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import PG_ADMIN_URL, bench_run, cluster_environment  # noqa: E402
from bench.throughput import BenchFailure, start, stop, tail, wait_for_clusters  # noqa: E402

PG_DB = os.environ.get("BENCH_FAN_OUT_DB", "bench_fan_out")
REDIS_URL = os.environ.get("BENCH_FAN_OUT_REDIS_URL", "redis://127.0.0.1:6379/12")
SLUG = "bench-for-each"


def flow(parallel: int) -> dict:
    return {"slug": SLUG, "name": "Bench for_each",
            "input": {"items": {"type": "array", "default": []}},
            "steps": [{"key": "each", "type": "python", "action": "core.echo",
                       "for_each": "{{ input.items }}", "max_parallel": parallel,
                       "args": {"n": "{{ item }}", "at": "{{ item_index }}"}}]}


def rss_by_pid(pgids: list[int]) -> dict[int, int]:
    """VmRSS in kB of every live process of these process groups."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            pgid = int(stat.rsplit(")", 1)[1].split()[2])
            if pgid not in pgids:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[int(entry.name)] = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return out


def timed(client, path: str, repeat: int = 20) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    queries = 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - began)
        if response.status_code != 200:
            raise BenchFailure(f"GET {path}: {response.status_code}")
        queries = len(captured)
    return statistics.median(times) * 1000, queries


def check_exactly_once(run_id: int, items: int) -> None:
    from django.db.models import Count, Q

    from workflows.models import Event, Run, StepInstance, StepRun

    run = Run.objects.get(pk=run_id)
    step = StepRun.objects.get(run=run, key="each")
    problems = []
    if run.status != "completed":
        problems.append(f"the run is {run.status}: {run.error}")
    rows = StepInstance.objects.filter(step_run=step)
    if rows.count() != items:
        problems.append(f"{rows.count()} instances, expected {items}")
    bad = rows.exclude(status="completed", attempt_count=1)
    if bad.exists():
        from workflows.models import Attempt

        sample = [(i.index, i.status, i.attempt_count, [
            (a.number, a.status, (a.error or {}).get("type"), a.worker, str(a.started_at))
            for a in Attempt.objects.filter(instance=i).order_by("number")])
            for i in bad.order_by("index")[:3]]
        problems.append(f"{bad.count()} instances not completed in exactly one attempt "
                        f"(index, status, attempts, [(number, status, error, worker, "
                        f"started)]: {sample})")
    repeated = (Event.objects.filter(instance__step_run=step).values("instance_id")
                .annotate(r=Count("id", filter=Q(kind="instance_running")),
                          c=Count("id", filter=Q(kind="instance_completed")))
                .exclude(r=1, c=1).count())
    if repeated:
        problems.append(f"{repeated} instances without one running and one completed event")
    output = step.output
    if isinstance(output, dict) and "$resource" in output:
        from resources.payloads import value_load  # a large output is kept as a resource

        output = value_load(output)
    if not isinstance(output, list) or [o["at"] for o in output] != list(range(items)):
        problems.append("the step's output is not the instances' outputs in item order")
    if problems:
        raise BenchFailure("exactly-once check failed: " + "; ".join(problems))


def tenths(step) -> list[tuple[float, float]]:
    """(instances completed per second, mean batch size) in each tenth of the instances, in the
    order they completed: a rate that falls from one tenth to the next means the cost of an
    instance grows with the fan-out's progress. A batch is the attempts one worker started at
    the same instant (one claim)."""
    from workflows.models import Attempt

    rows = list(Attempt.objects.filter(instance__step_run=step).order_by("finished_at")
                .values_list("finished_at", "worker", "started_at"))
    out = []
    size = max(1, len(rows) // 10)
    previous = step.started_at
    for first in range(0, size * 10, size):
        part = rows[first:first + size]
        if not part:
            break
        seconds = max((part[-1][0] - previous).total_seconds(), 1e-6)
        previous = part[-1][0]
        batches = len({(worker, started) for _, worker, started in part})
        out.append((len(part) / seconds, len(part) / batches))
    return out


def run_bench(args: argparse.Namespace, tmp: Path) -> None:

    env = cluster_environment(database=PG_DB, redis_url=REDIS_URL, cluster="bench-fan-out",
                              workers=args.q_workers, allowed_hosts="127.0.0.1,testserver")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from workflows.models import Run, StepRun
    from workflows.services.flows import flow_create, flow_promote, flow_release
    from workflows.services.runs import run_start

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw")
    made = flow_create(definition=flow(args.parallel))
    flow_promote(flow=made, number=flow_release(flow=made).number)
    made.refresh_from_db()
    connection.close()
    processes: list[tuple[subprocess.Popen, Path]] = []
    try:
        for index in range(args.clusters):
            log = tmp / f"qcluster-{index}.log"
            processes.append((start(["nice", "-n", "10", sys.executable, "manage.py",
                                     "qcluster"], env, log), log))
        wait_for_clusters(args.clusters, 60)
        time.sleep(2)  # the workers have imported everything they import at start
        pgids = [p.pid for p, _ in processes]
        rss_before = rss_by_pid(pgids)
        print(f"one run of {args.items:,} items, max_parallel {args.parallel} ...",
              file=sys.stderr)
        run, _ = run_start(flow=made, input={"items": list(range(args.items))})
        deadline = time.monotonic() + args.timeout
        while Run.objects.filter(pk=run.pk).values_list("status", flat=True)[0] not in (
                "completed", "failed", "canceled"):
            if time.monotonic() > deadline:
                raise BenchFailure(f"the run did not end within {args.timeout} s")
            for process, log in processes:
                if process.poll() is not None:
                    raise BenchFailure(f"a qcluster exited:\n{tail(log)}")
            time.sleep(0.5)
        rss_after = rss_by_pid(pgids)
    finally:
        for process, _ in processes:
            stop(process)
    check_exactly_once(run.pk, args.items)
    step = StepRun.objects.get(run=run, key="each")
    seconds = (step.finished_at - step.started_at).total_seconds()
    growth = sorted(((rss_after[pid] - rss_before[pid]) / 1024, pid)
                    for pid in rss_after if pid in rss_before)[::-1]
    print(f"\n{args.items:,} instances of core.echo, max_parallel {args.parallel}, "
          f"{args.clusters} qclusters x {args.q_workers} workers; PostgreSQL + Redis\n")
    print(f"step ran for (s)                      {seconds:>9.1f}")
    print(f"instances completed per second        {args.items / seconds:>9.1f}")
    print("RSS growth per qcluster process (MB), largest first: "
          + ", ".join(f"{mb:.1f}" for mb, _ in growth))
    print(f"RSS after, largest (MB)               "
          f"{max(rss_after.values()) / 1024 if rss_after else 0:>9.1f}")
    profile = tenths(step)
    print("instances/s in each tenth, in order:  "
          + ", ".join(f"{rate:.0f}" for rate, _ in profile))
    print("mean batch size in each tenth:        "
          + ", ".join(f"{size:.1f}" for _, size in profile))

    client = Client()
    client.force_login(user)

    print("\npage                                   median ms  queries")
    for name, path in (
        ("run document (API)", f"/api/v1/runs/{run.pk}"),
        ("step document (API)", f"/api/v1/runs/{run.pk}/steps/each"),
        ("instances page of 50 (API)", f"/api/v1/runs/{run.pk}/steps/each/instances?limit=50"),
        ("instances page of 50, status=completed",
         f"/api/v1/runs/{run.pk}/steps/each/instances?limit=50&status=completed"),
        ("admin run page", f"/admin/workflows/run/{run.pk}/change/"),
        ("admin flow page", f"/admin/workflows/flow/{made.pk}/change/"),
    ):
        ms, queries = timed(client, path)
        print(f"{name:<40} {ms:>8.1f} {queries:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--parallel", type=int, default=30)
    parser.add_argument("--clusters", type=int, default=3)
    parser.add_argument("--q-workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    try:
        import psycopg
        import redis

        psycopg.connect(PG_ADMIN_URL, connect_timeout=5).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except Exception as exc:  # noqa: BLE001 - reported, like the other benches
        print(f"skipped: needs PostgreSQL ({PG_ADMIN_URL}) and Redis ({REDIS_URL}): {exc}",
              file=sys.stderr)
        return
    bench_run(run_bench, args, prefix="bench-fan-out-", database=PG_DB, redis_url=REDIS_URL,
              failure=BenchFailure)


if __name__ == "__main__":
    main()
