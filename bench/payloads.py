"""Payload benchmark: a worker's peak RSS for a 1 GiB http download and for a 100 MB log, and the
logs endpoint's latency on that log (issue 9: under 150 MB RSS, under 200 ms).

    python bench/payloads.py                          # a throwaway SQLite file and media folder
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_payloads python bench/payloads.py
    python bench/payloads.py --download-bytes 200000000 --log-bytes 20000000   # quicker

On PostgreSQL the database is dropped and created again, so its name must contain "bench".

How it measures: a local HTTP server (a thread of this process) streams the body; each step
runs in its own child process (`--worker STEP_RUN_ID`, the same claim/execute/finish code a
qcluster worker runs), which reports its own peak RSS (`ru_maxrss`) when the step is done. The
log is written by the `bench.spew` python action, 64 KiB per `ctx.log` call. The logs endpoint
is asked through django.test.Client with an API token, the median of --repeat requests.

What it exercises (the code a qcluster worker runs): the http step streams the body with
`client.stream()` into a resource (`resource_store`, 64 KiB at a time, SHA-256 on the way); the
log goes through the executor's LogWriter — a LogSink spilling 1 MiB parts to storage and
closing them into one log resource, a LogWindow keeping WF_LOG_INLINE_BYTES of LogChunks — with
the handler held back while 4 MiB of log text is pending (backpressure). The logs endpoint
reads only the chunks in the window, keyset by seq; it is timed for the first page and for the
page after the middle seq.
Every figure printed is measured on this machine; the verdict lines say which targets hold.
"""

from __future__ import annotations

import argparse
import json
import os
import resource as rusage
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BENCH_FIELD_KEY, recreate_postgres_database  # noqa: E402

TARGET_RSS_MB = 150
TARGET_LOGS_MS = 200
CHUNK = 64 * 1024


def configure(database_url: str | None, media_root: str | None) -> tuple[str, str]:
    if not database_url:
        database_url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-payloads-')}/db.sqlite3"
    media_root = media_root or tempfile.mkdtemp(prefix="bench-payloads-media-")
    os.environ["DATABASE_URL"] = database_url
    os.environ["MEDIA_ROOT"] = media_root
    os.environ.setdefault("SECRET_KEY", "bench-payloads-not-secret")
    os.environ.setdefault("FIELD_ENCRYPTION_KEYS", BENCH_FIELD_KEY)
    os.environ["DEBUG"] = "false"
    os.environ["ALLOWED_HOSTS"] = "testserver,localhost,127.0.0.1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    return database_url, media_root


def register_actions() -> None:
    from workflows.steps.actions import action, get_action

    if get_action("bench.spew") is not None:
        return

    @action("bench.spew")
    def spew(ctx: Any, total_bytes: int = 0, **_: Any) -> dict[str, Any]:
        """Log `total_bytes` of text, 64 KiB per call, a numbered line every 128 bytes."""
        line = "x" * 119 + "\n"
        block = "".join(f"{i % 10_000_000:07d} {line}" for i in range(CHUNK // 128))
        written = 0
        while written < total_bytes:
            ctx.log(block)
            written += len(block)
        return {"logged_bytes": written}


# --- the body server -----------------------------------------------------------------------------


def serve_body(size: int) -> tuple[ThreadingHTTPServer, str]:
    """A server whose GET /big streams `size` bytes (not all NUL-free) with a Content-Length."""
    block = bytes(range(256)) * (CHUNK // 256)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            left = size
            try:
                while left > 0:
                    piece = block[:min(left, len(block))]
                    self.wfile.write(piece)
                    left -= len(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/big"


# --- the worker child ----------------------------------------------------------------------------


def worker(step_run_id: int) -> None:
    import django

    django.setup()
    register_actions()
    from workflows.engine import executor

    started = time.monotonic()
    executor.advance(step_run_id)
    peak_kb = rusage.getrusage(rusage.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_mb": round(peak_kb / 1024, 1),
                      "seconds": round(time.monotonic() - started, 2)}))


def run_in_worker(step_run_id: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--worker", str(step_run_id)],
                          capture_output=True, text=True, env=os.environ.copy(), check=False)
    if done.returncode != 0:
        sys.exit(f"the worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the scenarios -------------------------------------------------------------------------------


def start_one(slug: str, step: dict[str, Any]) -> tuple[Any, Any]:
    from workflows.models import StepRun
    from workflows.services.flows import flow_create, flow_promote, flow_release
    from workflows.services.runs import run_start

    flow = flow_create(definition={"slug": slug, "name": slug, "steps": [step]})
    version = flow_release(flow=flow)
    flow_promote(flow=flow, number=version.number)
    flow.refresh_from_db()
    run, _ = run_start(flow=flow, input={})
    return run, StepRun.objects.get(run=run, key=step["key"])


def bench_download(size: int) -> dict[str, Any]:
    from resources.payloads import is_descriptor

    server, url = serve_body(size)
    try:
        run, step = start_one("bench-download", {
            "key": "fetch", "type": "http", "request": {"method": "GET", "url": url},
            "timeout_seconds": 3600})
        figures = run_in_worker(step.pk)
    finally:
        server.shutdown()
    step.refresh_from_db()
    body = (step.output or {}).get("body") if isinstance(step.output, dict) else None
    held = body if is_descriptor(body) else step.output if is_descriptor(step.output) else None
    figures["status"] = step.status
    figures["streamed"] = bool(held and held.get("size") == size)
    return figures


def bench_log(size: int, repeat: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from resources.models import Resource, ResourceKind
    from workflows.models import LogChunk
    from workflows.services.tokens import api_token_create

    run, step = start_one("bench-log", {"key": "spew", "type": "python",
                                        "action": "bench.spew",
                                        "args": {"total_bytes": size}, "timeout_seconds": 3600})
    figures = run_in_worker(step.pk)
    step.refresh_from_db()
    figures["status"] = step.status
    log = Resource.objects.filter(step_run=step, kind=ResourceKind.LOG).first()
    figures["log_resource_bytes"] = log.size if log else None
    figures["chunks_in_db"] = LogChunk.objects.filter(step_run=step).count()
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw")
    token = api_token_create(user=user, name="bench")[1]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    path = f"/api/v1/runs/{run.pk}/steps/spew/logs"
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            sys.exit(f"{path} answered {response.status_code}: {response.content[:300]!r}")
    figures["logs_endpoint_ms"] = round(statistics.median(timings), 1)
    figures["logs_endpoint_bytes"] = len(response.content)
    seqs = list(LogChunk.objects.filter(step_run=step).order_by("seq")
                .values_list("seq", flat=True))
    middle = seqs[len(seqs) // 2] if seqs else 0
    tail_timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(f"{path}?after={middle}")
        tail_timings.append((time.perf_counter() - started) * 1000)
    figures["logs_endpoint_after_ms"] = round(statistics.median(tail_timings), 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--download-bytes", type=int, default=1024 ** 3)
    parser.add_argument("--log-bytes", type=int, default=100 * 1000 * 1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    database_url, media_root = configure(os.environ.get("DATABASE_URL"),
                                         os.environ.get("BENCH_MEDIA_ROOT"))
    if database_url.startswith("postgres"):
        recreate_postgres_database(database_url)
    import django
    from django.core.management import call_command

    django.setup()
    register_actions()
    call_command("migrate", verbosity=0)
    print(f"database {database_url.split('@')[-1]}, media {media_root}")

    download = bench_download(args.download_bytes)
    print(f"download {args.download_bytes:,} bytes: worker peak RSS {download['peak_rss_mb']} MB"
          f" in {download['seconds']} s; step {download['status']}; "
          f"{'streamed to a resource' if download['streamed'] else 'NOT STREAMED'}")
    log = bench_log(args.log_bytes, args.repeat)
    resource_note = (f"log resource {log['log_resource_bytes']:,} bytes"
                     if log["log_resource_bytes"] is not None else "no log resource")
    print(f"log {args.log_bytes:,} bytes: worker peak RSS {log['peak_rss_mb']} MB in "
          f"{log['seconds']} s; step {log['status']}; {resource_note}; "
          f"{log['chunks_in_db']:,} chunks in the database")
    print(f"logs endpoint: median {log['logs_endpoint_ms']} ms over {args.repeat} requests, "
          f"{log['logs_endpoint_bytes']:,} bytes answered; ?after=<middle seq> median "
          f"{log['logs_endpoint_after_ms']} ms")
    verdicts = {
        f"download RSS < {TARGET_RSS_MB} MB and streamed":
            download["peak_rss_mb"] < TARGET_RSS_MB and download["streamed"],
        f"log RSS < {TARGET_RSS_MB} MB with a log resource":
            log["peak_rss_mb"] < TARGET_RSS_MB and log["log_resource_bytes"] is not None,
        f"logs endpoint < {TARGET_LOGS_MS} ms": max(log["logs_endpoint_ms"],
                                                   log["logs_endpoint_after_ms"]) < TARGET_LOGS_MS,
    }
    for name, ok in verdicts.items():
        print(f"{'ok  ' if ok else 'MISS'} {name}")


if __name__ == "__main__":
    main()
