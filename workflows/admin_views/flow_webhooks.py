"""The flow page's webhook parts: the Deliveries section (`data-section="deliveries"`), the
sender's secret form (set, or rotate and show once) and redelivery. Each action calls the same
service as the API (`webhook_secret_set`, `webhook_secret_rotate`, `delivery_redeliver`);
operators only, enforced by the services; CSRF like every admin POST."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from workflows import selectors
from workflows.admin_views.edge import (
    admin_context,
    call_service,
    flow_url,
    get_flow,
    positive_int,
    run_url,
)
from workflows.errors import NotFound
from workflows.models import Flow
from workflows.services.deliveries import delivery_redeliver, webhook_trigger
from workflows.services.webhooks import webhook_secret_rotate, webhook_secret_set, webhook_url

DELIVERY_ROWS = 20


def deliveries_context(flow: Flow) -> dict[str, Any]:
    """The newest deliveries (one query) and what the webhook card shows."""
    found = webhook_trigger(flow=flow)
    trigger = found[1] if found else {}
    return {
        "deliveries": list(selectors.flow_deliveries(flow=flow)[:DELIVERY_ROWS]),
        "webhook": {"enabled": found is not None, "url": webhook_url(flow=flow),
                    "verify": trigger.get("verify") or "signature",
                    "events": trigger.get("events") or [], "when": trigger.get("when") or ""},
    }


@require_POST
def flow_webhook_secret_view(request: HttpRequest, model_admin: Any,
                             flow_id: Any) -> HttpResponse:
    """`action=set` with `secret` (the sender's), or `action=rotate` (a random one, shown on
    the page this once; the page is not cached and the secret is in no message or URL)."""
    flow = get_flow(request, model_admin, flow_id)
    back = flow_url(flow.pk) + "#webhook"
    if request.POST.get("action") == "rotate":
        secret, refusal = call_service(request, model_admin, webhook_secret_rotate, back=back,
                                       flow=flow, actor=request.user)
        if refusal:
            return refusal
        context = admin_context(request, model_admin, "New webhook secret", flow=flow,
                                secret=secret, back=back, url=webhook_url(flow=flow))
        response = TemplateResponse(request, "workflows/webhook_secret.html", context)
        response["Cache-Control"] = "no-store"
        return response
    _, refusal = call_service(request, model_admin, webhook_secret_set, back=back, flow=flow,
                              secret=request.POST.get("secret", ""), actor=request.user)
    if refusal:
        return refusal
    messages.success(request, "Webhook secret set. It is not shown again.")
    return HttpResponseRedirect(back)


@require_POST
def delivery_redeliver_view(request: HttpRequest, model_admin: Any,
                            flow_id: Any) -> HttpResponse:
    flow = get_flow(request, model_admin, flow_id)
    back = flow_url(flow.pk) + "#deliveries"
    number = positive_int(request.POST.get("delivery"))
    try:
        delivery = selectors.flow_delivery(flow=flow, delivery_id=number or 0)
    except NotFound as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(back)
    run, refusal = call_service(request, model_admin, delivery_redeliver, back=back, flow=flow,
                                delivery=delivery, actor=request.user)
    if refusal:
        return refusal
    messages.success(request, f"Run {run.pk} started from delivery {delivery.pk}.")
    return HttpResponseRedirect(run_url(run.pk))
