"""The signed download view: the one way resource bytes leave the platform over HTTP.

Downloads stream from Django storage in 64 KiB chunks with a Content-Length, and honour a single
`Range: bytes=…` (206 with Content-Range; 416 when it cannot be satisfied; several ranges are
answered with the whole content, as RFC 9110 allows). `If-Range` is compared with the ETag, which
is the resource's SHA-256. The file name comes from `header_safe` and the content type from
`served_content_type` (a stored type that is not a well-formed media type is served as
octet-stream), so values holding CR/LF (stored before names were cleaned) cannot break the
response or make a browser render what it should download.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from resources.models import Resource
from resources.services import (
    DownloadExpired,
    DownloadForged,
    header_safe,
    resource_verify_download,
)
from workflows.errors import NotFound

CHUNK_BYTES = 64 * 1024
# type/subtype with optional parameters, nothing else: a content type that does not match (it
# held CR/LF or other junk) is served as bytes, never as something a browser might render.
_CONTENT_TYPE = re.compile(
    r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+"
    r"(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=(\"[^\"\x00-\x1f]*\"|[A-Za-z0-9!#$&^_.+-]+))*$")


def served_content_type(content_type: str | None) -> str:
    """The Content-Type a download is served with: the stored one when it is a well-formed
    media type, else application/octet-stream."""
    text = (content_type or "").strip()
    return text if _CONTENT_TYPE.fullmatch(text) else "application/octet-stream"


# ASCII digits only (`\d` would take "²" or "٣", which int() refuses or reads as another
# number) and at most 18 of them: a position past a 64-bit size is one no content reaches.
_RANGE = re.compile(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", re.IGNORECASE | re.ASCII)
MAX_POSITION_DIGITS = 18


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "details": []}},
                        status=status)


@require_GET
def download(request: HttpRequest, signed: str) -> HttpResponse:
    """Stream the resource a signed, unexpired link names: 403 forged, 410 expired, 404 when the
    resource (or its content) no longer exists."""
    try:
        resource = resource_verify_download(signed)
    except (DownloadExpired, DownloadForged, NotFound) as exc:
        return _error(exc.http_status, exc.code, str(exc))
    return resource_response(request, resource)


def parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """(first, last) byte positions, inclusive, of a single `bytes=` range; None when the header
    is absent, names several ranges or is not a byte range (serve everything); False when it
    cannot be satisfied (416), which includes a position of more than 18 digits."""
    if not header or "," in header:
        return None
    match = _RANGE.fullmatch(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if max(len(first_text), len(last_text)) > MAX_POSITION_DIGITS:
        return False  # int() refuses 4,300 digits; no size comes near 10**18 anyway
    if not first_text:  # the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return False
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        return False
    return first, min(last, size - 1)


def _stream(handle: IO[bytes], remaining: int) -> Iterator[bytes]:
    try:
        while remaining > 0:
            data = handle.read(min(CHUNK_BYTES, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        handle.close()


def resource_response(request: HttpRequest, resource: Resource, *,
                      as_attachment: bool = True) -> HttpResponse:
    """The resource's bytes as a streamed response (used by the signed link and the admin)."""
    etag = f'"{resource.sha256}"'
    wanted = parse_range(request.headers.get("Range", ""), resource.size)
    if_range = request.headers.get("If-Range")
    if if_range and if_range.strip() != etag:
        wanted = None
    if wanted is False:
        response = _error(416, "range_not_satisfiable",
                          f"the range is outside the content ({resource.size} bytes)")
        response["Content-Range"] = f"bytes */{resource.size}"
        return response
    try:
        handle = resource.file.open("rb")
    except (FileNotFoundError, OSError, ValueError):
        return _error(404, "not_found", "the resource's content is gone")
    if wanted:
        first, last = wanted
        handle.seek(first)
        length = last - first + 1
        response = StreamingHttpResponse(_stream(handle, length), status=206)
        response["Content-Range"] = f"bytes {first}-{last}/{resource.size}"
    else:
        length = resource.size
        response = StreamingHttpResponse(_stream(handle, length))
    response["Content-Length"] = str(length)
    response["Content-Type"] = served_content_type(resource.content_type)
    response["Content-Disposition"] = content_disposition_header(
        as_attachment, header_safe(resource.name) or str(resource.pk))
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["X-Content-SHA256"] = resource.sha256
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
