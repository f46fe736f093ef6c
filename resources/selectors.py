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
