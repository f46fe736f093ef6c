"""A remote agent's heartbeat, in process, on PostgreSQL: what one heartbeat costs the platform.

On a throwaway PostgreSQL database (BENCH_AGENTS_DB, default bench_agents; BENCH_PG_URL the
admin URL) it migrates, starts R runs of a one-wait flow (heartbeat_timeout_seconds, budget) and
brings each to its wait, then times H heartbeats through the service the API calls
(`workflows.services.agents.agent_heartbeat`: after the warm-up, which reads each token once,
one conditional UPDATE that re-checks the wait), round-robin over the runs' tokens, and the
same through the whole Django stack (the test client: Django's handler, the security
middleware and the lean path of workflows/api/agent_callbacks.py), the same through every
middleware and django-ninja (the lean path taken out: what it saves), and a log post. It prints
p50/p99 in ms and the statements per heartbeat.

With `--http SECONDS`, it then starts the production server (gunicorn, config/gunicorn.conf.py,
as `make serve` and the Procfile run it) three times on the same database — with the lean path,
with every middleware and django-ninja (bench/settings_without_lean.py), and serving a WSGI app
that answers at once (bench/wsgi_floor.py: gunicorn's own cost) — and has the R agents
heartbeat every `--agent-every` seconds over keep-alive HTTP for SECONDS each (the client of
bench/throughput.py), printing the CPU each heartbeat cost the web server, PostgreSQL and the
client, and the rate asked and served.

Usage: `python bench/agents.py [--runs 200] [--heartbeats 2000] [--http 20 [--agent-every 2]]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    BENCH_FIELD_KEY,
    PG_ADMIN_URL,
    database_release,
    recreate_database,
)

PG_DB = os.environ.get("BENCH_AGENTS_DB", "bench_agents")
FLOW = {
    "slug": "agents-bench", "name": "Agents bench",
    "steps": [{"key": "agent_done", "type": "wait", "timeout_seconds": 7200,
               "heartbeat_timeout_seconds": 300, "budget": {"cost_usd": 1000}}],
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def timed(calls, function) -> list[float]:
    took = []
    for argument in calls:
        began = time.perf_counter()
        function(argument)
        took.append(time.perf_counter() - began)
    return took


def run(args: argparse.Namespace) -> None:
    url = recreate_database(PG_DB)
    os.environ.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": url,
                       "SECRET_KEY": "bench-secret-key", "DEBUG": "false",
                       "FIELD_ENCRYPTION_KEYS": BENCH_FIELD_KEY, "REDIS_URL": "",
                       "LOG_LEVEL": "ERROR", "ALLOWED_HOSTS": "testserver"})
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", "--noinput", verbosity=0)
    from workflows import engine
    from workflows.engine import executor
    from workflows.models import StepRun
    from workflows.services.agents import agent_heartbeat, agent_log
    from workflows.services.flows import flow_create, flow_promote, flow_release
    from workflows.services.runs import run_start

    flow = flow_create(definition=FLOW)
    version = flow_release(flow=flow)
    flow_promote(flow=flow, number=version.number)
    flow.refresh_from_db()
    for _ in range(args.runs):
        run_start(flow=flow, input={})
    for step_id in StepRun.objects.filter(status="queued").values_list("id", flat=True):
        executor.advance(step_id)
    tokens = [engine.callback_token(nonce) for nonce in StepRun.objects.filter(
        status="waiting").values_list("callback_nonce", flat=True)]
    assert len(tokens) == args.runs, f"{len(tokens)} waits of {args.runs}"
    beats = [(tokens[i % len(tokens)], i) for i in range(args.heartbeats)]

    def service(beat) -> None:
        token, i = beat
        agent_heartbeat(token=token, payload={
            "message": f"step {i}", "progress": {"done": i % 10, "total": 10},
            "usage": {"input_tokens": i, "output_tokens": i, "cost_usd": i / 1000}})

    timed(beats[:200], service)  # warm-up (version cache, prepared statements)
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        service(beats[0])

    def round_trip(_) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    floor = timed(range(500), round_trip)
    in_process = timed(beats, service)
    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(lambda: timed(beats[:200], service))
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)

    client = Client()

    def http(beat) -> None:
        token, i = beat
        response = client.post(f"/api/v1/callbacks/{token}/heartbeat", data=json.dumps(
            {"message": f"step {i}", "usage": {"cost_usd": i / 1000}}),
            content_type="application/json")
        assert response.status_code == 200, response.content

    timed(beats[:200], http)
    through_django = timed(beats, http)
    # The same through Django's whole middleware stack and django-ninja (the route the OpenAPI
    # document declares), without the lean path in front: what a heartbeat cost before it.
    from django.conf import settings
    from django.test import override_settings

    lean = "workflows.api.agent_callbacks.AgentCallbackMiddleware"
    with override_settings(MIDDLEWARE=[m for m in settings.MIDDLEWARE if m != lean]):
        client = Client()
        timed(beats[:200], http)
        through_ninja = timed(beats, http)
    logs = timed(beats[: min(len(beats), 1000)],
                 lambda beat: agent_log(token=beat[0], text=f"line {beat[1]}\n"))

    print(f"\n{args.heartbeats} heartbeats over {args.runs} waiting agents; PostgreSQL\n")
    rows = [("floor: one SELECT 1 round trip, p50 (ms)", statistics.median(floor) * 1000),
            ("heartbeat, service, p50 (ms)", statistics.median(in_process) * 1000),
            ("heartbeat, service, p99 (ms)", percentile(in_process, 99) * 1000),
            ("heartbeat, through Django, p50 (ms)", statistics.median(through_django) * 1000),
            ("heartbeat, through Django, p99 (ms)", percentile(through_django, 99) * 1000),
            ("heartbeat, through every middleware and Ninja, p50 (ms)",
             statistics.median(through_ninja) * 1000),
            ("heartbeat, through every middleware and Ninja, p99 (ms)",
             percentile(through_ninja, 99) * 1000),
            ("log post, service, p50 (ms)", statistics.median(logs) * 1000),
            ("log post, service, p99 (ms)", percentile(logs, 99) * 1000)]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>8.2f}")
    print(f"\nstatements per heartbeat: {len(statements)}")
    for sql in statements:
        print(f"  {sql[:110]}")
    if args.http:
        connection.close()
        over_http(args, url, tokens)


GUNICORN = ("{python}", "-m", "gunicorn", "-c", "config/gunicorn.conf.py")
# (label, DJANGO_SETTINGS_MODULE, server command: {python} and {port} filled in)
SERVERS = [
    ("lean path", "config.settings", (*GUNICORN, "config.wsgi:application")),
    ("every middleware + Ninja", "bench.settings_without_lean",
     (*GUNICORN, "config.wsgi:application")),
    ("floor: gunicorn alone", "config.settings", (*GUNICORN, "bench.wsgi_floor:application")),
]


def over_http(args: argparse.Namespace, url: str, tokens: list[str]) -> None:
    """The agents over HTTP against gunicorn: CPU per heartbeat, lean path and Ninja path, and
    gunicorn's own floor (bench/wsgi_floor.py: no Django, no database)."""
    import resource
    import tempfile

    from bench.throughput import Agents, free_port, group_cpu, postgres_cpu, start, stop

    rows = []
    for label, settings_module, command in SERVERS:
        port = free_port()
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module, "DATABASE_URL": url,
               "PYTHONPATH": str(ROOT), "HOST": "127.0.0.1", "PORT": str(port),
               "ALLOWED_HOSTS": "127.0.0.1"}
        with tempfile.TemporaryDirectory(prefix="bench-agents-") as tmp:
            log = Path(tmp) / "gunicorn.log"
            web = start([part.format(python=sys.executable, port=port) for part in command],
                        env, log)
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_for(base, tokens[0], web, log)
                agents = Agents(base, tokens, args.agent_every)
                agents.start()
                time.sleep(min(5.0, args.http / 4))  # warm-up: connections, prepared statements
                own = resource.getrusage(resource.RUSAGE_SELF)
                before = (group_cpu(web.pid), postgres_cpu(PG_DB),
                          own.ru_utime + own.ru_stime, time.monotonic())
                time.sleep(args.http)
                own = resource.getrusage(resource.RUSAGE_SELF)
                after = (group_cpu(web.pid), postgres_cpu(PG_DB),
                         own.ru_utime + own.ru_stime, time.monotonic())
                agents.stop()
            finally:
                stop(web)
        served = sum(1 for at in agents.answered_at if before[3] <= at <= after[3])
        per = [(b - a) / max(served, 1) * 1000 for a, b in zip(before[:3], after[:3], strict=True)]
        rows.append((label, agents.asked_rate(), served / (after[3] - before[3]), *per,
                     statistics.median(agents.latencies) * 1000, agents.errors))
    print(f"\n{len(tokens)} agents heartbeating every {args.agent_every:g} s over HTTP for "
          f"{args.http:g} s each (gunicorn, config/gunicorn.conf.py); CPU ms per heartbeat")
    print(f"{'path':<26} {'asked/s':>8} {'served/s':>9} {'web':>6} {'postgres':>9} "
          f"{'client':>7} {'p50 ms':>7} {'errors':>7}")
    for label, asked, served, web, pg, client, p50, errors in rows:
        print(f"{label:<26} {asked:>8.1f} {served:>9.1f} {web:>6.2f} {pg:>9.2f} {client:>7.2f} "
              f"{p50:>7.1f} {errors:>7}")


def _wait_for(base: str, token: str, web, log: Path) -> None:
    import http.client

    deadline = time.monotonic() + 60
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]),
                                                    timeout=5)
            connection.request("POST", f"/api/v1/callbacks/{token}/heartbeat", b"{}",
                               {"Content-Type": "application/json"})
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline or web.poll() is not None:
            raise SystemExit("gunicorn did not answer:\n" + log.read_text(errors="replace"))
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--heartbeats", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="print a profile of 200")
    parser.add_argument("--http", type=float, default=0,
                        help="seconds of heartbeats over HTTP per server configuration")
    parser.add_argument("--agent-every", type=float, default=2.0,
                        help="seconds between one agent's heartbeats (--http)")
    args = parser.parse_args()
    if not 0 < args.runs <= 10_000 or not 0 < args.heartbeats <= 1_000_000:
        parser.error("--runs 1..10000, --heartbeats 1..1000000")
    try:
        import psycopg

        psycopg.connect(PG_ADMIN_URL, connect_timeout=5).close()
    except Exception as exc:  # noqa: BLE001 - reported, like the other benches
        print(f"skipped: needs PostgreSQL ({PG_ADMIN_URL}): {exc}", file=sys.stderr)
        return
    try:
        run(args)
    finally:
        database_release(PG_DB)


if __name__ == "__main__":
    main()
