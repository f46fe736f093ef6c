"""The NinjaAPI instance: routers, authentication, request guards and the error handler."""

from __future__ import annotations

import json
from functools import partial

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError
from ninja.operation import PathView

from approvals import api as approvals
from workflows.api import (
    agents,
    connections,
    definition_schema,
    deliveries,
    flows,
    inbound,
    meta,
    resources,
    runs,
)
from workflows.api.auth import BearerTokenAuth, SessionAuth
from workflows.api.errors import (
    MAX_BODY_BYTES,
    error_body,
    handle_exception,
    inbound_max_bytes,
    request_guard,
)
from workflows.api.openapi import finish_document
from workflows.api.rendering import RENDERER

DESCRIPTION = """\
The workflow platform's HTTP API. Authenticate with `Authorization: Bearer <token>` (create one
in the admin or with `python manage.py create_api_token USERNAME`) or the browser session (with
CSRF). Errors are `{"error": {"code", "message", "details": [{path, message}]}}`; lists are
`{"items": [...], "next_cursor": null | "..."}` (pass `cursor=` for the next page). Times are
ISO 8601 UTC; durations are `*_ms`. See docs/api.md.
"""

class WorkflowsAPI(NinjaAPI):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._openapi_documents: dict[str, str] = {}  # path prefix -> the finished document

    def get_openapi_operation_id(self, operation) -> str:
        """For a route without `operation_id=`: the view function's name (workflows.api.openapi
        says why every route should pass one)."""
        return operation.view_func.__name__

    def get_openapi_schema(self, *, path_prefix=None, path_params=None) -> dict:
        """The document, made valid OpenAPI 3.1 (workflows.api.openapi.finish_document), as a
        plain JSON dict (status codes are strings). Built once per process and path prefix: the
        routes are fixed at import, and building it takes seconds (generators fetching it
        with a short timeout gave up). Each caller gets its own copy."""
        if path_prefix is None:
            path_prefix = self.get_root_path(path_params or {})
        text = self._openapi_documents.get(path_prefix)
        if text is None:
            document = finish_document(super().get_openapi_schema(path_prefix=path_prefix))
            text = self._openapi_documents[path_prefix] = json.dumps(document)
        return json.loads(text)


api = WorkflowsAPI(
    title="Workflows API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api-v1",
    docs_url="/docs",
    auth=[BearerTokenAuth(), SessionAuth()],
    renderer=RENDERER,
)

for handled in (Exception, Http404, HttpError, ValidationError):
    api.add_exception_handler(handled, partial(handle_exception, api=api))

_guard = request_guard(max_bytes=MAX_BODY_BYTES, json_body=True)
for module, prefix in (
    (flows, "/flows"), (runs, "/runs"), (approvals, "/approvals"), (resources, "/resources"),
    (connections, "/connections"), (definition_schema, "/schema"), (meta, ""),
    (deliveries, "/flows"),
):
    module.router.add_decorator(_guard, mode="view")
    api.add_router(prefix, module.router)

inbound.router.add_decorator(
    request_guard(max_bytes=inbound_max_bytes, json_body=False), mode="view"
)
api.add_router("", inbound.router)
api.add_router("", agents.router)


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Unknown paths under /api/v1/ answer in the API's error shape, for every method: exempt
    from CSRF (it changes nothing), or an unsafe method would get Django's HTML 403."""
    return JsonResponse(error_body("not_found", f"no API endpoint at {request.path}"),
                        status=404)


def _method_not_allowed(path_view: PathView) -> JsonResponse:
    """A wrong method answers in the API's error shape too (django-ninja has no hook for its
    405, hence this override of PathView._not_allowed; this project has one NinjaAPI)."""
    methods = sorted({method for op in path_view.operations for method in op.methods})
    response = JsonResponse(
        error_body("method_not_allowed", f"this endpoint accepts {', '.join(methods)}"),
        status=405,
    )
    response["Allow"] = ", ".join(methods)
    return response


PathView._not_allowed = _method_not_allowed
