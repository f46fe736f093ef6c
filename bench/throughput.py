"""Throughput on PostgreSQL + Redis through the public API, with the production server.

What it does, on a throwaway PostgreSQL database it creates and drops and its own Redis db:
- migrates, creates a superuser and an API token (`create_api_token`);
- starts gunicorn (config/gunicorn.conf.py, the `make serve` server) on a free loopback port
  and 3 `qcluster` processes (Redis broker) under `nice -n 10`, as the Procfile runs them
  (`--worker-nice 0` for the same priority as the web server);
- creates, releases and promotes a 6-step fan-out/fan-in flow through the API
  (a -> b, c, d, e -> f, all `core.echo`);
- starts 200 runs from one client, one after another (the latency of a start alone), then N
  runs with C concurrent clients (POST /api/v1/flows/{slug}/runs), after a warm-up of C runs,
  and waits (bounded) for every run to end;
- prints runs started per second, step runs completed per second, the p50/p99 start latency
  and the p50/p99 time from a step becoming ready (its `queued` event) to it running (its
  `running` event);
- checks that every run completed and every step ran exactly once (one attempt, completed,
  one `running` event), and exits 1 loudly if not.

Usage: `python bench/throughput.py [--runs 1000] [--clients 16] [--clusters 3]
[--web-workers N] [--web-threads N] [--worker-nice 10] [--single-runs 200] [--timeout 900]
[--agents 200 [--agent-every 2]]`. With --agents, that many runs of a one-wait flow wait for
their agents, which heartbeat every 2 s through the API (the callback siblings) for the whole
measured load, from a process of their own (`AgentsProcess`); compare the step throughput with a
run without it. Needs PostgreSQL (BENCH_PG_URL, an admin
URL; default postgres://postgres@127.0.0.1:5432/postgres) and Redis (BENCH_THROUGHPUT_REDIS_URL,
default redis://127.0.0.1:6379/13; the db is flushed). BENCH_THROUGHPUT_DB names the database
(default bench_throughput). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import runpy
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import PG_ADMIN_URL, bench_run, cluster_environment  # noqa: E402

PG_DB = os.environ.get("BENCH_THROUGHPUT_DB", "bench_throughput")
REDIS_URL = os.environ.get("BENCH_THROUGHPUT_REDIS_URL", "redis://127.0.0.1:6379/13")
SLUG = "bench-fan"
FLOW = {
    "slug": SLUG, "name": "Bench fan-out/fan-in",
    "steps": [
        {"key": "a", "type": "python", "action": "core.echo", "args": {"n": 1}},
        *({"key": k, "type": "python", "action": "core.echo", "args": {"n": 2}, "needs": ["a"]}
          for k in "bcde"),
        {"key": "f", "type": "python", "action": "core.echo", "args": {"n": 3},
         "needs": list("bcde")},
    ],
}
STEPS_PER_RUN = len(FLOW["steps"])


class BenchFailure(Exception):
    """A check failed: the figures must not be trusted."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- processes ---------------------------------------------------------------------------------

def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in a process group of its own (so `stop` reaches its children) but in this
    session: with the kernel's autogroup scheduling, each session is scheduled as one group and
    `nice` only ranks processes within a group, so a qcluster in a session of its own would get
    as much CPU as the whole web server, whatever its niceness."""
    handle = log.open("wb")
    try:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                process_group=0)
    finally:
        handle.close()


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group, then SIGKILL to whatever of the group is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def tail(log: Path, chars: int = 2000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


# --- where the CPU went ------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def group_cpu(pgid: int) -> float:
    """CPU seconds of the live processes of a process group, with their reaped children."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state; pgrp is the third after ")"
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / TICK


def pid_cpu(pid: int) -> float:
    """CPU seconds of one live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_cpu(database: str) -> float:
    """CPU seconds of the live PostgreSQL backends serving `database` (by their process title;
    0 if they cannot be read)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not title.startswith("postgres: ") or f" {database} " not in title:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICK


def cpu_snapshot(web: subprocess.Popen, clusters: list[subprocess.Popen],
                 agents: AgentsProcess | None = None) -> dict[str, float]:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"web": group_cpu(web.pid),
            "workers": sum(group_cpu(process.pid) for process in clusters),
            "clients": own.ru_utime + own.ru_stime + (agents.cpu() if agents else 0.0),
            "postgres": postgres_cpu(PG_DB),
            "machine": machine_cpu(),
            "wall": time.monotonic()}


# --- the clients -------------------------------------------------------------------------------

def start_runs(base: str, token: str, count: int, clients: int) -> tuple[list[int], list[float],
                                                                        float]:
    """POST count runs from `clients` threads; returns run ids, latencies (s) and wall time."""
    import httpx

    lock = threading.Lock()
    remaining = [count]
    run_ids: list[int] = []
    latencies: list[float] = []
    errors: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=base, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            while True:
                with lock:
                    if remaining[0] <= 0 or errors:
                        return
                    remaining[0] -= 1
                began = time.perf_counter()
                try:
                    response = http.post(f"/api/v1/flows/{SLUG}/runs", json={"input": {}})
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    return
                elapsed = time.perf_counter() - began
                with lock:
                    if response.status_code != 201:
                        errors.append(f"{response.status_code} {response.text[:300]}")
                        return
                    run_ids.append(response.json()["id"])
                    latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise BenchFailure(f"starting runs failed ({len(errors)} errors), first: {errors[0]}")
    return run_ids, latencies, wall


def wait_for_runs(run_ids: list[int], timeout: float) -> None:
    from workflows.models import Run
    from workflows.states import RUN_TERMINAL

    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        open_runs = Run.objects.filter(pk__in=run_ids).exclude(status__in=RUN_TERMINAL).count()
        if open_runs == 0:
            return
        if time.monotonic() > deadline:
            raise BenchFailure(f"{open_runs} of {len(run_ids)} runs still open after {timeout} s")
        if time.monotonic() - last_report > 10:
            print(f"  waiting: {open_runs} runs open", file=sys.stderr)
            last_report = time.monotonic()
        time.sleep(0.25)


# --- the checks and the figures ----------------------------------------------------------------

def check_exactly_once(run_ids: list[int]) -> None:
    """Every run completed with its 6 steps, each run exactly once; raises BenchFailure."""
    from django.db.models import Count, Q

    from workflows.models import Attempt, Event, Run, StepRun

    problems = []
    statuses = dict(Run.objects.filter(pk__in=run_ids).values_list("status")
                    .annotate(n=Count("id")).values_list("status", "n"))
    if statuses != {"completed": len(run_ids)}:
        problems.append(f"run statuses {statuses}, expected all {len(run_ids)} completed")
    steps = StepRun.objects.filter(run_id__in=run_ids)
    if steps.count() != STEPS_PER_RUN * len(run_ids):
        problems.append(f"{steps.count()} step runs, expected {STEPS_PER_RUN * len(run_ids)}")
    bad_steps = steps.exclude(status="completed", attempt_count=1).count()
    if bad_steps:
        problems.append(f"{bad_steps} step runs not completed in exactly one attempt")
    attempts = Attempt.objects.filter(step_run__run_id__in=run_ids)
    if attempts.count() != steps.count():
        problems.append(f"{attempts.count()} attempts for {steps.count()} step runs")
    if attempts.exclude(status="completed", number=1).exists():
        problems.append("attempts not completed or numbered other than 1")
    repeated = (Event.objects.filter(run_id__in=run_ids, step_run__isnull=False)
                .values("step_run_id")
                .annotate(running=Count("id", filter=Q(to_status="running")),
                          completed=Count("id", filter=Q(to_status="completed")))
                .exclude(running=1, completed=1).count())
    if repeated:
        problems.append(f"{repeated} step runs without exactly one running and one completed "
                        "event")
    if problems:
        raise BenchFailure("exactly-once check failed: " + "; ".join(problems))


def ready_to_running(run_ids: list[int]) -> list[float]:
    """Seconds from each step's `queued` event to its `running` event."""
    from workflows.models import Event

    queued: dict[int, float] = {}
    running: dict[int, float] = {}
    rows = Event.objects.filter(run_id__in=run_ids, step_run__isnull=False,
                                to_status__in=("queued", "running")) \
        .values_list("step_run_id", "to_status", "at")
    for step_run_id, to_status, at in rows.iterator(chunk_size=5000):
        (queued if to_status == "queued" else running)[step_run_id] = at.timestamp()
    missing = set(queued) ^ set(running)
    if missing:
        raise BenchFailure(f"{len(missing)} step runs lack a queued or a running event")
    return [running[k] - queued[k] for k in queued]


def step_window(run_ids: list[int]) -> tuple[float, float]:
    """(first run created, last step finished) as epoch seconds, from the database."""
    from django.db.models import Max, Min

    from workflows.models import Run, StepRun

    first = Run.objects.filter(pk__in=run_ids).aggregate(t=Min("created_at"))["t"]
    last = StepRun.objects.filter(run_id__in=run_ids).aggregate(t=Max("finished_at"))["t"]
    return first.timestamp(), last.timestamp()


# --- main --------------------------------------------------------------------------------------

def wait_for_clusters(count: int, timeout: float) -> None:
    from django_q.status import Stat

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(Stat.get_all()) >= count:
            return
        time.sleep(0.2)
    raise BenchFailure(f"{count} qclusters did not report within {timeout} s")


def api(http, method: str, path: str, **kwargs) -> dict:
    response = http.request(method, path, **kwargs)
    if response.status_code >= 300:
        raise BenchFailure(f"{method} {path}: {response.status_code} {response.text[:500]}")
    return response.json()


AGENT_FLOW = {
    "slug": "agents-load", "name": "Agents load",
    "steps": [{"key": "agent_done", "type": "wait", "timeout_seconds": 7200,
               "heartbeat_timeout_seconds": 300}],
}


class Agents:
    """`count` remote agents heartbeating every `every` seconds through the API (the callback
    siblings), from `threads` threads, while the load runs; records each heartbeat's latency
    and when it was answered.

    The clients share the machine's cores with the server, so they are lean: one persistent
    keep-alive socket per thread, each agent's whole request encoded once, a heap of the next
    due heartbeats, and no HTTP library: the answer's status line and length are all that is
    read (`_read_response`). Each heartbeat is due `every`
    seconds after the previous one was due (not after it was answered), so a slow server makes
    the threads late rather than the asked rate lower; `served_rate` says what was served."""

    BODY = json.dumps({"message": "working", "usage": {"cost_usd": 0.01}}).encode()

    def __init__(self, base: str, tokens: list[str], every: float, threads: int = 8):
        self.base, self.tokens, self.every = base, tokens, every
        self.threads_count = threads
        self.latencies: list[float] = []
        self.answered_at: list[float] = []
        self.late: list[float] = []
        self.errors = 0
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def _agent_loop(self, tokens: list[str]) -> None:
        import heapq
        from urllib.parse import urlsplit

        address = urlsplit(self.base)
        # Each heartbeat's request, bytes ready to send on the thread's keep-alive socket.
        requests = {token: (f"POST /api/v1/callbacks/{token}/heartbeat HTTP/1.1\r\n"
                            f"Host: {address.hostname}\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {len(self.BODY)}\r\n\r\n").encode() + self.BODY
                    for token in tokens}
        sock = None
        now = time.monotonic()
        due = [(now + random.random() * self.every, token) for token in tokens]
        heapq.heapify(due)
        latencies, answered_at, late = self.latencies, self.answered_at, self.late
        while not self.stopping.is_set():
            at, token = due[0]
            delay = at - time.monotonic()
            if delay > 0 and self.stopping.wait(delay):
                break
            heapq.heapreplace(due, (at + self.every, token))
            began = time.monotonic()
            late.append(began - at)
            try:
                if sock is None:
                    sock = socket.create_connection((address.hostname, address.port), 30)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.sendall(requests[token])
                status, keep = _read_response(sock)
                if status != 200:
                    self.errors += 1
                if not keep:
                    sock.close()
                    sock = None
            except OSError:
                self.errors += 1
                if sock is not None:
                    sock.close()
                sock = None  # reconnects on the next heartbeat
                continue
            ended = time.monotonic()
            latencies.append(ended - began)
            answered_at.append(ended)
        if sock is not None:
            sock.close()

    def start(self) -> None:
        for index in range(self.threads_count):
            part = self.tokens[index::self.threads_count]
            if part:
                thread = threading.Thread(target=self._agent_loop, args=(part,), daemon=True)
                thread.start()
                self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def asked_rate(self) -> float:
        return len(self.tokens) / self.every

    def served_rate(self, began: float, ended: float) -> float:
        """Heartbeats answered 200 per second between two `time.monotonic()` instants."""
        served = sum(1 for at in self.answered_at if began <= at <= ended)
        return served / (ended - began) if ended > began else float("nan")


class AgentsProcess:
    """`Agents` in a process of their own, as real agents are on machines of their own: in the
    bench's process the agents' 8 threads shared one GIL with the clients starting runs, and
    slowed the starts on the client side (a start's p99 latency grew fourfold). Their CPU is
    still the bench's (`cpu()`, added to the clients' column). After `stop()` the figures are
    those of `Agents`: latencies, answered_at (the monotonic clock is the machine's), late,
    errors."""

    def __init__(self, base: str, tokens: list[str], every: float):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.tokens, self.every = tokens, every
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_agents_process, args=(child, base, tokens, every),
                                       daemon=True)
        self.latencies: list[float] = []
        self.answered_at: list[float] = []
        self.late: list[float] = []
        self.errors = 0

    def start(self) -> None:
        self.process.start()
        if not self.conn.poll(60) or self.conn.recv() != "started":
            raise BenchFailure("the agents' process did not start")

    def stop(self) -> None:
        self.conn.send("stop")
        if not self.conn.poll(60):
            raise BenchFailure("the agents' process did not stop")
        figures = self.conn.recv()
        self.process.join(30)
        self.latencies, self.answered_at = figures["latencies"], figures["answered_at"]
        self.late, self.errors = figures["late"], figures["errors"]

    def cpu(self) -> float:
        """CPU seconds the agents' process has used so far."""
        return pid_cpu(self.process.pid) if self.process.pid else 0.0

    asked_rate = Agents.asked_rate
    served_rate = Agents.served_rate


def _agents_process(conn, base: str, tokens: list[str], every: float) -> None:
    agents = Agents(base, tokens, every)
    agents.start()
    conn.send("started")
    conn.recv()  # "stop"
    agents.stop()
    conn.send({"latencies": agents.latencies, "answered_at": agents.answered_at,
               "late": agents.late, "errors": agents.errors})


def _read_response(sock: socket.socket) -> tuple[int, bool]:
    """Read one HTTP/1.1 response (Content-Length or chunked) off a keep-alive socket: its
    status and whether the connection stays open."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("the server closed the connection")
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        while len(body) < length:
            more = sock.recv(65536)
            if not more:
                raise ConnectionError("the server closed the connection")
            body += more
    else:  # chunked: read to the last chunk
        while not body.endswith(b"0\r\n\r\n"):
            more = sock.recv(65536)
            if not more:
                raise ConnectionError("the server closed the connection")
            body += more
    return status, headers.get(b"connection") != b"close"


def start_agents(http, base: str, token: str, count: int) -> list[str]:
    """Start `count` runs of a one-wait flow, wait until every one waits, return the callback
    tokens (read from the database: the bench shares the server's SECRET_KEY)."""
    from workflows import engine
    from workflows.models import StepRun

    api(http, "POST", "/api/v1/flows", json={"definition": AGENT_FLOW})
    release = api(http, "POST", f"/api/v1/flows/{AGENT_FLOW['slug']}/releases", json={})
    api(http, "POST",
        f"/api/v1/flows/{AGENT_FLOW['slug']}/releases/{release['version']}/promote")
    for _ in range(count):
        api(http, "POST", f"/api/v1/flows/{AGENT_FLOW['slug']}/runs", json={"input": {}})
    deadline = time.monotonic() + 300
    waits = StepRun.objects.filter(run__flow__slug=AGENT_FLOW["slug"], status="waiting")
    while waits.count() < count:
        if time.monotonic() > deadline:
            raise BenchFailure(f"only {waits.count()} of {count} agent waits were reached")
        time.sleep(0.5)
    return [engine.callback_token(n) for n in waits.values_list("callback_nonce", flat=True)]


def run_bench(args: argparse.Namespace, tmp: Path) -> None:
    import httpx

    env = cluster_environment(database=PG_DB, redis_url=REDIS_URL, cluster="bench-throughput",
                              workers=args.q_workers, allowed_hosts="127.0.0.1")

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password")
    out = io.StringIO()
    call_command("create_api_token", "bench", "--name", "throughput bench", stdout=out)
    token = json.loads(out.getvalue())["token"]
    connection.close()

    port = free_port()
    web_env = dict(env, HOST="127.0.0.1", PORT=str(port))
    if args.web_workers:
        web_env["WEB_CONCURRENCY"] = str(args.web_workers)
    if args.web_threads:
        web_env["WEB_THREADS"] = str(args.web_threads)
    processes: list[tuple[subprocess.Popen, Path]] = []
    try:
        log = tmp / "gunicorn.log"
        processes.append((start([sys.executable, "-m", "gunicorn", "-c",
                                 "config/gunicorn.conf.py", "config.wsgi:application"],
                                web_env, log), log))
        for index in range(args.clusters):
            log = tmp / f"qcluster-{index}.log"
            niced = ["nice", "-n", str(args.worker_nice)] if args.worker_nice else []
            processes.append((start([*niced, sys.executable, "manage.py", "qcluster"], env, log),
                              log))
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    http.get("/api/v1/flows")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or processes[0][0].poll() is not None:
                        raise BenchFailure("gunicorn did not answer:\n"
                                           + tail(processes[0][1])) from None
                    time.sleep(0.2)
            wait_for_clusters(args.clusters, 60)
            api(http, "POST", "/api/v1/flows", json={"definition": FLOW})
            release = api(http, "POST", f"/api/v1/flows/{SLUG}/releases", json={})
            api(http, "POST", f"/api/v1/flows/{SLUG}/releases/{release['version']}/promote")

            tokens = start_agents(http, base, token, args.agents) if args.agents else []
        agents = AgentsProcess(base, tokens, args.agent_every) if tokens else None
        if agents:
            agents.start()
            print(f"{len(tokens)} agents heartbeating every {args.agent_every}s",
                  file=sys.stderr)
        warm_ids, _, _ = start_runs(base, token, args.clients, args.clients)
        wait_for_runs(warm_ids, 120)
        # One client, one start after another: the latency of a start itself, not of a queue.
        single_ids, single_latencies, _ = start_runs(base, token, args.single_runs, 1)
        wait_for_runs(single_ids, 120)
        warm_ids += single_ids
        print(f"starting {args.runs} runs with {args.clients} clients ...", file=sys.stderr)
        web, clusters = processes[0][0], [process for process, _ in processes[1:]]
        cpu_before = cpu_snapshot(web, clusters, agents)
        began = time.time()
        measured_from = time.monotonic()
        run_ids, latencies, start_wall = start_runs(base, token, args.runs, args.clients)
        cpu_started = cpu_snapshot(web, clusters, agents)
        wait_for_runs(run_ids, args.timeout)
        done_wall = time.time() - began
        measured_to = time.monotonic()
        cpu_after = cpu_snapshot(web, clusters, agents)
        if agents:
            agents.stop()
        for process, log in processes:
            if process.poll() is not None:
                raise BenchFailure(f"a process exited early ({process.args}):\n{tail(log)}")
    finally:
        for process, _ in processes:
            stop(process)

    check_exactly_once(warm_ids + run_ids)
    waits = ready_to_running(run_ids)
    first, last = step_window(run_ids)
    steps = STEPS_PER_RUN * len(run_ids)
    saved = dict(os.environ)
    os.environ.update(web_env)
    try:  # what config/gunicorn.conf.py made of the environment
        server = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    web_workers, web_threads = server["workers"], server["threads"]
    print(f"\n{len(run_ids)} runs x {STEPS_PER_RUN} steps (fan-out/fan-in), {args.clients} "
          f"clients, gunicorn {web_workers} workers x {web_threads} threads, "
          f"{args.clusters} qclusters x {args.q_workers} workers"
          f"{f' (nice {args.worker_nice})' if args.worker_nice else ''}; PostgreSQL + Redis\n")
    rows = [
        ("start latency, one client, p50 (ms)",
         f"{statistics.median(single_latencies) * 1000:.1f}"),
        ("start latency, one client, p99 (ms)",
         f"{percentile(single_latencies, 99) * 1000:.1f}"),
        (f"runs started per second ({args.clients} clients)", f"{len(run_ids) / start_wall:.1f}"),
        (f"start latency, {args.clients} clients, p50 (ms)",
         f"{statistics.median(latencies) * 1000:.1f}"),
        (f"start latency, {args.clients} clients, p99 (ms)",
         f"{percentile(latencies, 99) * 1000:.1f}"),
        ("step runs completed per second (first start to last step)",
         f"{steps / (last - first):.1f}"),
        ("ready -> running p50 (ms)", f"{statistics.median(waits) * 1000:.1f}"),
        ("ready -> running p99 (ms)", f"{percentile(waits, 99) * 1000:.1f}"),
        ("all runs ended after (s)", f"{done_wall:.1f}"),
        ("starting took (s)", f"{start_wall:.1f}"),
    ]
    if agents:
        rows += [
            (f"agents heartbeating every {args.agent_every:g}s", f"{len(tokens)}"),
            ("heartbeats per second asked", f"{agents.asked_rate():.1f}"),
            ("heartbeats per second served (answered 200, during the measured load)",
             f"{agents.served_rate(measured_from, measured_to):.1f}"),
            ("heartbeats answered (whole run)", f"{len(agents.latencies)}"),
            ("heartbeats refused or failed", f"{agents.errors}"),
            ("heartbeat sent late, p50 / p99 (ms)",
             f"{statistics.median(agents.late) * 1000:.1f} / "
             f"{percentile(agents.late, 99) * 1000:.1f}"),
            ("heartbeat latency over HTTP, p50 (ms)",
             f"{statistics.median(agents.latencies) * 1000:.1f}"),
            ("heartbeat latency over HTTP, p99 (ms)",
             f"{percentile(agents.latencies, 99) * 1000:.1f}"),
        ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>8}")
    cores = os.cpu_count() or 1
    print(f"\nCPU seconds used ({cores} cores; clients: the bench's, its agents' process "
          "included; postgres: the backends of the bench's database; rest: Redis and any other "
          "work on the machine):")
    print(f"{'phase':<24} {'wall':>6} {'web':>6} {'workers':>8} {'clients':>8} {'postgres':>9} "
          f"{'rest':>6} {'busy %':>7}")
    for phase, a, b in (("starting runs", cpu_before, cpu_started),
                        ("start to all ended", cpu_before, cpu_after)):
        d = {key: b[key] - a[key] for key in a}
        rest = d["machine"] - d["web"] - d["workers"] - d["clients"] - d["postgres"]
        print(f"{phase:<24} {d['wall']:>6.1f} {d['web']:>6.1f} {d['workers']:>8.1f} "
              f"{d['clients']:>8.1f} {d['postgres']:>9.1f} {rest:>6.1f} "
              f"{100 * d['machine'] / (d['wall'] * cores):>6.0f}%")
    print(f"\nexactly once: {len(warm_ids) + len(run_ids)} runs (with {len(warm_ids)} warm-up), "
          f"{STEPS_PER_RUN * (len(warm_ids) + len(run_ids))} step runs, each completed in one "
          "attempt with one running event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--clusters", type=int, default=3)
    parser.add_argument("--q-workers", type=int, default=2, help="Q_WORKERS per qcluster")
    parser.add_argument("--worker-nice", type=int, default=10,
                        help="run the qclusters under `nice -n N`, as the Procfile does "
                             "(0: same priority as the web server)")
    parser.add_argument("--single-runs", type=int, default=200,
                        help="runs started one after another by one client, for the latency")
    parser.add_argument("--web-workers", type=int, help="WEB_CONCURRENCY (default: config's)")
    parser.add_argument("--web-threads", type=int, help="WEB_THREADS (default: config's)")
    parser.add_argument("--agents", type=int, default=0,
                        help="remote agents heartbeating alongside the load (waiting runs)")
    parser.add_argument("--agent-every", type=float, default=2.0,
                        help="seconds between one agent's heartbeats")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds to wait for the runs to end")
    args = parser.parse_args()
    if not 0 < args.runs <= 100_000 or not 0 < args.clients <= 256 \
            or not 0 < args.clusters <= 16 or not 0 < args.timeout <= 7200:
        parser.error("--runs 1..100000, --clients 1..256, --clusters 1..16, --timeout ..7200")
    try:
        import psycopg
        import redis

        psycopg.connect(PG_ADMIN_URL, connect_timeout=5).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except Exception as exc:  # noqa: BLE001 - reported; skipped like step_overhead's configs
        print(f"skipped: needs PostgreSQL ({PG_ADMIN_URL}) and Redis ({REDIS_URL}): {exc}",
              file=sys.stderr)
        return
    bench_run(run_bench, args, prefix="bench-throughput-", database=PG_DB, redis_url=REDIS_URL,
              failure=BenchFailure)


if __name__ == "__main__":
    main()
