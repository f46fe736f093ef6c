"""Per-step cost of the engine through a real qcluster, beside the substrate floor.

For each configuration (SQLite + ORM broker, PostgreSQL + ORM broker, PostgreSQL + Redis):
- a plain django-q2 chain of N no-op tasks, each enqueuing the next (the floor: what one
  broker round trip per step costs on the same settings);
- a flow of N sequential `core.echo` steps, run by the engine (claim, attempt, events,
  outcome, next step queued; the next step continues in the same worker when ready);
- the same flow with inline continuation off (every step a broker round trip);
- the same flow advanced in this process with no broker at all: the engine's own cost per step
  (claim, attempt, events, outcome, next step; `core.echo` itself takes microseconds).
It prints ms per step. Usage: `python bench/step_overhead.py [--steps 40] [--repeat 3] [--configs ...]`.
Each configuration runs in a child process on a throwaway database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_BENCH_DB = "bench_step_overhead"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

CONFIGS = {
    "sqlite-orm": {"db": "sqlite", "redis": False, "poll": "0.2"},
    "sqlite-orm-fastpoll": {"db": "sqlite", "redis": False, "poll": "0.01"},
    "pg-orm": {"db": "pg", "redis": False, "poll": "0.01"},
    "pg-redis": {"db": "pg", "redis": True, "poll": "0.01"},
}


def chain_link(index: int, total: int, marker: str) -> None:
    """A no-op task that enqueues the next one; the last writes the time it ran."""
    if index + 1 < total:
        from django_q.tasks import async_task

        async_task("bench.step_overhead.chain_link", index + 1, total, marker)
    else:
        Path(marker).write_text(repr(time.time()))


# --- child: one configuration ------------------------------------------------------------------

def child(config: str, steps: int, repeat: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    from workflows.models import Flow, Run
    from workflows.services.flows import flow_create, flow_promote, flow_release
    from workflows.services.runs import run_start

    get_broker().purge_queue()
    Flow.objects.filter(slug="bench-echo").delete()
    flow = flow_create(definition={
        "slug": "bench-echo", "name": "Bench echo",
        "steps": [{"key": f"s{i:02d}", "type": "python", "action": "core.echo",
                   "args": {"i": i}} for i in range(steps)],
    })
    flow_promote(flow=flow, number=flow_release(flow=flow).number)
    flow.refresh_from_db()

    def start_cluster(extra: dict[str, str]) -> subprocess.Popen:
        env = {**os.environ, **extra}
        return subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def stop_cluster(process: subprocess.Popen) -> None:
        import signal

        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def run_flow() -> float:
        run, _ = run_start(flow=flow, input={})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.status in ("completed", "failed", "canceled"):
                break
            time.sleep(0.05)
        assert run.status == "completed", run.status
        return (run.finished_at - run.created_at).total_seconds() * 1000 / steps

    def run_in_process() -> float:
        from unittest import mock

        from workflows.engine import executor
        from workflows.models import StepRun

        with mock.patch("workflows.engine.progress.enqueue"):
            run, _ = run_start(flow=flow, input={})
            first = StepRun.objects.get(run=run, key="s00")
            started = time.perf_counter()
            executor.advance(first.pk)
            elapsed = time.perf_counter() - started
        run.refresh_from_db()
        assert run.status == "completed", run.status
        return elapsed * 1000 / steps

    def run_chain() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            marker = Path(tmp) / "done"
            start = time.time()
            async_task("bench.step_overhead.chain_link", 0, steps, str(marker))
            deadline = time.monotonic() + 300
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            return (float(marker.read_text()) - start) * 1000 / steps

    results: dict[str, list[float]] = {"chain": [], "flow": [], "flow_no_inline": [],
                                       "in_process": []}
    for inline, prefix in (("true", "flow"), ("false", "flow_no_inline")):
        os.environ["WF_CONTINUE_INLINE"] = inline
        from django.conf import settings

        settings.WF_CONTINUE_INLINE = inline == "true"
        cluster = start_cluster({"WF_CONTINUE_INLINE": inline})
        try:
            run_flow()  # warm-up: workers up, imports done
            if prefix == "flow":
                run_chain()
                for _ in range(repeat):
                    results["chain"].append(run_chain())
            for _ in range(repeat):
                results[prefix].append(run_flow())
        finally:
            stop_cluster(cluster)
    os.environ["WF_CONTINUE_INLINE"] = "true"
    settings.WF_CONTINUE_INLINE = True
    run_in_process()
    for _ in range(repeat):
        results["in_process"].append(run_in_process())
    Run.objects.filter(flow=flow).delete()
    return {k: round(statistics.median(v), 2) for k, v in results.items()}


# --- parent ------------------------------------------------------------------------------------

def prepare_pg() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_BENCH_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {PG_BENCH_DB}")
    except Exception as exc:  # noqa: BLE001 - reported, the configuration is skipped
        print(f"PostgreSQL not available ({exc}); skipping its configurations", file=sys.stderr)
        return None
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_BENCH_DB}"


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL).ping())
    except Exception:  # noqa: BLE001
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--configs", default="sqlite-orm,sqlite-orm-fastpoll,pg-orm,pg-redis")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.repeat)))
        return

    base_env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key", "Q_WORKERS": "2", "LOG_LEVEL": "ERROR",
        "FIELD_ENCRYPTION_KEYS": "wimMobVfIg8au0QtcJmwLGB6xjrfz7UEUNpyIIVIGeU=",
        "PYTHONPATH": str(ROOT),
    }
    base_env.pop("REDIS_URL", None)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs.split(","):
            config = CONFIGS[name]
            env = dict(base_env, Q_POLL=config["poll"])
            if config["db"] == "sqlite":
                env["DATABASE_URL"] = f"sqlite:///{tmp}/{name}.sqlite3"
            else:
                pg_url = prepare_pg()  # a fresh database for each configuration
                if pg_url is None:
                    continue
                env["DATABASE_URL"] = pg_url
            if config["redis"]:
                if not redis_available():
                    print(f"Redis not available; skipping {name}", file=sys.stderr)
                    continue
                env["REDIS_URL"] = REDIS_URL
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, "--steps", str(args.steps),
                 "--repeat", str(args.repeat)],
                env=env, cwd=ROOT, capture_output=True, text=True, check=False,
            )
            if out.returncode != 0:
                print(f"{name} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((name, config["poll"], result))
    print(f"\n{args.steps} sequential steps, median of {args.repeat} runs, ms per step\n")
    header = (f"{'configuration':22} {'poll':>5} {'raw chain':>10} {'engine':>8} "
              f"{'no inline':>10} {'no broker':>10} {'engine/chain':>13}")
    print(header)
    print("-" * len(header))
    for name, poll, r in rows:
        print(f"{name:22} {poll:>5} {r['chain']:>10.2f} {r['flow']:>8.2f} "
              f"{r['flow_no_inline']:>10.2f} {r['in_process']:>10.2f} "
              f"{r['flow'] / r['chain']:>13.3f}")
    print("\nraw chain: django-q2 tasks each enqueuing the next; engine: the flow through a "
          "qcluster;\nno inline: every step through the broker; no broker: the engine's own "
          "cost, in process.")


if __name__ == "__main__":
    main()
