"""Following a run as it goes (`wf runs watch`, and `wf runs start --wait` on a terminal).

It reads the run's events (`GET /runs/{id}/events?after=LAST`), so every transition is seen
once, in order, even those that happen between two polls. A person on a terminal gets one line
per transition; `--json` gives one JSON line per event, for agents. The run has ended when a
run-level event enters a terminal state (or, between events, the run reads as ended).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from workflows_cli.client import EXIT_SERVER, Api, CliError, error_object
from workflows_cli.output import Printer
from workflows_cli.states import TERMINAL_RUN

PAGE = 200


def event_line(event: dict[str, Any]) -> str:
    """`12:00:03  fetch       running → completed` (the time is UTC, as the API gives it)."""
    at = str(event.get("at") or "")[11:19]
    subject = event.get("step") or "run"
    if event.get("from") is not None or event.get("to") is not None:
        what = f"{event.get('from') or '-'} → {event.get('to') or '-'}"
    else:
        what = event.get("kind") or ""
    reason = f"  ({event['reason']})" if event.get("reason") else ""
    return f"{at}  {subject:<20} {what}{reason}"


def _ends_run(event: dict[str, Any]) -> bool:
    return event.get("step") is None and event.get("to") in TERMINAL_RUN


def follow(api: Api, run_id: int, *, printer: Printer, as_json: bool,
           timeout: float | None, poll: float) -> dict[str, Any]:
    """Show the run's events from the first until it ends; returns the run as it ended.
    Past `timeout` seconds raises wait_timeout (exit 5) with the run as it stands."""
    deadline = None if timeout is None else time.monotonic() + timeout
    after = 0
    ended = False
    while True:
        page = api.get(f"/runs/{run_id}/events", after=after, limit=PAGE)
        for event in page["items"]:
            after = max(after, int(event["id"]))
            ended = ended or _ends_run(event)
            if as_json:
                printer.line(event)
            else:
                sys.stdout.write(event_line(event) + "\n")
        sys.stdout.flush()
        if page.get("next_cursor"):
            continue
        if ended:
            return api.get(f"/runs/{run_id}")
        if not page["items"]:
            run = api.get(f"/runs/{run_id}")
            if run["status"] in TERMINAL_RUN:
                ended = True  # one more read picks up events written with the end
                continue
        if deadline is not None and time.monotonic() >= deadline:
            run = api.get(f"/runs/{run_id}")
            raise CliError(EXIT_SERVER, error_object(
                "wait_timeout", f"run {run_id} is still {run['status']} after {timeout}s",
                run=run))
        time.sleep(poll)
