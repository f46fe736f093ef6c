"""The admin's small renderers, as template filters (`{% load wf_render %}`) that the page
modules import too: status labels, dots and badges, durations and ages, times, and JSON as
folding HTML with `res://` references linked to the resource.

    {{ step.status|status_label }}   {{ run.status|status_badge }}   {{ step.output|json_html }}
    {{ run.created_at|when }}   {{ event.at|when:"seconds" }}   title="{{ x|when_text }}"

Times: pages and fragments show every time one way, `when`: in the reader's time zone (Django's
current time zone: the `wf_tz` cookie the admin script sets from the browser, else
settings.TIME_ZONE; see workflows/middleware.py) with its abbreviation, "2026-11-30 14:05 CET",
in a <time> element whose `datetime` is ISO 8601 UTC and whose title says how long ago (or how
soon). API documents stay ISO 8601 UTC and do not use these.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from django import template
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import dateformat, timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil

from ops.tracing import derived_id
from resources.payloads import is_descriptor, is_json_type, value_load
from resources.selectors import resource_get, resource_preview
from resources.services import DEFAULT_EXPIRES_IN, resource_signed_path
from workflows.diffs import MAX_DIFF_BYTES, diff_parse, is_diff_content_type, looks_like_diff
from workflows.errors import WorkflowError
from workflows.models import Run

register = template.Library()

FOLD_STRING_CHARS = 160
FOLD_CONTAINER_ITEMS = 12
JSON_MAX_STRING_CHARS = 50_000
# Containers nested deeper than this render as a placeholder: a stored output may nest ~900
# levels (what the JSON parser accepts), which would exhaust the recursion limit here.
JSON_MAX_DEPTH = 40
# A list or an object longer than this shows its first items and how many more: the run page
# of a for_each over 10,000 items rendered every item of its input (80% of the page's time).
JSON_MAX_ITEMS = 200
# How the preview of a large JSON string holding a diff starts (the JSON of the string).
DIFF_PREVIEWS = ('"diff --git ', '"--- ')
RES_URI = re.compile(r"^res://([0-9a-fA-F-]{32,36})$")

STATUS_LABELS = {
    "waiting_for_approval": "waiting for approval",
    "not_started": "not started",
}


@register.filter
def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


@register.filter
def duration_label(ms: int | None) -> str:
    """850 ms, 1.2 s, 3 m 05 s, 2 h 04 m."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@register.filter
def since(when: datetime | None, depth: int = 1) -> str:
    """How long ago, for people: "just now" under a minute, else "3 minutes"."""
    if when is None:
        return ""
    if (timezone.now() - when).total_seconds() < 60:
        return "less than a minute"
    return timesince(when, depth=depth)


@register.filter
def ago(when: datetime | None) -> str:
    if when is None:
        return ""
    text = since(when)
    return "just now" if text == "less than a minute" else text + " ago"


TIME_FORMATS = {"minutes": "Y-m-d H:i T", "seconds": "Y-m-d H:i:s T"}


def local_text(when: datetime, precision: str = "minutes") -> str:
    """"2026-11-30 14:05 CET": the reader's time zone (the current one) with its abbreviation."""
    local = timezone.localtime(when) if timezone.is_aware(when) else when
    return dateformat.format(local, TIME_FORMATS.get(precision, TIME_FORMATS["minutes"]))


def relative(when: datetime) -> str:
    """"3 hours ago", "in 2 days", "just now" (within a minute either way)."""
    delta = (timezone.now() - when).total_seconds()
    if abs(delta) < 60:
        return "just now"
    if delta > 0:
        return timesince(when, depth=2) + " ago"
    return "in " + timeuntil(when, depth=2)


def iso_utc(when: datetime) -> str:
    """ISO 8601 in UTC with a Z, as the API writes times."""
    if timezone.is_aware(when):
        when = when.astimezone(UTC)
    return when.isoformat().replace("+00:00", "Z")


@register.filter
def when(value: datetime | None, precision: str = "minutes") -> SafeString | str:
    """A time as pages show it: `<time datetime="ISO UTC" title="3 hours ago">2026-11-30 14:05
    CET</time>`; `precision` "seconds" adds the seconds. Empty for None."""
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    return format_html('<time datetime="{}" title="{}">{}</time>',
                       iso_utc(value), relative(value), local_text(value, precision))


@register.filter
def when_text(value: datetime | None, precision: str = "minutes") -> str:
    """The same time as plain text for attributes and messages: "2026-11-30 14:05 CET (3 hours
    ago)"."""
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    return f"{local_text(value, precision)} ({relative(value)})"


@register.filter
def status_dot(status: str, *, title: str = "") -> SafeString:
    return format_html(
        '<span class="wf-dot st-{}" title="{}"></span>', status, title or status_label(status)
    )


TRIGGER_SOURCES = (("retry", "retry_of_id"), ("replay", "replay_of_id"),
                   ("rerun", "rerun_of_id"))


_DELIVERY = Run._meta.get_field("trigger_delivery")


@register.filter
def trigger_label(run: Any) -> str:
    """How a run was started: "retry of #10", "replay of #11", "rerun of #12", "webhook:
    pull_request" (the event its delivery named, when the page joined the delivery: never a
    query per row), else its trigger kind ("schedule", "webhook", "manual"). Pages name the
    actor beside it only when it is not the kind again (`trigger_actor_shown`: a run started by
    the system has its trigger kind as actor, which read "schedule schedule")."""
    kind = run.trigger_kind
    for name, attr in TRIGGER_SOURCES:
        if kind == name and getattr(run, attr, None):
            return f"{name} of #{getattr(run, attr)}"
    if getattr(run, "trigger_delivery_id", None) and _DELIVERY.is_cached(run):
        event = run.trigger_delivery.event
        if event:
            return f"{kind}: {event}"
    return kind


@register.filter
def trigger_actor_shown(run: Any) -> str:
    """The trigger's actor when it is someone, else "" (never the trigger kind again)."""
    actor = (run.trigger_actor or "").strip()
    return "" if actor == run.trigger_kind else actor


@register.filter
def status_badge(status: str) -> SafeString:
    return format_html(
        '<span class="wf-badge st-{}"><span class="wf-dot st-{}"></span>{}</span>',
        status, status, status_label(status),
    )


@register.filter
def resource_links(resource_id: str) -> SafeString:
    """A `res://` reference as links to the resource's admin page and its download."""
    try:
        page = reverse("admin:resources_resource_change", args=[resource_id])
        download = reverse("admin:resources_resource_download", args=[resource_id])
    except NoReverseMatch:
        return format_html('<span class="j-str">"res://{}"</span>', resource_id)
    return format_html(
        '<span class="j-str">"<a class="j-res" href="{}">res://{}</a>"</span> '
        '<a class="j-download" href="{}" title="Download">&#x2B07;</a>',
        page, resource_id, download,
    )


@register.filter
def json_html(value: Any) -> SafeString:
    """Pretty JSON as HTML: long strings and big objects fold into <details>, `res://`
    references link to the resource. Strings longer than JSON_MAX_STRING_CHARS are cut, and
    containers nested deeper than JSON_MAX_DEPTH are shown as a placeholder (the value itself is
    kept; the API returns it whole)."""
    if value is None:
        return mark_safe('<div class="wf-json"><span class="j-null">null</span></div>')
    return mark_safe('<div class="wf-json">' + _json_node(value, 0) + "</div>")


@register.filter
def as_diff(value: Any) -> SafeString | str:
    """A unified diff as files, hunks and coloured lines (workflows/_diff.html: the template
    escapes every line, a diff being untrusted text); "" for anything that is not one, so a
    template can fall back: `{% with d=text|as_diff %}{% if d %}{{ d }}{% else %}…`."""
    diff = diff_parse(value) if looks_like_diff(value) else None
    return "" if diff is None else mark_safe(
        render_to_string("workflows/_diff.html", {"diff": diff}).strip())


def _resource_diff(resource: Any, preview: str | None) -> SafeString | None:
    """The diff a resource holds, rendered: a `text/x-diff` resource, or a JSON string kept as a
    resource because it was large (its preview starts like a diff). None for anything else, or
    one larger than MAX_DIFF_BYTES (it stays a download)."""
    if resource.size > MAX_DIFF_BYTES:
        return None
    if is_diff_content_type(resource.content_type):
        try:
            with resource.file.open("rb") as handle:
                text = handle.read(MAX_DIFF_BYTES).decode("utf-8", "replace")
        except OSError:
            return None
    elif is_json_type(resource.content_type) and (preview or "").startswith(DIFF_PREVIEWS):
        try:
            text = value_load(resource.uri, max_bytes=MAX_DIFF_BYTES)
        except (WorkflowError, ValueError, OSError):
            return None
    else:
        return None
    return as_diff(text.replace("\x00", "\u2400") if isinstance(text, str) else None) or None


def _json_scalar(value: Any) -> str:
    if value is None:
        return '<span class="j-null">null</span>'
    if isinstance(value, bool):
        return f'<span class="j-bool">{"true" if value else "false"}</span>'
    if isinstance(value, int | float):
        return f'<span class="j-num">{escape(json.dumps(value))}</span>'
    text = str(value)
    match = RES_URI.match(text)
    if match:
        return str(resource_links(match.group(1)))
    rendered = as_diff(text)
    if rendered:
        return str(rendered)
    cut = ""
    if len(text) > JSON_MAX_STRING_CHARS:
        cut = f" … ({len(text):,} characters; the API has the whole value)"
        text = text[:JSON_MAX_STRING_CHARS]
    encoded = escape(json.dumps(text, ensure_ascii=False))
    if len(text) > FOLD_STRING_CHARS or "\n" in text.strip():
        preview = escape(json.dumps(text[:60].split("\n")[0], ensure_ascii=False)[:-1] + "…\"")
        return (f'<details class="j-fold"><summary><span class="j-str">{preview}</span> '
                f'<span class="j-meta">{len(text):,} chars</span></summary>'
                f'<span class="j-str j-long">{encoded}</span>'
                f'<span class="j-meta">{escape(cut)}</span></details>')
    return f'<span class="j-str">{encoded}</span>{escape(cut)}'


@register.filter
def resource_card(descriptor: dict[str, Any]) -> SafeString:
    """A value kept as a resource (its descriptor, docs/api.md) as a card: name, size, content
    type, sha256, a signed short-lived download link, and a text preview (first 4 KB) or the
    image inline. One query and, for text, one read of 4 KB."""
    uri = descriptor["$resource"]
    resource = resource_get(uri=uri)
    context: dict[str, Any] = {"d": descriptor, "uri": uri, "resource": resource,
                               "expires_minutes": DEFAULT_EXPIRES_IN // 60}
    if resource is not None:
        context["download"] = resource_signed_path(resource=resource)
        context["image"] = (resource.content_type or "").lower().startswith("image/")
        context["diff"] = (None if context["image"]
                           else _resource_diff(resource, descriptor.get("preview")))
        context["preview"] = (None if context["image"] or context["diff"]
                              else resource_preview(resource))
        try:
            context["page"] = reverse("admin:resources_resource_change", args=[resource.pk])
        except NoReverseMatch:
            context["page"] = ""
    return mark_safe(render_to_string("workflows/_resource_card.html", context))


def _more(count: int, what: str, pad: str) -> list[str]:
    if count <= JSON_MAX_ITEMS:
        return []
    return [f'{pad}<span class="j-meta" data-items-cut>… {count - JSON_MAX_ITEMS:,} more {what} '
            f"({count:,} in all); the API has the whole value</span>"]


def _json_node(value: Any, depth: int) -> str:
    if depth >= JSON_MAX_DEPTH and isinstance(value, dict | list | tuple) and value:
        shape = "{…}" if isinstance(value, dict) else "[…]"
        return (f'<span class="j-meta" data-depth-cut>{shape} nested deeper than '
                f"{JSON_MAX_DEPTH} levels; the API has the whole value</span>")
    if is_descriptor(value):
        return str(resource_card(value))
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = "  " * (depth + 1)
        items = [
            f'{pad}<span class="j-key">{escape(json.dumps(str(k), ensure_ascii=False))}</span>: '
            f"{_json_node(v, depth + 1)}"
            for k, v in islice(value.items(), JSON_MAX_ITEMS)
        ] + _more(len(value), "keys", pad)
        body = "{\n" + ",\n".join(items) + "\n" + "  " * depth + "}"
        if depth > 0 and len(value) > FOLD_CONTAINER_ITEMS:
            return (f'<details class="j-fold"><summary>{{…}} <span class="j-meta">'
                    f"{len(value)} keys</span></summary>{body}</details>")
        return body
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        pad = "  " * (depth + 1)
        items = [pad + _json_node(v, depth + 1) for v in value[:JSON_MAX_ITEMS]] + _more(
            len(value), "items", pad)
        body = "[\n" + ",\n".join(items) + "\n" + "  " * depth + "]"
        if depth > 0 and len(value) > FOLD_CONTAINER_ITEMS:
            return (f'<details class="j-fold"><summary>[…] <span class="j-meta">'
                    f"{len(value)} items</span></summary>{body}</details>")
        return body
    return _json_scalar(value)


@register.filter
def trace_url(run: Any, step: Any = None) -> str:
    """The run's trace in the operators' tracing tool: WF_TRACE_URL with `{trace_id}` (and
    `{span_id}`: the step's span, or the run's) filled in; "" when either is missing."""
    pattern = getattr(settings, "WF_TRACE_URL", "")
    trace_id = getattr(run, "trace_id", "")
    if not pattern or not trace_id or "{trace_id}" not in pattern:
        return ""
    span_id = derived_id(trace_id, "step", step.pk) if step is not None else run.trace_span_id
    return pattern.replace("{trace_id}", trace_id).replace("{span_id}", span_id)
