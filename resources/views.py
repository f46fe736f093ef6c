"""The signed download view: the one way resource bytes leave the platform over HTTP."""

from __future__ import annotations

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from resources.services import DownloadExpired, DownloadForged, resource_verify_download


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "details": []}},
                        status=status)


@require_GET
def download(request: HttpRequest, signed: str) -> HttpResponse:
    """Stream the resource a signed, unexpired link names: 403 forged, 410 expired."""
    try:
        resource = resource_verify_download(signed)
    except (DownloadExpired, DownloadForged) as exc:
        return _error(exc.http_status, exc.code, str(exc))
    try:
        handle = resource.file.open("rb")
    except (FileNotFoundError, OSError):
        return _error(404, "not_found", "the resource's content is gone")
    response = FileResponse(
        handle, as_attachment=True, filename=resource.name or str(resource.pk),
        content_type=resource.content_type,
    )
    response["X-Content-SHA256"] = resource.sha256
    response["Cache-Control"] = "private, no-store"
    return response
