"""The signed download view: the one way resource bytes leave the platform over HTTP."""

from __future__ import annotations

import re

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from resources.services import DownloadExpired, DownloadForged, resource_verify_download

# A media type as RFC 9110 writes it (type/subtype; parameters), nothing that could end a header.
_CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+(\s*;\s*[\w.+-]+=(\"[^\"\x00-\x1f\x7f]*\"|[\w.+-]+))*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def header_safe_filename(name: str, fallback: str) -> str:
    """The download's file name with control characters (CR, LF, NUL…) dropped: a resource's
    name comes from a step or a remote server and must not make the response a 500."""
    return _CONTROL.sub("", name or "").strip() or fallback


def header_safe_content_type(content_type: str) -> str:
    """The stored content type when it is a plain media type; application/octet-stream
    otherwise (a value with CR/LF would make the response a 500)."""
    value = (content_type or "").strip()
    return value if _CONTENT_TYPE.match(value) else "application/octet-stream"


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
        handle, as_attachment=True,
        filename=header_safe_filename(resource.name, str(resource.pk)),
        content_type=header_safe_content_type(resource.content_type),
    )
    response["X-Content-SHA256"] = resource.sha256
    response["Cache-Control"] = "private, no-store"
    return response
