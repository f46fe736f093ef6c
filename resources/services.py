"""Storing resources and handing out signed, expiring download URLs.

Bytes go through Django's default storage (never a path on the web server's disk), so workers and
web servers on different machines see the same files. A download URL carries a TimestampSigner
signature over the resource id and its lifetime: nobody can extend or forge one.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from resources.models import Resource
from resources.selectors import resource_from_uri
from workflows.errors import WorkflowError

__all__ = [
    "DOWNLOAD_SALT",
    "DownloadExpired",
    "DownloadForged",
    "StoredContent",
    "resource_create",
    "resource_create_stored",
    "resource_store_stream",
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


@dataclass(frozen=True)
class StoredContent:
    """Bytes already written to storage under `file_name`, with no Resource row yet."""

    resource_id: uuid.UUID
    file_name: str
    size: int
    sha256: str


class _HashingReader(io.RawIOBase):
    """A read-only, non-seekable file over `read(n)` that counts and hashes what passes."""

    def __init__(self, read: Callable[[int], bytes]):
        self._read = read
        self.size = 0
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._read(len(buffer))
        if not data:
            return 0
        count = len(data)
        buffer[:count] = data
        self.size += count
        self.hash.update(data)
        return count


def resource_store_stream(*, read: Callable[[int], bytes],
                          resource_id: uuid.UUID | None = None) -> StoredContent:
    """Write what `read(n)` returns (until it returns b"") to storage, piece by piece: memory
    stays constant whatever the size, and the size and SHA-256 are computed on the way. No row
    is written (a worker thread stores the bytes; the worker records the row with
    `resource_create_stored` when the attempt ends). If `read` raises, the partial file is
    deleted and the error propagates."""
    resource_id = resource_id or uuid.uuid4()
    field = Resource._meta.get_field("file")
    name = field.generate_filename(None, str(resource_id))
    reader = _HashingReader(read)
    buffered = io.BufferedReader(reader, buffer_size=256 * 1024)
    saved = None
    try:
        saved = field.storage.save(name, File(buffered, name=name))
    except BaseException:
        if saved is None and field.storage.exists(name):
            field.storage.delete(name)
        raise
    return StoredContent(resource_id=resource_id, file_name=saved, size=reader.size,
                         sha256=reader.hash.hexdigest())


def resource_create_stored(*, stored: StoredContent, name: str = "",
                           content_type: str = "application/octet-stream", run=None,
                           step_run=None) -> Resource:
    """The Resource row for bytes `resource_store_stream` already wrote."""
    resource = Resource(
        id=stored.resource_id, name=(name or "")[:255], size=stored.size, sha256=stored.sha256,
        content_type=(content_type or "application/octet-stream")[:200],
        run=run, step_run=step_run,
    )
    resource.file.name = stored.file_name
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
