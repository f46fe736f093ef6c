"""/resources: a stored artifact's document with a signed, expiring download URL."""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest
from django.utils import timezone
from ninja import Router

from resources.selectors import resource_from_uri
from resources.services import DEFAULT_EXPIRES_IN, resource_signed_url
from workflows.api.lookups import can_view_runs
from workflows.api.openapi import errors
from workflows.api.schemas import ResourceOut

router = Router(tags=["resources"])


@router.get("/{path:ref}", response={200: ResourceOut, **errors()},
            summary="A resource (by uuid or res://uuid) with a signed download URL",
            operation_id="resources_get")
def resources_get(request: HttpRequest, ref: str):
    can_view_runs(request.auth)
    resource = resource_from_uri(ref)
    return {
        "id": str(resource.pk),
        "uri": resource.uri,
        "name": resource.name,
        "size": resource.size,
        "sha256": resource.sha256,
        "content_type": resource.content_type,
        "created_at": resource.created_at,
        "url": resource_signed_url(resource=resource, expires_in=DEFAULT_EXPIRES_IN),
        "url_expires_at": timezone.now() + timedelta(seconds=DEFAULT_EXPIRES_IN),
    }
