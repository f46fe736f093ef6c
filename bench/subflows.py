"""Subflows at scale on PostgreSQL + Redis: 1,000 parent runs, each with one `flow` step.

What it does, on a throwaway PostgreSQL database it creates and drops and its own Redis db:
- migrates and starts 3 `qcluster` processes (Redis broker), as the Procfile runs them;
- releases a child flow (2 `core.echo` steps) and a parent flow (`core.echo`, a `flow` step
  calling the child with an input mapping, and a step reading the child's output);
- starts N parent runs (services.runs.run_start, in this process) and waits (bounded) for
  every parent to end;
- prints parents completed per second and the time from a `flow` step starting to its
  child's end resolving it (its `completed` event), p50/p99;
- checks that every parent completed, that every `flow` step has exactly one child run, that
  every child completed, that no child ran twice (one attempt and one `running` event per
  step), and that the parent's `flow` step completed once with its child's output; exits 1
  loudly if not.

With `--fan-out ITEMS` it first runs `--runs` parents whose `flow` step has `for_each` over
ITEMS items (`--max-parallel`, default 10): one child run per item, each resolving its
instance. It checks that every parent completed with the children's outputs in item order,
that each instance has its own child (ITEMS distinct children per step) and that every child
completed in one attempt per step; then, on the same clusters, it runs the usual one-subflow
parents, as many as there were fanned children, and prints children completed per second both
ways (the comparison is measured in the same run).

Usage: `python bench/subflows.py [--runs 1000] [--clusters 3] [--timeout 900]
[--fan-out ITEMS --max-parallel N]`. Needs
PostgreSQL (BENCH_PG_URL, an admin URL) and Redis (BENCH_SUBFLOWS_REDIS_URL, default
redis://127.0.0.1:6379/11; the db is flushed). BENCH_SUBFLOWS_DB names the database (default
bench_subflows).
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

from bench.common import cluster_environment, drop_database  # noqa: E402
from bench.throughput import (  # noqa: E402
    BenchFailure,
    percentile,
    start,
    stop,
    tail,
    wait_for_clusters,
)

PG_DB = os.environ.get("BENCH_SUBFLOWS_DB", "bench_subflows")
REDIS_URL = os.environ.get("BENCH_SUBFLOWS_REDIS_URL", "redis://127.0.0.1:6379/11")
CHILD = {
    "slug": "bench-child", "name": "Bench child",
    "input": {"n": {"type": "integer", "default": 0}},
    "steps": [
        {"key": "one", "type": "python", "action": "core.echo", "args": {"n": "{{ input.n }}"}},
        {"key": "two", "type": "python", "action": "core.echo",
         "args": {"n": "{{ steps.one.output.n }}", "done": True}},
    ],
}
PARENT = {
    "slug": "bench-parent", "name": "Bench parent",
    "input": {"n": {"type": "integer", "default": 0}},
    "steps": [
        {"key": "prepare", "type": "python", "action": "core.echo", "args": {"n": "{{ input.n }}"}},
        {"key": "call", "type": "flow", "flow": "bench-child",
         "input": {"n": "{{ steps.prepare.output.n }}"}},
        {"key": "after", "type": "python", "action": "core.echo",
         "args": {"n": "{{ steps.call.output.n }}"}},
    ],
}


PARENT_FANNED = {
    "slug": "bench-fan-parent", "name": "Bench fanned parent",
    "input": {"ns": {"type": "array", "default": []}},
    "steps": [
        {"key": "call", "type": "flow", "flow": "bench-child", "for_each": "{{ input.ns }}",
         "input": {"n": "{{ item }}"}},
        {"key": "after", "type": "python", "action": "core.echo",
         "args": {"count": "{{ steps.call.output }}"}},
    ],
}


def wait_for_parents(run_ids: list[int], timeout: float) -> None:
    from workflows.models import Run
    from workflows.states import RUN_TERMINAL

    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        open_runs = Run.objects.filter(pk__in=run_ids).exclude(status__in=RUN_TERMINAL).count()
        if open_runs == 0:
            return
        if time.monotonic() > deadline:
            raise BenchFailure(f"{open_runs} of {len(run_ids)} parents still open after "
                               f"{timeout} s")
        if time.monotonic() - last_report > 10:
            print(f"  waiting: {open_runs} parents open", file=sys.stderr)
            last_report = time.monotonic()
        time.sleep(0.25)


def check(run_ids: list[int]) -> list[float]:
    """The exactly-once checks (raises BenchFailure); returns each `flow` step's seconds from
    running to completed."""
    from django.db.models import Count, Q

    from workflows.models import Attempt, Event, Run, StepRun

    problems = []
    statuses = dict(Run.objects.filter(pk__in=run_ids).values_list("status")
                    .annotate(n=Count("id")).values_list("status", "n"))
    if statuses != {"completed": len(run_ids)}:
        problems.append(f"parent statuses {statuses}, expected all {len(run_ids)} completed")
    calls = StepRun.objects.filter(run_id__in=run_ids, key="call")
    children = Run.objects.filter(parent_step__in=calls)
    per_step = dict(children.values_list("parent_step_id").annotate(n=Count("id"))
                    .values_list("parent_step_id", "n"))
    if len(per_step) != len(run_ids) or set(per_step.values()) != {1}:
        twice = sum(1 for n in per_step.values() if n > 1)
        problems.append(f"{len(per_step)} flow steps with a child (expected {len(run_ids)}), "
                        f"{twice} with more than one")
    child_statuses = dict(children.values_list("status").annotate(n=Count("id"))
                          .values_list("status", "n"))
    if child_statuses != {"completed": len(run_ids)}:
        problems.append(f"child statuses {child_statuses}")
    child_ids = list(children.values_list("pk", flat=True))
    child_steps = StepRun.objects.filter(run_id__in=child_ids)
    if child_steps.exclude(status="completed", attempt_count=1).exists():
        problems.append("child steps not completed in exactly one attempt")
    if Attempt.objects.filter(step_run__run_id__in=child_ids).count() != child_steps.count():
        problems.append("child attempts do not match child step runs one to one")
    repeated = (Event.objects.filter(run_id__in=[*run_ids, *child_ids], step_run__isnull=False)
                .values("step_run_id")
                .annotate(running=Count("id", filter=Q(to_status="running")),
                          completed=Count("id", filter=Q(to_status="completed")))
                .exclude(running=1, completed=1).count())
    if repeated:
        problems.append(f"{repeated} step runs without exactly one running and one completed "
                        "event")
    wrong = [pk for pk, output in StepRun.objects.filter(run_id__in=run_ids, key="after")
             .values_list("run_id", "output") if not isinstance(output, dict)]
    if wrong:
        problems.append(f"{len(wrong)} parents without the child's output downstream")
    if problems:
        raise BenchFailure("subflow check failed: " + "; ".join(problems))
    times: dict[int, dict[str, float]] = {}
    for step_id, to, at in Event.objects.filter(step_run__in=calls, to_status__in=(
            "running", "completed")).values_list("step_run_id", "to_status", "at"):
        times.setdefault(step_id, {})[to] = at.timestamp()
    return [t["completed"] - t["running"] for t in times.values()]


def check_fanned(run_ids: list[int], items: int) -> None:
    """Every fanned parent completed with its children's outputs in item order, one distinct
    completed child per instance, every child step in one attempt (raises BenchFailure)."""
    from django.db.models import Count

    from workflows.models import Run, StepInstance, StepRun

    problems = []
    statuses = dict(Run.objects.filter(pk__in=run_ids).values_list("status")
                    .annotate(n=Count("id")).values_list("status", "n"))
    if statuses != {"completed": len(run_ids)}:
        problems.append(f"fanned parent statuses {statuses}")
    calls = StepRun.objects.filter(run_id__in=run_ids, key="call")
    for run_id, output in calls.values_list("run_id", "output"):
        expected = [{"n": n, "done": True} for n in range(items)]
        if output != expected:
            problems.append(f"run {run_id}: output not the children's outputs in item order")
            break
    instances = StepInstance.objects.filter(step_run__in=calls)
    child_ids = list(instances.values_list("child_run_id", flat=True))
    if None in child_ids or len(set(child_ids)) != len(run_ids) * items:
        problems.append(f"{len(set(child_ids) - {None})} distinct children for "
                        f"{len(run_ids) * items} instances")
    children = Run.objects.filter(parent_step__in=calls)
    if children.count() != len(run_ids) * items:
        problems.append(f"{children.count()} children started, expected {len(run_ids) * items}")
    if children.exclude(status="completed").exists():
        problems.append("children not completed")
    if StepRun.objects.filter(run__in=children).exclude(status="completed",
                                                        attempt_count=1).exists():
        problems.append("child steps not completed in exactly one attempt")
    if problems:
        raise BenchFailure("fanned subflow check failed: " + "; ".join(problems))


def run_fanned(args: argparse.Namespace) -> tuple[float, float]:
    """The fanned phase: returns (seconds to start the parents, seconds until all ended)."""
    from workflows.models import Flow
    from workflows.services.runs import run_start

    parent = Flow.objects.get(slug="bench-fan-parent")
    print(f"starting {args.runs} parents x {args.fan_out} fanned children ...", file=sys.stderr)
    began = time.time()
    run_ids = [run_start(flow=parent, input={"ns": list(range(args.fan_out))})[0].pk
               for _ in range(args.runs)]
    started = time.time() - began
    wait_for_parents(run_ids, args.timeout)
    ended = time.time() - began
    check_fanned(run_ids, args.fan_out)
    return started, ended


def run_bench(args: argparse.Namespace, tmp: Path) -> None:

    env = cluster_environment(database=PG_DB, redis_url=REDIS_URL, cluster="bench-subflows",
                              workers=args.q_workers)
    import django

    django.setup()
    from workflows.models import Flow
    from workflows.services.flows import flow_create, flow_promote, flow_release
    from workflows.services.runs import run_start

    fanned_parent = {**PARENT_FANNED, "steps": [
        {**PARENT_FANNED["steps"][0], "max_parallel": args.max_parallel},
        PARENT_FANNED["steps"][1]]}
    for definition in (CHILD, PARENT, fanned_parent):
        flow = flow_create(definition=definition)
        flow_promote(flow=flow, number=flow_release(flow=flow).number)
    parent = Flow.objects.get(slug="bench-parent")
    processes = []
    try:
        for index in range(args.clusters):
            log = tmp / f"qcluster-{index}.log"
            processes.append((start([sys.executable, "manage.py", "qcluster"], env, log), log))
        wait_for_clusters(args.clusters, 60)
        fanned = run_fanned(args) if args.fan_out else None
        parents = args.runs * args.fan_out if args.fan_out else args.runs
        print(f"starting {parents} parent runs ...", file=sys.stderr)
        began = time.time()
        run_ids = [run_start(flow=parent, input={"n": i})[0].pk for i in range(parents)]
        started = time.time() - began
        wait_for_parents(run_ids, args.timeout)
        ended = time.time() - began
        for process, log in processes:
            if process.poll() is not None:
                raise BenchFailure(f"a qcluster exited early:\n{tail(log)}")
    finally:
        for process, _ in processes:
            stop(process)
    waits = check(run_ids)
    print(f"\n{parents} parent runs x (2 steps + a flow step whose child has 2 steps), "
          f"{args.clusters} qclusters x {args.q_workers} workers; PostgreSQL + Redis\n")
    rows = [
        ("starting the parents took (s)", f"{started:.1f}"),
        ("all parents ended after (s)", f"{ended:.1f}"),
        ("parents completed per second", f"{parents / ended:.1f}"),
        ("step runs completed per second (parents and children)", f"{5 * parents / ended:.1f}"),
        ("flow step running -> completed p50 (ms)", f"{statistics.median(waits) * 1000:.1f}"),
        ("flow step running -> completed p99 (ms)", f"{percentile(waits, 99) * 1000:.1f}"),
    ]
    if fanned is not None:
        children = args.runs * args.fan_out
        rows += [
            (f"fanned: {args.runs} parents x {args.fan_out} children (max_parallel "
             f"{args.max_parallel}), all ended after (s)", f"{fanned[1]:.1f}"),
            ("fanned: children completed per second", f"{children / fanned[1]:.1f}"),
            ("one subflow per parent: children completed per second", f"{parents / ended:.1f}"),
        ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>8}")
    print(f"\nexactly once: {parents} parents completed, each flow step with exactly one "
          f"child, {parents} children completed, every step run in one attempt with one "
          "running event"
          + (f"; {args.runs} fanned parents completed with {args.runs * args.fan_out} "
             "distinct children, outputs in item order" if fanned else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=3)
    parser.add_argument("--q-workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--fan-out", type=int, default=0,
                        help="also run --runs parents whose flow step has for_each over this "
                             "many items, and compare")
    parser.add_argument("--max-parallel", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-subflows-") as tmp:
        try:
            run_bench(args, Path(tmp))
        except BenchFailure as exc:
            print(f"BENCH FAILED: {exc}", file=sys.stderr)
            sys.exit(1)
        finally:
            drop_database(PG_DB)


if __name__ == "__main__":
    main()
