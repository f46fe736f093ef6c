"""Counts refused webhook deliveries and callback POSTs (any 4xx answer) for /metrics.

A middleware rather than code in the endpoints, so the refusals made before the endpoint runs
(throttle 429, body too large 413, wrong method 405) count too."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ops.services import refusal_record

logger = logging.getLogger(__name__)

INBOUND = (("/api/v1/hooks/", "webhook"), ("/api/v1/callbacks/", "callback"))
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def _error_code(response: HttpResponse) -> str:
    """The API error's `code` when the answer is the API's error shape; else the status."""
    if not response.streaming and response.get("Content-Type", "").startswith(
            "application/json"):
        try:
            code = json.loads(response.content)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        if isinstance(code, str) and _CODE.match(code):
            return code
    return str(response.status_code)


class InboundRefusalMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if 400 <= response.status_code < 500:
            endpoint = next((name for prefix, name in INBOUND
                             if request.path.startswith(prefix)), None)
            if endpoint is not None:
                try:
                    refusal_record(endpoint=endpoint, code=_error_code(response))
                except Exception:  # counting must never turn a refusal into a 500
                    logger.exception("could not count a refused %s request", endpoint)
        return response
