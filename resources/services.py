"""Storing resources and handing out signed, expiring download URLs.

Bytes go through Django's default storage (never a path on the web server's disk), so workers and
web servers on different machines see the same files. A download URL carries a TimestampSigner
signature over the resource id and its lifetime: nobody can extend or forge one.
"""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.db import transaction
from django.urls import reverse

from resources.models import Resource
from resources.selectors import resource_from_uri
from workflows.errors import WorkflowError

__all__ = [
    "DOWNLOAD_SALT",
    "DownloadExpired",
    "DownloadForged",
    "resource_create",
    "resource_from_uri",
    "resource_signed_url",
    "resource_verify_download",
]

DOWNLOAD_SALT = "resources.download"
DEFAULT_EXPIRES_IN = 300
MAX_EXPIRES_IN = 7 * 24 * 3600


class DownloadForged(WorkflowError):
    """The signed value was not made by us (or was altered)."""

    code = "forbidden"
    http_status = 403


class DownloadExpired(WorkflowError):
    """The signed value is genuine but its lifetime has passed."""

    code = "expired"
    http_status = 410


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=DOWNLOAD_SALT)


def resource_create(*, content: bytes, name: str = "",
                    content_type: str = "application/octet-stream", run=None,
                    step_run=None, resource_id: uuid.UUID | None = None) -> Resource:
    """Store `content` and return its Resource (size and SHA-256 computed here). The stored file
    is named by the resource id, never by `name`, which is only what downloads are called.
    `resource_id` is given when the res:// ref was handed out before the bytes were stored (a
    step's output names it while the step is still running)."""
    resource_id = resource_id or uuid.uuid4()
    resource = Resource(
        id=resource_id, name=(name or "")[:255], size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content_type=(content_type or "application/octet-stream")[:200],
        run=run, step_run=step_run,
    )
    with transaction.atomic():
        resource.file.save(str(resource_id), ContentFile(content), save=False)
        resource.save()
    return resource


def resource_signed_path(*, resource: Resource, expires_in: int = DEFAULT_EXPIRES_IN) -> str:
    expires_in = max(1, min(int(expires_in), MAX_EXPIRES_IN))
    signed = _signer().sign(f"{resource.pk}:{expires_in}")
    return reverse("resources:download", args=[signed])


def resource_signed_url(*, resource: Resource, expires_in: int = DEFAULT_EXPIRES_IN) -> str:
    """An absolute URL (PUBLIC_BASE_URL) that downloads the resource for `expires_in` seconds."""
    return settings.PUBLIC_BASE_URL + resource_signed_path(resource=resource,
                                                           expires_in=expires_in)


def resource_verify_download(signed: str) -> Resource:
    """The resource a signed download value names. Raises DownloadForged (bad signature or an
    unknown resource), DownloadExpired (its lifetime passed, or the resource expired)."""
    from django.utils import timezone

    parts = (signed or "").split(":")
    if len(parts) != 4 or not parts[1].isdigit():
        raise DownloadForged("invalid download link")
    try:
        value = _signer().unsign(signed, max_age=int(parts[1]))
    except signing.SignatureExpired:
        raise DownloadExpired("this download link has expired") from None
    except signing.BadSignature:
        raise DownloadForged("invalid download link") from None
    resource_id = value.split(":")[0]
    try:
        resource = Resource.objects.get(pk=uuid.UUID(resource_id))
    except (ValueError, Resource.DoesNotExist):
        raise DownloadForged("no such resource") from None
    if resource.expires_at and resource.expires_at <= timezone.now():
        raise DownloadExpired("this resource has expired")
    return resource
