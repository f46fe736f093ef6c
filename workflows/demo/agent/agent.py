#!/usr/bin/env python3
"""The agent-demo's pretend coding agent (standard library only; Python 3.8+ on the VM).

Started in the background by the demo's `agent` ssh step, it does what a real coding agent
handed a wait step's callback URL should do (CONTRACT.md "Remote agents"):

- heartbeats (`POST $CALLBACK_URL/heartbeat`) with a message, its progress and its usage so far;
- streams its log (`POST $CALLBACK_URL/logs`), shown live in the step panel and in
  `wf runs logs RUN agent_done --follow`;
- uploads its patch (`PUT $CALLBACK_URL/artifacts/patch`, Content-Type text/x-diff), which the
  reviewer sees rendered as a diff;
- posts its result to the callback URL itself, which resumes the run.

A 410 from any of them means the wait has ended (canceled, timed out, over budget): the agent
stops at once. A 409 from the log endpoint means the run has not reached the wait yet (the
launch step is still finishing): it tries again shortly.

Environment: CALLBACK_URL (required), TASK, AGENT_SECONDS (how long to pretend to work),
AGENT_WORK (a directory for its files; default the current one).
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

PR_URL = "https://git.example.com/demo/pulls/42"
PATCH = (
    "--- a/dates.py\n"
    "+++ b/dates.py\n"
    "@@ -1,3 +1,3 @@\n"
    " from datetime import date, datetime\n"
    "-today = date.today()\n"
    "+today = datetime.now(tz).date()\n"
    " print(today)\n"
)


class WaitEnded(Exception):
    """The platform answered 410: the wait is over, stop working."""


def call(method, url, body, content_type, attempts=20):
    """One request; retries a 409 (wait not reached yet) and connection errors a few times."""
    for attempt in range(attempts):
        request = urllib.request.Request(url, data=body, method=method,
                                         headers={"Content-Type": content_type,
                                                  "User-Agent": "wf-demo-agent/1"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            if exc.code == 410:
                raise WaitEnded(exc.read().decode("utf-8", "replace")) from None
            if exc.code not in (409, 429, 502, 503) or attempt == attempts - 1:
                raise
        except urllib.error.URLError:
            if attempt == attempts - 1:
                raise
        time.sleep(0.5)
    return {}


def post_json(url, document):
    return call("POST", url, json.dumps(document).encode(), "application/json")


def log(base, text):
    print(text, flush=True)
    call("POST", base + "/logs", (text + "\n").encode("utf-8"), "text/plain; charset=utf-8")


def main():
    base = os.environ["CALLBACK_URL"].rstrip("/")
    task = os.environ.get("TASK", "")
    seconds = float(os.environ.get("AGENT_SECONDS", "5") or 0)
    work = os.environ.get("AGENT_WORK") or os.getcwd()
    steps = ["reading the repository", "reproducing the failure", "writing the fix",
             "running the tests"]
    usage = {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    try:
        log(base, "agent started: " + task)
        for number, what in enumerate(steps, start=1):
            usage["input_tokens"] += 1500
            usage["output_tokens"] += 400
            usage["cost_usd"] = round(usage["input_tokens"] * 3e-6
                                      + usage["output_tokens"] * 15e-6, 6)
            post_json(base + "/heartbeat", {"message": what,
                                            "progress": {"done": number - 1,
                                                         "total": len(steps)},
                                            "usage": usage})
            log(base, f"[{number}/{len(steps)}] {what}")
            time.sleep(seconds / len(steps))
        patch_path = os.path.join(work, "fix.patch")
        with open(patch_path, "w") as handle:
            handle.write(PATCH)
        stored = call("PUT", base + "/artifacts/patch", PATCH.encode(), "text/x-diff")
        log(base, f"uploaded the patch: {stored.get('uri')} "
                  f"(sha256 {stored.get('sha256', '')[:12]})")
        post_json(base + "/heartbeat", {"message": "done", "usage": usage,
                                        "progress": {"done": len(steps), "total": len(steps)}})
        post_json(base, {"pr_url": PR_URL, "summary": "demo agent finished: " + task})
        print("called back", flush=True)
    except WaitEnded as ended:
        print("the wait has ended; stopping: " + str(ended), flush=True)
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
