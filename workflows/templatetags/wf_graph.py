"""The flow graph as server-rendered SVG (layout: workflows/definitions/layout.py).

- `{% flow_graph definition %}`: the steps and their `needs`; with `statuses` ({key: status})
  each node carries `data-status` and its colour, and with `run_id` a click opens that run's
  step panel (the URL the run matrix cells use, into `#step-panel`, through htmx).
- `{% run_graph run step_rows %}`: the run page's graph, from what its live part has loaded.

Built as one string (stdlib escaping), like the matrix cells: a 30-step graph is a few hundred
elements. No script of its own: htmx reads the `hx-get` attributes on the nodes.
"""

from __future__ import annotations

from html import escape
from typing import Any

from django import template
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from workflows.definitions.layout import NODE_HEIGHT, NODE_WIDTH, graph_layout
from workflows.templatetags.wf_render import STATUS_LABELS

register = template.Library()

MAX_LABEL = 20


def _label(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


MIN_SCALE = 0.8


def render_graph(definition: dict[str, Any], *, statuses: dict[str, str] | None = None,
                 run_id: int | None = None, label: str = "Flow graph",
                 instances: dict[str, dict[str, Any]] | None = None) -> SafeString:
    """`instances`: {step key: {done, total}} of the run's for_each steps, shown on their
    nodes; a for_each step's node is drawn as a stack whatever the run."""
    layout = graph_layout(definition)
    fan_out = {s.get("key") for s in definition.get("steps", [])
               if isinstance(s, dict) and s.get("for_each")}
    if not layout.nodes:
        return mark_safe('<p class="wf-muted">No steps.</p>')
    panel = reverse("admin:workflows_run_step", args=[run_id, "__key__"]) if run_id else None
    width, height = round(layout.width), round(layout.height)
    parts = [
        f'<svg class="wf-graph" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        # Scaled down to fit its column (admin.css: max-width 100%), but never below
        # MIN_SCALE of its size, where it scrolls instead: the last step is not cut off at
        # laptop width (issue 24) and the labels stay readable on a long flow.
        f'style="min-width: {round(width * MIN_SCALE)}px" '
        f'aria-label="{escape(label)}" data-steps="{len(layout.nodes)}" '
        f'data-layers="{layout.layers}">',
        '<defs><marker id="wf-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" class="gr-arrow"/></marker>'
        '</defs><g class="gr-edges">',
    ]
    for edge in layout.edges:
        parts.append(f'<path class="gr-edge" d="{edge.path}" marker-end="url(#wf-arrow)" '
                     f'data-from="{escape(edge.source)}" data-to="{escape(edge.target)}"/>')
    parts.append('</g><g class="gr-nodes">')
    for node in layout.nodes:
        key = escape(node.key)
        status = (statuses or {}).get(node.key)
        title = f"{node.key} ({node.type})"
        attrs = f'class="gr-node st-{escape(status or "none")}" data-step="{key}"'
        if statuses is not None:
            attrs += f' data-status="{escape(status or "absent")}"'
            title += f": {STATUS_LABELS.get(status, status or 'not in this run')}"
        if panel and status:
            url = panel.replace("__key__", node.key)
            attrs += (f' hx-get="{escape(url)}" hx-target="#step-panel" hx-swap="innerHTML" '
                      f'tabindex="0" role="button" aria-label="{escape(title)}"')
        stack = ""
        type_text = node.type
        if node.key in fan_out:
            attrs += ' data-for-each="true"'
            stack = (f'<rect class="gr-stack" x="4" y="-4" width="{NODE_WIDTH}" '
                     f'height="{NODE_HEIGHT}" rx="6"/>')
            counts = (instances or {}).get(node.key)
            type_text = f"{node.type} ×each"
            if counts:
                attrs += f' data-instances="{counts["total"]}" data-instances-done="{counts["done"]}"'
                type_text = f"{node.type} · {counts['done']:,}/{counts['total']:,}"
        parts.append(
            f'<g {attrs} transform="translate({node.x:.1f},{node.y:.1f})">'
            f'<title>{escape(title)}</title>{stack}'
            f'<rect width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"/>'
            f'<circle class="gr-dot" cx="14" cy="{NODE_HEIGHT / 2:.0f}" r="5"/>'
            f'<text x="26" y="17" class="gr-key">{escape(_label(node.key, MAX_LABEL))}</text>'
            f'<text x="26" y="31" class="gr-type">{escape(_label(type_text, MAX_LABEL))}</text>'
            f'</g>'
        )
    parts.append("</g></svg>")
    return mark_safe("".join(parts))


@register.simple_tag
def flow_graph(definition: dict[str, Any], statuses: dict[str, str] | None = None,
               run_id: int | None = None) -> SafeString:
    return render_graph(definition or {}, statuses=statuses, run_id=run_id)


@register.inclusion_tag("workflows/_graph.html")
def run_graph(run: Any, step_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run page's graph section: the pinned definition, coloured by the step runs."""
    statuses = {row["step"].key: row["step"].status for row in step_rows}
    return {
        "graph": render_graph(run.definition, statuses=statuses, run_id=run.pk,
                              label=f"Steps of run {run.pk}"),
        "caption": "steps and what they need; click a step for its details",
    }
