"""The flow page's graph: the live definition (else the draft), coloured by the newest run,
whose step panels its nodes open; and the draft's own graph under the draft editor."""

from __future__ import annotations

from typing import Any

from workflows import selectors
from workflows.models import Flow, FlowVersion
from workflows.templatetags.wf_graph import render_graph


def flow_graph_context(flow: Flow, *, live: FlowVersion | None, draft: FlowVersion | None,
                       newest: tuple[int | None, dict[str, str]] | None = None,
                       instances: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """`newest`: the newest run's id and step statuses when the caller has them already (the
    matrix of the newest runs); otherwise two queries find them."""
    shown = live or draft
    run_id, statuses = newest if newest is not None else \
        selectors.flow_latest_run_statuses(flow=flow)
    caption = "steps and what they need"
    if run_id is not None:
        caption += f"; coloured by run #{run_id}, click a step for its details there"
    return {
        "graph": render_graph(shown.definition, statuses=statuses if run_id else None,
                              run_id=run_id, label=f"Steps of {flow.name}",
                              instances=instances if run_id else None)
        if shown is not None else None,
        "graph_caption": caption,
        "draft_graph": render_graph(draft.definition, label="Steps of the draft")
        if draft is not None else None,
    }
