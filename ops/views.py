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
    """200 when the database, the broker, the migrations and the sweeper are all fine; else 503
    naming what failed (`failed`) with the details of every check."""
    checks = selectors.readiness()
    failed = [check.name for check in checks if not check.ok]
    body = {
        "status": "ok" if not failed else "unavailable",
        "failed": failed,
        "checks": {check.name: {"ok": check.ok, **check.detail} for check in checks},
    }
    return JsonResponse(body, status=200 if not failed else 503)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text, only for `Authorization: Bearer $WF_METRICS_TOKEN`: off (404) without a
    token configured, 401 without credentials, 403 with the wrong ones."""
    token = settings.WF_METRICS_TOKEN
    if not token:
        return JsonResponse({"error": {"code": "not_found", "message": "metrics are off"}},
                            status=404)
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        response = JsonResponse(
            {"error": {"code": "unauthorized", "message": "send Authorization: Bearer TOKEN"}},
            status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        return JsonResponse({"error": {"code": "forbidden", "message": "wrong metrics token"}},
                            status=403)
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
