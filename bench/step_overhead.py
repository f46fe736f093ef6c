"""Per-step cost of the engine through a real qcluster, beside the substrate floor.

For each configuration (SQLite + ORM broker, PostgreSQL + ORM broker, PostgreSQL + Redis):
- a plain django-q2 chain of N no-op tasks, each enqueuing the next (the floor: what one
  broker round trip per step costs on the same settings);
- a flow of N sequential `core.echo` steps, run by the engine (claim, attempt, events,
  outcome, next step queued; the next step continues in the same worker when ready);
- the same flow with inline continuation off (every step a broker round trip);
- the same flow advanced in this process with no broker at all: the engine's own cost per step
  (claim, attempt, events, outcome, next step; `core.echo` itself takes microseconds).
It prints ms per step. Usage: `python bench/step_overhead.py [--steps 40] [--repeat 3] [--configs ...]
[--prefect] [--dbos]`. Each configuration runs in a child process on a throwaway database.

With --dbos and --prefect the same N-step sequential flow of no-ops also runs through DBOS
Transact (a `@DBOS.workflow` of `@DBOS.step`s, called in process, checkpointed in a throwaway
database on the same PostgreSQL) and Prefect 3 (a `@flow` of `@task`s, ephemeral server on
SQLite under the temp dir), each installed from PyPI into a throwaway venv under the bench's
temp dir (never a project dependency), and the bench prints the ratios measured in the same run.

With --otel (needs the `[otel]` extra) it measures instead what tracing costs per step: the
engine's own cost (the flow advanced in process, no broker) with tracing off, then on, exporting
over OTLP/HTTP to a receiver on loopback in the same child, rounds interleaved (off then on,
on then off…) so drift hits both; it prints the medians and the fastest rounds, and the increase,
and the process's CPU time per step (medians; with tracing on it includes exporting the round's
spans), which a loaded machine disturbs far less than wall time.
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
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    BENCH_FIELD_KEY,
    drop_database,
    recreate_database,
)

PG_BENCH_DB = os.environ.get("BENCH_STEP_OVERHEAD_DB", "bench_step_overhead")
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

        with mock.patch("workflows.engine.dispatch.enqueue"):
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
            for _ in range(repeat):
                results[prefix].append(run_flow())
        finally:
            stop_cluster(cluster)
    # The raw chain in a cluster of its own: django-q2 saves each chain task's result (its
    # default, as a plain django-q2 user has it), and that bookkeeping, still going on in the
    # cluster's monitor after the chain has ended, slowed whatever ran next by 2 to 3x.
    cluster = start_cluster({})
    try:
        run_chain()  # warm-up
        for _ in range(repeat):
            results["chain"].append(run_chain())
    finally:
        stop_cluster(cluster)
    os.environ["WF_CONTINUE_INLINE"] = "true"
    settings.WF_CONTINUE_INLINE = True
    run_in_process()
    for _ in range(repeat):
        results["in_process"].append(run_in_process())
    Run.objects.filter(flow=flow).delete()
    return {k: round(statistics.median(v), 2) for k, v in results.items()}


def otel_child(steps: int, repeat: int) -> dict:
    """Per-step engine cost (in process) with tracing off and on; see the module doc."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import django

    for name in [k for k in os.environ if k.startswith("OTEL_")]:
        del os.environ[name]
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from unittest import mock

    from django.db import connection

    from ops import tracing
    from workflows.engine import executor
    from workflows.models import Flow, Run, StepRun
    from workflows.services.flows import flow_create, flow_promote, flow_release
    from workflows.services.runs import run_start

    received = {"requests": 0, "bytes": 0}

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received["bytes"] += len(self.rfile.read(int(self.headers["Content-Length"])))
            received["requests"] += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Flow.objects.filter(slug="bench-echo").delete()
    flow = flow_create(definition={
        "slug": "bench-echo", "name": "Bench echo",
        "steps": [{"key": f"s{i:02d}", "type": "python", "action": "core.echo",
                   "args": {"i": i}} for i in range(steps)],
    })
    flow_promote(flow=flow, number=flow_release(flow=flow).number)
    flow.refresh_from_db()

    def tracing_on(on: bool) -> None:
        if on:
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_port}"
        else:
            os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        tracing.reset()
        # A worker instruments psycopg before its first connection: reconnect, so "on" rounds
        # pay the instrumentation's wrapper on every engine statement and "off" rounds do not.
        connection.close()
        connection.ensure_connection()  # not inside the timed round
        if on:
            tracing._setup()  # a worker builds its exporter once, not once per 30 steps

    def run_in_process(on: bool) -> tuple[float, float]:
        """(wall ms, CPU ms of this process) per step. The CPU time includes, with tracing on,
        exporting the round's spans (flushed after it, not during the next round): encoding
        in the export thread is part of what tracing costs, and CPU time moves far less than
        wall time when other processes share the cores."""
        with mock.patch("workflows.engine.dispatch.enqueue"):
            run, _ = run_start(flow=flow, input={})
            first = StepRun.objects.get(run=run, key="s00")
            cpu = time.process_time()
            started = time.perf_counter()
            executor.advance(first.pk)
            elapsed = time.perf_counter() - started
            if on:
                tracing.flush()
            cpu = time.process_time() - cpu
        run.refresh_from_db()
        assert run.status == "completed", run.status
        return elapsed * 1000 / steps, cpu * 1000 / steps

    results: dict[str, list[float]] = {"off": [], "on": [], "cpu_off": [], "cpu_on": []}
    for on in (False, True):  # warm-up, both ways
        tracing_on(on)
        run_in_process(on)
    for index in range(repeat):
        for on in ((False, True) if index % 2 == 0 else (True, False)):  # neither always first
            tracing_on(on)
            wall, cpu = run_in_process(on)
            results["on" if on else "off"].append(wall)
            results["cpu_on" if on else "cpu_off"].append(cpu)
    tracing_on(False)
    server.shutdown()
    Run.objects.filter(flow=flow).delete()
    summary = {k: round(statistics.median(v), 3) for k, v in results.items()}
    summary.update({f"{k}_min": round(min(v), 3) for k, v in results.items()})
    summary["spans_received_requests"] = received["requests"]
    return summary


# --- other engines, each in its own throwaway venv ---------------------------------------------

DBOS_SCRIPT = """
import importlib.metadata, json, statistics, sys, time
from dbos import DBOS, DBOSConfig

url, steps, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
DBOS(config={"name": "bench-step-overhead", "system_database_url": url, "log_level": "ERROR"})

@DBOS.step()
def noop(i: int) -> int:
    return i

@DBOS.workflow()
def sequential(n: int) -> int:
    for i in range(n):
        noop(i)
    return n

DBOS.launch()
sequential(steps)  # warm-up
times = []
for _ in range(repeat):
    began = time.perf_counter()
    assert sequential(steps) == steps
    times.append((time.perf_counter() - began) * 1000 / steps)
DBOS.destroy()
print(json.dumps({"ms": statistics.median(times), "version": importlib.metadata.version("dbos")}))
"""

PREFECT_SCRIPT = """
import json, statistics, sys, time
import prefect
from prefect import flow, task
from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_API_URL

steps, repeat = int(sys.argv[1]), int(sys.argv[2])

@task
def noop(i: int) -> int:
    return i

@flow
def sequential(n: int) -> int:
    for i in range(n):
        noop(i)
    return n

sequential(steps)  # warm-up: starts the ephemeral server
times = []
for _ in range(repeat):
    began = time.perf_counter()
    assert sequential(steps) == steps
    times.append((time.perf_counter() - began) * 1000 / steps)
print(json.dumps({"ms": statistics.median(times), "version": prefect.__version__,
                  "server": PREFECT_API_URL.value() or "ephemeral",
                  "database": PREFECT_API_DATABASE_CONNECTION_URL.value()}))
"""


def external_python(tmp: str, name: str, package: str) -> Path:
    """A venv under the temp dir with `package` installed from PyPI; returns its python."""
    venv = Path(tmp) / f"venv-{name}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    print(f"installing {package} into {venv} ...", file=sys.stderr)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    package], check=True, timeout=1200, stdout=subprocess.DEVNULL)
    return python


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this project's settings (no DJANGO_*, DATABASE_URL, ...)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {**{k: v for k, v in os.environ.items() if k in keep}, **extra}


def run_external(python: Path, script: str, argv: list[str], env: dict[str, str],
                 tmp: str, name: str) -> dict | None:
    path = Path(tmp) / f"{name}_flow.py"
    path.write_text(script)
    out = subprocess.run([str(python), str(path), *argv], env=env, cwd=tmp, capture_output=True,
                         text=True, timeout=1800, check=False)
    if out.returncode != 0:
        print(f"{name} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_dbos(tmp: str, steps: int, repeat: int) -> dict | None:
    """DBOS Transact on a throwaway database of the same PostgreSQL."""
    database = f"{PG_BENCH_DB}_dbos"
    try:
        url = recreate_database(database).replace("postgres://", "postgresql://", 1)
    except Exception as exc:  # noqa: BLE001 - reported, DBOS is skipped
        print(f"PostgreSQL not available ({exc}); skipping DBOS", file=sys.stderr)
        return None
    try:
        python = external_python(tmp, "dbos", "dbos")
        return run_external(python, DBOS_SCRIPT, [url, str(steps), str(repeat)],
                            clean_env(), tmp, "dbos")
    finally:
        drop_database(database)


def bench_prefect(tmp: str, steps: int, repeat: int) -> dict | None:
    """Prefect 3 with its ephemeral server (SQLite under the temp dir)."""
    python = external_python(tmp, "prefect", "prefect>=3,<4")
    home = Path(tmp) / "prefect-home"
    home.mkdir()
    env = clean_env(PREFECT_HOME=str(home), PREFECT_LOGGING_LEVEL="ERROR",
                    PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    return run_external(python, PREFECT_SCRIPT, [str(steps), str(repeat)], env, tmp, "prefect")


# --- parent ------------------------------------------------------------------------------------

def prepare_pg() -> str | None:
    try:
        return recreate_database(PG_BENCH_DB)
    except Exception as exc:  # noqa: BLE001 - reported, the configuration is skipped
        print(f"PostgreSQL not available ({exc}); skipping its configurations", file=sys.stderr)
        return None


def drop_pg() -> None:
    """Drop the throwaway database, if PostgreSQL is there at all."""
    try:
        drop_database(PG_BENCH_DB)
    except Exception:  # noqa: BLE001 - nothing to clean up without PostgreSQL
        pass


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
    parser.add_argument("--prefect", action="store_true",
                        help="also run the flow through Prefect 3 (installed in a temp venv)")
    parser.add_argument("--dbos", action="store_true",
                        help="also run it through DBOS Transact on PostgreSQL (temp venv)")
    parser.add_argument("--otel", action="store_true",
                        help="measure the per-step cost of tracing (off, then on)")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child == "otel":
        print(json.dumps(otel_child(args.steps, args.repeat)))
        return
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.repeat)))
        return

    base_env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key", "Q_WORKERS": "2", "LOG_LEVEL": "ERROR",
        "FIELD_ENCRYPTION_KEYS": BENCH_FIELD_KEY,
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
                [sys.executable, __file__, "--child", "otel" if args.otel else name,
                 "--steps", str(args.steps),
                 "--repeat", str(args.repeat)],
                env=env, cwd=ROOT, capture_output=True, text=True, check=False,
            )
            if out.returncode != 0:
                print(f"{name} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if args.otel:
                print(f"{name:22} tracing off {result['off']:.3f} ms/step, on {result['on']:.3f}"
                      f" ms/step ({(result['on'] / result['off'] - 1) * 100:+.1f}%); fastest "
                      f"round off {result['off_min']:.3f}, on {result['on_min']:.3f} "
                      f"({(result['on_min'] / result['off_min'] - 1) * 100:+.1f}%); CPU "
                      f"{result['cpu_off']:.3f} / {result['cpu_on']:.3f} ms/step "
                      f"({(result['cpu_on'] / result['cpu_off'] - 1) * 100:+.1f}%, export "
                      f"included); the receiver got {result['spans_received_requests']} "
                      "export requests")
                continue
            rows.append((name, config["poll"], result))
        drop_pg()
        if args.otel:
            return
        others = {}
        if args.dbos:
            others["DBOS"] = bench_dbos(tmp, args.steps, args.repeat)
        if args.prefect:
            others["Prefect"] = bench_prefect(tmp, args.steps, args.repeat)
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
    print_comparison(rows, others, args.steps, args.repeat)


def print_comparison(rows: list, others: dict[str, dict | None], steps: int, repeat: int) -> None:
    """The other engines' ms per step and the ratios of this run's figures to them."""
    if not others:
        return
    print(f"\nOther engines, the same {steps} sequential no-op steps, median of {repeat} runs "
          "after a warm-up:")
    for name, result in others.items():
        if result is None:
            print(f"  {name}: failed (see above)")
            continue
        where = ("in process, checkpoints in PostgreSQL" if name == "DBOS" else
                 f"server {result.get('server')}, database {result.get('database')}")
        print(f"  {name} {result['version']}: {result['ms']:.2f} ms per step ({where})")
    dbos, prefect = others.get("DBOS"), others.get("Prefect")
    for name, _poll, r in rows:
        if not name.startswith("pg"):
            continue
        if dbos:
            print(f"  {name}: engine no broker / DBOS = {r['in_process'] / dbos['ms']:.2f}x "
                  f"(target 1.2x); engine end to end / DBOS = {r['flow'] / dbos['ms']:.2f}x "
                  "(target 1.5x)")
        if prefect:
            print(f"  {name}: Prefect / engine end to end = {prefect['ms'] / r['flow']:.2f}x "
                  "(the engine is that many times faster)")


if __name__ == "__main__":
    main()
