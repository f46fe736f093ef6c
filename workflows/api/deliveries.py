"""/flows/{slug}/deliveries: the webhook delivery log and redelivery. Thin: each calls one
selector or service."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Status

from workflows.api.documents import delivery_document, run_document
from workflows.api.errors import invalid
from workflows.api.lookups import can_view_runs, get_flow, get_flow_row
from workflows.api.openapi import errors
from workflows.api.pagination import keyset_page
from workflows.api.params import Cursor, FlowSlug, Limit
from workflows.api.schemas import DeliveryPage, RunOut
from workflows.selectors import flow_deliveries, flow_delivery
from workflows.services.deliveries import delivery_redeliver
from workflows.states import DeliveryOutcome

router = Router(tags=["webhooks"])

@router.get("/{slug}/deliveries", response={200: DeliveryPage, **errors()},
            summary="The flow's webhook deliveries, newest first",
            operation_id="deliveries_list")
def flows_deliveries(request: HttpRequest, slug: FlowSlug, outcome: str | None = None,
                     cursor: Cursor = None, limit: Limit = 50):
    can_view_runs(request.auth)
    if outcome is not None and outcome not in DeliveryOutcome.values:
        raise invalid("outcome", f"must be one of {', '.join(DeliveryOutcome.values)}")
    flow = get_flow_row(slug)
    rows, next_cursor = keyset_page(flow_deliveries(flow=flow, outcome=outcome),
                                    cursor=cursor, limit=limit)
    return {"items": [delivery_document(row) for row in rows], "next_cursor": next_cursor}


@router.post("/{slug}/deliveries/{delivery_id}/redeliver",
             response={201: RunOut, **errors(409)},
             summary="Start a new run of the live release from a stored delivery (operators)",
             operation_id="deliveries_redeliver")
def flows_redeliver(request: HttpRequest, slug: FlowSlug, delivery_id: int):
    flow = get_flow(slug)
    delivery = flow_delivery(flow=flow, delivery_id=delivery_id)
    run = delivery_redeliver(flow=flow, delivery=delivery, actor=request.auth)
    return Status(201, run_document(run))
