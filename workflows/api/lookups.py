"""Finding the objects a URL names, and the read permission checks of the API.

Writes are checked by the services; reads are checked here (flows and runs are readable by
holders of workflows.view_flow / workflows.view_run, which every role has, and superusers).
"""

from __future__ import annotations

import re
from typing import Any

from approvals.models import Approval
from approvals.selectors import approvals_queryset
from workflows.document_selectors import (
    flow_row_by_slug,
    flows_queryset,
    run_step,
    runs_queryset,
    runs_with_flow,
)
from workflows.errors import NotFound
from workflows.models import Flow, Run, StepRun
from workflows.permissions import VIEW_FLOW, VIEW_RUN, require_permission

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")
MAX_ID = 2**63 - 1

def can_view_flows(user: Any) -> None:
    require_permission(user, VIEW_FLOW)


def can_view_runs(user: Any) -> None:
    require_permission(user, VIEW_RUN)


def get_flow(slug: str) -> Flow:
    if not SLUG_RE.fullmatch(slug or ""):
        raise NotFound(f"no flow {slug!r}")
    flow = flows_queryset().filter(slug=slug).first()
    if flow is None:
        raise NotFound(f"no flow {slug!r}")
    return flow


def get_flow_row(slug: str) -> Flow:
    """The flow alone (no versions): for commands that only need its row."""
    if not SLUG_RE.fullmatch(slug or ""):
        raise NotFound(f"no flow {slug!r}")
    flow = flow_row_by_slug(slug)
    if flow is None:
        raise NotFound(f"no flow {slug!r}")
    return flow


def get_run(run_id: int, *, with_steps: bool = True) -> Run:
    """The run (with flow and version; with its ordered steps unless `with_steps` is False)."""
    if not 0 < run_id <= MAX_ID:
        raise NotFound(f"no run {run_id}")
    queryset = runs_queryset() if with_steps else runs_with_flow()
    run = queryset.filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


def get_step(run: Run, key: str) -> StepRun:
    step = run_step(run, key)
    if step is None:
        raise NotFound(f"run {run.pk} has no step {key!r}")
    return step


def get_approval(approval_id: int) -> Approval:
    if not 0 < approval_id <= MAX_ID:
        raise NotFound(f"no approval {approval_id}")
    approval = approvals_queryset().filter(pk=approval_id).first()
    if approval is None:
        raise NotFound(f"no approval {approval_id}")
    return approval
