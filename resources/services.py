"""Storing resources and handing out signed, expiring download URLs.

Bytes go through Django's default storage (never a path on the web server's disk), so workers and
web servers on different machines see the same files. A download URL carries a TimestampSigner
signature over the resource id and its lifetime: nobody can extend or forge one.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core import signing
from django.core.files.base import File
from django.urls import reverse
from django.utils import timezone

from resources.models import Resource, ResourceKind
from resources.selectors import resource_from_uri
from workflows.errors import NotFound, WorkflowError

Content = bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]

__all__ = [
    "DOWNLOAD_SALT",
    "DownloadExpired",
    "DownloadForged",
    "StoredContent",
    "ResourceTooLarge",
    "resource_create",
    "resource_record",
    "resource_store",
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


_LIFETIME = re.compile(r"[0-9]{1,10}")


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=DOWNLOAD_SALT)


class ResourceTooLarge(WorkflowError):
    """The content passed `max_bytes` while being stored; nothing was kept. `limit` is the cap
    in bytes, `setting` the name of the setting that sets it (for the message a user sees)."""

    code = "payload_too_large"
    http_status = 413

    def __init__(self, *, limit: int, setting: str = ""):
        self.limit = limit
        self.setting = setting
        where = f" (set by {setting})" if setting else ""
        super().__init__(f"the content is larger than the cap of {limit} bytes{where}")


class _HashingReader:
    """A read-only, non-seekable file over bytes, a file-like object or an iterator of chunks
    that counts and hashes what passes through it. Storage backends pull from it in chunks, so
    the content is never all in memory."""

    def __init__(self, source: Content, max_bytes: int | None, setting: str):
        if isinstance(source, bytes | bytearray | memoryview):
            source = io.BytesIO(bytes(source))
        self._read_from = source.read if hasattr(source, "read") else None
        self._chunks = None if self._read_from else iter(source)
        self._pending = b""
        self.digest = hashlib.sha256()
        self.size = 0
        self.max_bytes = max_bytes
        self.setting = setting

    def _take(self, data: bytes | str) -> bytes:
        if isinstance(data, str):
            data = data.encode("utf-8")
        data = bytes(data)
        self.size += len(data)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise ResourceTooLarge(limit=self.max_bytes, setting=self.setting)
        self.digest.update(data)
        return data

    def read(self, size: int = -1) -> bytes:
        if self._read_from is not None:
            return self._take(self._read_from(size if size and size > 0 else -1) or b"")
        if size is None or size < 0:
            return self._take(self._pending + b"".join(bytes(c) for c in self._chunks))
        while len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
        data, self._pending = self._pending[:size], self._pending[size:]
        return self._take(data)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class StoredContent:
    """Bytes already written to storage under `file_name`, with no Resource row yet (what a
    step's thread stores; the worker's thread records the row with `resource_record`)."""

    resource_id: uuid.UUID
    file_name: str
    size: int
    sha256: str
    name: str = ""
    content_type: str = "application/octet-stream"

    @property
    def uri(self) -> str:
        return f"res://{self.resource_id}"


def resource_store(*, content: Content, name: str = "",
                   content_type: str = "application/octet-stream",
                   resource_id: uuid.UUID | None = None, max_bytes: int | None = None,
                   max_bytes_setting: str = "") -> StoredContent:
    """Write `content` to storage, its size and SHA-256 computed while streaming; no row.

    `content` is bytes, a file-like object with `read(n)` (an open file, an SFTP file, a
    request body) or an iterator of byte chunks (`httpx.Response.iter_bytes()`); the storage
    pulls it 64 KiB at a time, never whole. With `max_bytes`, storing stops as soon as the
    content passes it: ResourceTooLarge (naming `max_bytes_setting`). If anything fails, the
    partial file is deleted and the error propagates.

    Touches no database, so a step's handler thread may call it (the executor records the rows
    on its own thread when the attempt ends). The file is named by the resource id, never by
    `name`, which is only what downloads are called.
    """
    resource_id = resource_id or uuid.uuid4()
    field = Resource._meta.get_field("file")
    target = field.generate_filename(None, str(resource_id))
    reader = _HashingReader(content, max_bytes, max_bytes_setting)
    saved = None
    try:
        saved = field.storage.save(target, File(reader, name=str(resource_id)),
                                   max_length=field.max_length)
    except BaseException:
        if saved is None and field.storage.exists(target):
            field.storage.delete(target)
        raise
    return StoredContent(resource_id=resource_id, file_name=saved, size=reader.size,
                         sha256=reader.digest.hexdigest(), name=header_safe(name)[:255],
                         content_type=header_safe(content_type)[:200]
                         or "application/octet-stream")


def resource_record(*, stored: StoredContent, run=None, step_run=None, attempt=None,
                    kind: str = ResourceKind.ARTIFACT) -> Resource:
    """The Resource row for bytes `resource_store` wrote. If the insert fails the file is
    removed, so a row always has its file. (A caller's transaction that rolls back after this
    leaves the file without a row; nothing refers to it, retention sweeps it.)"""
    resource = Resource(
        id=stored.resource_id, name=stored.name, size=stored.size, sha256=stored.sha256,
        content_type=stored.content_type, run=run, step_run=step_run, attempt=attempt,
        kind=kind,
    )
    resource.file.name = stored.file_name
    try:
        resource.save(force_insert=True)
    except BaseException:
        resource.file.storage.delete(stored.file_name)
        raise
    return resource


def resource_create(*, content: Content, name: str = "",
                    content_type: str = "application/octet-stream", run=None,
                    step_run=None, attempt=None, kind: str = ResourceKind.ARTIFACT,
                    resource_id: uuid.UUID | None = None,
                    max_bytes: int | None = None, max_bytes_setting: str = "") -> Resource:
    """Store `content` (`resource_store`) and record its row (`resource_record`).

    `resource_id` is given when the res:// ref was handed out before the bytes were stored.
    No database transaction is held while the bytes are written (a 1 GiB upload must not pin a
    connection in a transaction); the row is inserted after.
    """
    stored = resource_store(content=content, name=name, content_type=content_type,
                            resource_id=resource_id, max_bytes=max_bytes,
                            max_bytes_setting=max_bytes_setting)
    return resource_record(stored=stored, run=run, step_run=step_run, attempt=attempt,
                           kind=kind)


def header_safe(text: str | None) -> str:
    """`text` without the control characters (CR, LF, NUL...) that would break an HTTP header
    or a database write; used for resource names and content types."""
    return "".join(ch if ch.isprintable() else " " for ch in (text or "")).strip()


def resource_signed_path(*, resource: Resource, expires_in: int = DEFAULT_EXPIRES_IN) -> str:
    expires_in = max(1, min(int(expires_in), MAX_EXPIRES_IN))
    signed = _signer().sign(f"{resource.pk}:{expires_in}")
    return reverse("resources:download", args=[signed])


def resource_signed_url(*, resource: Resource, expires_in: int = DEFAULT_EXPIRES_IN) -> str:
    """An absolute URL (PUBLIC_BASE_URL) that downloads the resource for `expires_in` seconds."""
    return settings.PUBLIC_BASE_URL + resource_signed_path(resource=resource,
                                                           expires_in=expires_in)


def resource_verify_download(signed: str) -> Resource:
    """The resource a signed download value names. Raises DownloadForged (bad signature),
    DownloadExpired (its lifetime passed, or the resource expired), NotFound (a genuine link to
    a resource that no longer exists, e.g. pruned)."""

    parts = (signed or "").split(":")
    # ASCII digits only, and no more than a lifetime needs: `str.isdigit` accepts "²", which
    # int() refuses, and int() refuses more than 4,300 digits (both were a 500).
    if len(parts) != 4 or not _LIFETIME.fullmatch(parts[1]):
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
        raise NotFound(f"no resource res://{resource_id}") from None
    if resource.expires_at and resource.expires_at <= timezone.now():
        raise DownloadExpired("this resource has expired")
    return resource
