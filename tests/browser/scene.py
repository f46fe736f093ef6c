"""A realistic flow history for the screenshots: two releases (a step added, one removed),
completed, failed-with-retries, retried, canceled, waiting and running runs."""

from __future__ import annotations

from approvals.models import Approval, ApprovalStatus
from approvals.services import approval_approve
from tests.factories import drain, make_flow
from workflows.engine import attempts, executor
from workflows.models import Flow, Run, StepRun
from workflows.services.flows import flow_promote, flow_release, flow_update_draft
from workflows.services.runs import run_cancel, run_retry, run_start
from workflows.steps.actions import action, get_action
from workflows.steps.base import StepFailed

SCENE = {"broken": True}

if get_action("demo.transform") is None:

    @action("demo.transform")
    def demo_transform(ctx, rows: int = 1200, fail: bool = False, **_):
        ctx.log(f"reading {rows} rows from the warehouse\n")
        ctx.log("normalizing currencies ... ok\n")
        if fail and SCENE["broken"]:
            ctx.log("Traceback (most recent call last):\n  ...\nKeyError: 'amount_eur'\n",
                    stream="stderr")
            raise StepFailed("column amount_eur missing from upstream export",
                             error_type="SchemaMismatch")
        import time

        time.sleep(0.04 + (rows % 7) / 100)
        ctx.log(f"wrote {rows} rows\n")
        return {"rows": rows, "report": SCENE.get("report", "")}


def report_definition(with_notify: bool) -> dict:
    steps = [
        {"key": "fetch", "type": "python", "action": "demo.build",
         "args": {"lines": 3, "seconds": 0.02, "repo": "{{ input.repo }}"}},
        {"key": "transform", "type": "python", "action": "demo.transform",
         "args": {"rows": "{{ input.rows }}", "fail": "{{ input.fail }}"},
         "retry": {"max_attempts": 2, "backoff_seconds": 0}},
    ]
    if not with_notify:
        steps.append({"key": "count", "type": "python", "action": "core.echo",
                      "args": {"rows": "{{ steps.transform.output.rows }}"}})
    steps += [
        {"key": "review", "type": "approval", "assignees": {"groups": ["reviewers"]},
         "instructions": "Publish the nightly report for {{ input.repo }} "
                         "({{ steps.transform.output.rows }} rows)? Preview: "
                         "https://reports.example.com/preview/{{ input.repo }}",
         "timeout_seconds": 86400},
        {"key": "publish", "type": "python", "action": "demo.build",
         "args": {"lines": 2, "seconds": 0.03, "published": True}},
    ]
    if with_notify:
        steps.append({"key": "notify", "type": "python", "action": "core.echo",
                      "args": {"channel": "#reports"}})
    return {
        "slug": "nightly-report",
        "name": "Nightly report",
        "description": "Fetches the warehouse export, transforms it, asks finance to review, "
                       "then publishes the report.",
        "input": {"repo": {"type": "string", "default": "core"},
                  "rows": {"type": "integer", "default": 1200},
                  "fail": {"type": "boolean", "default": False}},
        "triggers": [{"type": "schedule", "cron": "0 2 * * *", "input": {"repo": "core"}},
                     {"type": "webhook"}],
        "steps": steps,
    }


def approve_pending(run: Run, actor, comment: str = "Looks right") -> None:
    for approval in Approval.objects.filter(run=run, status=ApprovalStatus.PENDING):
        approval_approve(approval=approval, actor=actor, comment=comment)
    drain()


def start(flow: Flow, actor, **input_values) -> Run:
    run, _ = run_start(flow=flow, input=input_values, actor=actor)
    drain()
    return Run.objects.get(pk=run.pk)


def build_scene(*, admin, reviewer) -> dict:
    from resources.services import resource_create

    SCENE["broken"] = True
    SCENE["report"] = resource_create(content=b"region,total\nEU,1200\n", name="report.csv",
                                      content_type="text/csv").uri
    flow = make_flow(report_definition(with_notify=False))
    for rows in (1180, 1204, 1251):
        run = start(flow, admin, rows=rows)
        approve_pending(run, reviewer)
    failed_v1 = start(flow, admin, rows=1260, fail=True)
    flow_update_draft(flow=flow, definition=report_definition(with_notify=True), actor=admin)
    v2 = flow_release(flow=flow, actor=admin, notes="notify #reports; drop count")
    flow_promote(flow=flow, number=v2.number, actor=admin)
    flow.refresh_from_db()
    for rows in (1302, 1290, 1311):
        run = start(flow, admin, rows=rows)
        approve_pending(run, reviewer, "ok")
    canceled = start(flow, admin, rows=1320)
    run_cancel(run=canceled, actor=admin, reason="superseded by a rerun")
    failed = start(flow, admin, rows=1333, fail=True)
    SCENE["broken"] = False
    retry = run_retry(run=failed, actor=admin)
    drain()
    for rows in (1340, 1355):
        run = start(flow, admin, rows=rows)
        approve_pending(run, reviewer, "fine")
    running, _ = run_start(flow=flow, input={"rows": 1362}, actor=None, trigger_kind="schedule")
    step = StepRun.objects.get(run=running, key="fetch")
    # Claimed by a "worker" that is still busy (its first check wrote the running attempt).
    attempts.attempt_write(executor.claim(step.pk).attempt)

    other = make_flow({
        "slug": "invoice-sync", "name": "Invoice sync",
        "steps": [
            {"key": "collect", "type": "python", "action": "core.echo",
             "args": {"invoices": 14, "total_eur": 18230.5,
                      "vendors": ["Acme GmbH", "Globex", "Initech"]}},
            {"key": "approve_payout", "type": "approval", "assignees": {"groups": ["reviewers"]},
             "instructions": "Pay out 14 invoices (18,230.50 EUR) to 3 vendors."},
            {"key": "pay", "type": "python", "action": "core.echo", "args": {"paid": True}},
        ],
    })
    start(other, admin)
    return {"flow": flow, "failed_v1": Run.objects.get(pk=failed_v1.pk),
            "failed": Run.objects.get(pk=failed.pk), "retry": Run.objects.get(pk=retry.pk),
            "running": Run.objects.get(pk=running.pk), "other": other}
