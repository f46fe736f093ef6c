"""A for_each step's instances in the step panel: the summary (counts per status, earliest
start, latest end), a page of 50 instances filterable by status (keyset pages on the item
index: the same queries at 10 or 10,000 instances), and one instance's attempts and log.
Reads go through workflows.instance_selectors; nothing here queries models directly."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from workflows.admin_views.edge import get_step, run_url
from workflows.instance_selectors import (
    SEVERITY,
    instance_attempts,
    instance_get,
    instance_logs,
    instance_summary,
    instances_query,
    run_has_fan_out,
)
from workflows.models import StepRun
from workflows.templatetags.wf_render import duration_label, json_html, status_label

PAGE = 50


def instances_context(step: StepRun) -> dict[str, Any] | None:
    """The panel's instances section (None for a step without for_each)."""
    if not run_has_fan_out(step.run):
        return None
    summary = instance_summary(step)
    if not summary["total"]:
        return None
    base = reverse("admin:workflows_run_step_instances", args=[step.run_id, step.key])
    counts = [{"status": s, "label": status_label(s), "n": summary["by_status"][s],
               "url": f"{base}?{urlencode({'status': s})}"}
              for s in SEVERITY if summary["by_status"].get(s)]
    return {"summary": summary, "counts": counts, "all_url": base,
            **instances_page(step, status=None, after=None)}


def instances_page(step: StepRun, *, status: str | None, after: int | None) -> dict[str, Any]:
    rows = instances_query(step, status=status)
    if after is not None:
        rows = rows.filter(index__gt=after)
    page = list(rows[:PAGE + 1])
    more = len(page) > PAGE
    page = page[:PAGE]
    base = reverse("admin:workflows_run_step_instances", args=[step.run_id, step.key])
    detail = reverse("admin:workflows_run_step_instance", args=[step.run_id, step.key, 0])
    next_url = None
    if more:
        next_url = base + "?" + urlencode({**({"status": status} if status else {}),
                                           "after": page[-1].index})
    return {
        "instance_rows": [{
            "i": i, "duration": duration_label(i.duration_ms),
            "url": detail.replace("/instances/0/", f"/instances/{i.index}/"),
            "error": (i.error or {}).get("message", "") if isinstance(i.error, dict) else "",
        } for i in page],
        "instances_next_url": next_url, "instances_status": status,
    }


def step_instances(request: HttpRequest, model_admin: Any, run_id: Any, key: str) -> HttpResponse:
    """A page of the table (htmx: the filter links and "more")."""
    step = get_step(request, model_admin, run_id, key)
    status = request.GET.get("status") or None
    if status is not None and status not in SEVERITY:
        raise Http404(f"no status {status}")
    after = request.GET.get("after")
    after_index = int(after) if after and after.isdigit() and len(after) < 10 else None
    context = {"step": step, **instances_page(step, status=status, after=after_index)}
    return TemplateResponse(request, "workflows/_step_instance_rows.html", context)


def step_instance(request: HttpRequest, model_admin: Any, run_id: Any, key: str,
                  index: str) -> HttpResponse:
    """One instance: its item, status, output, error, attempts and log."""
    step = get_step(request, model_admin, run_id, key)
    instance = instance_get(step, int(index)) if index.isdigit() and len(index) < 10 else None
    if instance is None:
        raise Http404(f"step {key} has no instance {index}")
    attempts = instance_attempts(instance)
    return TemplateResponse(request, "workflows/_step_instance.html", {
        "step": step, "instance": instance, "item_html": json_html(instance.item),
        "output_html": json_html(instance.output) if instance.output is not None else None,
        "error_html": json_html(instance.error) if instance.error else None,
        "attempts": [{"a": a, "duration": duration_label(a.duration_ms),
                      "error": json_html(a.error) if a.error else None} for a in attempts],
        "log_text": "".join(c.text for c in instance_logs(instance)),
        # An instance of a for_each flow step: the child run it started.
        "child_url": run_url(instance.child_run_id) if instance.child_run_id else "",
    })
