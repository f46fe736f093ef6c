"""Reading resources: look one up by its id or its `res://` URI."""

from __future__ import annotations

import uuid

from resources.models import Resource
from workflows.errors import NotFound

URI_SCHEME = "res://"


def resource_id_from_ref(ref: str) -> uuid.UUID:
    """The UUID in `ref`: a bare UUID or `res://<uuid>` (also `res:/<uuid>`, which some clients
    make of a path). Raises NotFound when it is neither."""
    text = (ref or "").strip()
    for prefix in (URI_SCHEME, "res:/"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    try:
        return uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        raise NotFound(f"no resource {ref!r}: expected res://<uuid> or a uuid") from None


def resource_from_uri(uri: str) -> Resource:
    """The resource `uri` (`res://<uuid>` or a bare uuid) names; raises NotFound."""
    resource_id = resource_id_from_ref(uri)
    try:
        return Resource.objects.get(pk=resource_id)
    except Resource.DoesNotExist:
        raise NotFound(f"no resource res://{resource_id}") from None


PREVIEW_BYTES = 4096
TEXT_PREVIEW_TYPES = ("text/", "application/json", "application/xml", "application/x-ndjson")


def resource_preview(resource: Resource, *, max_bytes: int = PREVIEW_BYTES) -> str | None:
    """The first `max_bytes` of a text resource, decoded (undecodable bytes as U+FFFD, NUL as
    ␀), with "…" when there is more; None for other content types or a missing file."""
    base = (resource.content_type or "").split(";", 1)[0].strip().lower()
    if not (base.startswith(TEXT_PREVIEW_TYPES) or base.endswith("+json")):
        return None
    try:
        with resource.file.open("rb") as handle:
            head = handle.read(max_bytes)
    except OSError:
        return None
    text = head.decode("utf-8", "replace").replace("\x00", "\u2400")
    return text + ("…" if resource.size > len(head) else "")


def resource_get(*, uri: str) -> Resource | None:
    """The resource `uri` names, or None (unknown or pruned)."""
    try:
        return resource_from_uri(uri)
    except NotFound:
        return None
