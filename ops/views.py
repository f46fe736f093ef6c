"""/healthz, /readyz and /metrics: thin edges over ops.selectors and ops.metrics."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ops import selectors
from ops.metrics import metrics_text


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and answers; touches nothing else (a liveness probe)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, the broker, the migrations and the sweeper are all fine; else 503.

    The body is `{"ready": true|false}` and nothing more, unless the request carries
    `Authorization: Bearer $WF_METRICS_TOKEN`: then it also names what failed (`failed`) and
    the details of every check. The details name the database vendor, pending migrations and
    the broker's host and port, which are not for whoever can reach the port. A missing or
    wrong token changes only the body, never the status: probes keep working without one."""
    checks = selectors.readiness()
    failed = [check.name for check in checks if not check.ok]
    body: dict = {"ready": not failed}
    if _metrics_token_presented(request) is True:
        body.update({
            "status": "ok" if not failed else "unavailable",
            "failed": failed,
            "checks": {check.name: {"ok": check.ok, **check.detail} for check in checks},
        })
    return JsonResponse(body, status=200 if not failed else 503)


def _metrics_token_presented(request: HttpRequest) -> bool | None:
    """True: the request carries `Authorization: Bearer $WF_METRICS_TOKEN` (compared in constant
    time); False: it carries another; None: it carries no bearer token, or none is configured."""
    token = settings.WF_METRICS_TOKEN
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer" or not presented.strip():
        return None
    return hmac.compare_digest(presented.strip().encode(), token.encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text, only for `Authorization: Bearer $WF_METRICS_TOKEN`: off (404) without a
    token configured, 401 without credentials, 403 with the wrong ones."""
    if not settings.WF_METRICS_TOKEN:
        return JsonResponse({"error": {"code": "not_found", "message": "metrics are off"}},
                            status=404)
    presented = _metrics_token_presented(request)
    if presented is None:
        response = JsonResponse(
            {"error": {"code": "unauthorized", "message": "send Authorization: Bearer TOKEN"}},
            status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not presented:
        return JsonResponse({"error": {"code": "forbidden", "message": "wrong metrics token"}},
                            status=403)
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
