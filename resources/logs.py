"""Logs of any size: the whole log of an attempt as a resource, and a bounded window in the
database.

Two building blocks, both driven by the worker's log flush (every 0.25 s) and its end:

- `LogSink` keeps the whole log of one attempt. Text is buffered up to PART_BYTES, then written
  to Django storage as a numbered part (`logs/parts/<resource id>/000001`); when the attempt
  ends, `close()` streams the parts into one resource (kind `log`, text/plain) and deletes them.
  Only Django storage is shared between machines, so the parts live there, not on the worker's
  disk; memory stays at one part whatever the size of the log. The resource id is derived from
  the step run and the attempt number (`log_resource_id`), so the ref is known before the
  resource exists, and the sweeper can finish the log of a worker that died
  (`log_parts_assemble`).
- `LogWindow` decides which LogChunks stay in the database for one step run: at most `limit`
  bytes (WF_LOG_INLINE_BYTES) — the first half of the budget keeps the head, the other half the
  newest tail. Chunks that fall out of the tail are deleted and one chunk with stream `omitted`
  takes their place (the `seq` of the first deleted chunk), saying how much was left out and
  where the whole log is. Chunk sequence numbers never change, so `?after=N` keeps working.

A remote agent's log (a wait's callback sibling `…/logs`, stream `remote`) follows the same rule
without a worker holding a sink: each post is written to storage as a part of its own
(`remote_log_part`, named by the post's first chunk number, so the parts sort in log order) and
kept in the window, whose omission marker names the remote log's resource
(`remote_log_resource_id`). When the wait's attempt ends (callback, cancel, timeout, heartbeat
timeout, budget), `remote_log_close` streams the parts into one `log` resource, as
`log_parts_assemble` does for a dead worker's parts.

Text written to the database goes through `storable_text` (NUL shown as ␀); the resource keeps
the bytes as they came (undecodable bytes a step decoded with `surrogateescape` are written back
as the original bytes).
"""

from __future__ import annotations

import codecs
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from resources.models import Resource, ResourceKind
from resources.payloads import storable_text
from resources.services import resource_create
from workflows.models import LogChunk

__all__ = ["LogSink", "LogWindow", "OMITTED_STREAM", "log_parts_assemble", "log_resource_id",
           "remote_log_close", "remote_log_part", "remote_log_resource_id"]

PART_BYTES = 1024 * 1024
READ_BYTES = 64 * 1024
OMITTED_STREAM = "omitted"
LOG_CONTENT_TYPE = "text/plain; charset=utf-8"
_NAMESPACE = uuid.UUID("1b0c7f55-2a43-4d4c-9d0b-6c8f3b8f1a10")


def _log_bytes_errors(exc: UnicodeError) -> tuple[bytes, int]:
    """Encode `surrogateescape`d bytes back to themselves, any other unpaired surrogate as
    U+FFFD: a log never fails to be written."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = bytearray()
    for char in exc.object[exc.start:exc.end]:
        code = ord(char)
        out += bytes([code - 0xDC00]) if 0xDC80 <= code <= 0xDCFF else "\ufffd".encode()
    return bytes(out), exc.end


codecs.register_error("wf-log-bytes", _log_bytes_errors)


def log_resource_id(*, step_run_id: int, attempt_number: int) -> uuid.UUID:
    """The id of the log resource of one attempt, known before it exists."""
    return uuid.uuid5(_NAMESPACE, f"log:{step_run_id}:{attempt_number}")


def remote_log_resource_id(*, step_run_id: int, attempt_number: int, nonce: str) -> uuid.UUID:
    """The id of the resource of a remote agent's whole log for one attempt of its wait
    (`nonce`: the wait's callback nonce, random per run, so a database restored or reset
    beside its old storage never meets another wait's parts)."""
    return uuid.uuid5(_NAMESPACE, f"remote-log:{step_run_id}:{attempt_number}:{nonce}")


def _parts_prefix(resource_id: uuid.UUID) -> str:
    return f"logs/parts/{resource_id}/"


def _read_parts(names: list[str], tail: bytes = b"") -> Iterator[bytes]:
    for name in names:
        with default_storage.open(name, "rb") as handle:
            while data := handle.read(READ_BYTES):
                yield data
    if tail:
        yield tail


class LogSink:
    """The whole log of one attempt, written to storage while the step runs. Not thread-safe:
    the worker's flushing thread is its only writer."""

    def __init__(self, *, step_run: Any, attempt_number: int, run: Any = None,
                 name: str = ""):
        self.step_run = step_run
        self.run = run
        self.attempt_number = attempt_number
        self.resource_id = log_resource_id(step_run_id=step_run.pk,
                                           attempt_number=attempt_number)
        self.name = name or f"{getattr(step_run, 'key', 'step')}-attempt-{attempt_number}.log"
        self.size = 0
        self._buffer = bytearray()
        self._parts: list[str] = []
        self.closed = False

    @property
    def uri(self) -> str:
        return f"res://{self.resource_id}"

    def write(self, text: str) -> None:
        """Append `text`; a full buffer goes to storage as the next part."""
        if not text:
            return
        data = text.encode("utf-8", "wf-log-bytes")
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= PART_BYTES:
            self._spill()

    def _spill(self) -> None:
        if not self._buffer:
            return
        name = f"{_parts_prefix(self.resource_id)}{len(self._parts) + 1:06d}"
        self._parts.append(default_storage.save(name, ContentFile(bytes(self._buffer))))
        self._buffer.clear()

    def close(self, *, attempt: Any = None) -> Resource | None:
        """Finish the log: one resource holding every part in order, then the parts go. None
        when nothing was written. Call it once, when the attempt ends, outside the outcome's
        transaction."""
        if self.closed:
            return Resource.objects.filter(pk=self.resource_id).first()
        self.closed = True
        if not self.size:
            return None
        resource = resource_create(
            content=_read_parts(self._parts, bytes(self._buffer)), name=self.name,
            content_type=LOG_CONTENT_TYPE, run=self.run, step_run=self.step_run,
            attempt=attempt, kind=ResourceKind.LOG, resource_id=self.resource_id,
        )
        self._buffer.clear()
        _delete_parts(self._parts)
        return resource


def _delete_parts(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            pass


def log_parts_assemble(*, step_run: Any, attempt_number: int, attempt: Any = None,
                       run: Any = None) -> Resource | None:
    """Finish the log of an attempt whose worker died: the parts it left in storage become the
    log resource (what it had not spilled yet is lost). None when it left none or the log
    resource already exists. For the sweeper, when it records a lost worker."""
    return _parts_resource(log_resource_id(step_run_id=step_run.pk, attempt_number=attempt_number),
                           name=f"{step_run.key}-attempt-{attempt_number}.log", run=run,
                           step_run=step_run, attempt=attempt)


def _parts_resource(resource_id: uuid.UUID, *, name: str, run: Any, step_run: Any,
                    attempt: Any) -> Resource | None:
    """The parts stored under `resource_id` as one `log` resource, the parts then deleted; None
    when there are none or the resource exists already."""
    if Resource.objects.filter(pk=resource_id).exists():
        return None
    names = _part_names(resource_id)
    if not names:
        return None
    resource = resource_create(
        content=_read_parts(names), name=name, content_type=LOG_CONTENT_TYPE, run=run,
        step_run=step_run, attempt=attempt, kind=ResourceKind.LOG, resource_id=resource_id,
    )
    _delete_parts(names)
    return resource


def remote_log_part(*, resource_id: uuid.UUID, seq: int, text: str) -> str:
    """Write one log post of a remote agent to storage as a part of its log (`resource_id`:
    `remote_log_resource_id`); the part's name (for the caller to delete if its transaction
    does not commit)."""
    name = f"{_parts_prefix(resource_id)}{seq:09d}"
    return default_storage.save(name, ContentFile(text.encode("utf-8", "wf-log-bytes")))


def remote_log_close(*, step_run: Any, attempt_number: int, nonce: str, run: Any = None,
                     attempt: Any = None) -> Resource | None:
    """The wait's attempt ended: its remote log's parts become one `log` resource (then go).
    None when its agent posted no log (or it was closed already)."""
    return _parts_resource(
        remote_log_resource_id(step_run_id=step_run.pk, attempt_number=attempt_number,
                               nonce=nonce),
        name=f"{step_run.key}-attempt-{attempt_number}-remote.log", run=run, step_run=step_run,
        attempt=attempt)


def _part_names(resource_id: uuid.UUID) -> list[str]:
    prefix = _parts_prefix(resource_id)
    try:
        _, files = default_storage.listdir(prefix)
    except (FileNotFoundError, OSError):
        return []
    return [prefix + name for name in sorted(files)]


def _size(text: str) -> int:
    return len(text.encode("utf-8", "replace"))


def _tail_of(text: str, budget: int) -> str:
    data = text.encode("utf-8", "replace")
    return data[len(data) - budget:].decode("utf-8", "ignore") if budget > 0 else ""


class LogWindow:
    """Which LogChunks of one step run stay in the database (see the module docstring).

    One instance per attempt, held by the worker's log writer: `keep()` on every flush inserts
    the new chunks and deletes what fell out of the window (a bulk insert, at most one delete
    and one update); `finish()` at the end is a no-op today, kept so callers need not change
    when the window learns more. Chunks of earlier attempts of the same step run are counted
    once, when the first flush comes (their sizes in characters, which is close enough).
    """

    def __init__(self, *, step_run_id: int, limit: int | None = None,
                 log_ref: str = ""):
        self.step_run_id = step_run_id
        self.limit = settings.WF_LOG_INLINE_BYTES if limit is None else max(int(limit), 0)
        self.head_budget = self.limit // 2
        self.tail_budget = self.limit - self.head_budget
        self.log_ref = log_ref
        self.head_bytes = 0
        self.head_full = False
        self.tail: deque[tuple[int, int, int]] = deque()  # (pk, seq, bytes), oldest first
        self.tail_bytes = 0
        self.omitted_bytes = 0
        self.marker: LogChunk | None = None
        self._loaded = False

    # -- state ------------------------------------------------------------------------------

    def _load(self) -> None:
        from django.db.models.functions import Length

        self._loaded = True
        rows = (LogChunk.objects.filter(step_run_id=self.step_run_id).order_by("seq")
                .values_list("pk", "seq", "stream", Length("text")))
        for pk, seq, stream, size in rows:
            if stream == OMITTED_STREAM:
                self.marker = LogChunk.objects.get(pk=pk)
                self.omitted_bytes += self._omitted_in(self.marker.text)
                self.head_full = True
                continue
            self._admit(pk, seq, size or 0, delete=[])

    @staticmethod
    def _omitted_in(text: str) -> int:
        digits = text.split(" bytes omitted", 1)[0].rsplit(" ", 1)[-1].replace(",", "")
        return int(digits) if digits.isdigit() else 0

    def _admit(self, pk: int, seq: int, size: int, *, delete: list[tuple[int, int]]) -> None:
        if not self.head_full and self.head_bytes + size <= self.head_budget:
            self.head_bytes += size
            return
        self.head_full = True
        self.tail.append((pk, seq, size))
        self.tail_bytes += size
        while self.tail and self.tail_bytes > self.tail_budget:
            old_pk, old_seq, old_size = self.tail.popleft()
            self.tail_bytes -= old_size
            self.omitted_bytes += old_size
            delete.append((old_pk, old_seq))

    # -- per flush --------------------------------------------------------------------------

    def keep(self, pieces: list[tuple[str, str]], *, attempt_id: int, first_seq: int) -> int:
        """Insert `pieces` ([(stream, text)], already redacted) as chunks numbered from
        `first_seq`, and delete what falls out of the window. Returns the next free seq. A piece
        larger than the tail's budget keeps only its end. Call it outside the outcome's
        transaction (each call is its own short write)."""
        if not self._loaded:
            self._load()
        chunks: list[LogChunk] = []
        seq = first_seq
        before = self.omitted_bytes
        for stream, raw in pieces:
            text = storable_text(raw)
            if not text:
                continue
            size = _size(text)
            if (self.head_full or self.head_bytes + size > self.head_budget) \
                    and size > self.tail_budget:
                kept = _tail_of(text, self.tail_budget)
                self.omitted_bytes += size - _size(kept)
                text, size = kept, _size(kept)
                self.head_full = True
                if self.marker is None:  # the omission is right here, before this chunk
                    self.marker = LogChunk(step_run_id=self.step_run_id, attempt_id=attempt_id,
                                           seq=seq, stream=OMITTED_STREAM, text="")
                    chunks.append(self.marker)
                    seq += 1
            chunks.append(LogChunk(step_run_id=self.step_run_id, attempt_id=attempt_id,
                                   seq=seq, stream=stream, text=text))
            seq += 1
        if not chunks:
            return first_seq
        LogChunk.objects.bulk_create(chunks)
        missing = [c.seq for c in chunks if c.pk is None]
        if missing:  # a backend that does not return ids from a bulk insert
            ids = dict(LogChunk.objects.filter(step_run_id=self.step_run_id, seq__in=missing)
                       .values_list("seq", "pk"))
            for chunk in chunks:
                chunk.pk = chunk.pk or ids.get(chunk.seq)
        delete: list[tuple[int, int]] = []
        for chunk in chunks:
            if chunk.text and chunk.stream != OMITTED_STREAM:
                self._admit(chunk.pk, chunk.seq, _size(chunk.text), delete=delete)
        if delete:
            LogChunk.objects.filter(pk__in=[pk for pk, _ in delete]).delete()
        if self.omitted_bytes != before:
            self._mark(first_free=min(s for _, s in delete) if delete else 0,
                       attempt_id=attempt_id)
        return seq

    def _marker_text(self) -> str:
        where = f" ({self.log_ref})" if self.log_ref else ""
        return (f"[… {self.omitted_bytes:,} bytes omitted here; the whole log is kept as a "
                f"resource{where}]\n")

    def _mark(self, *, first_free: int, attempt_id: int) -> None:
        if self.marker is None:
            self.marker = LogChunk.objects.create(
                step_run_id=self.step_run_id, attempt_id=attempt_id, seq=first_free,
                stream=OMITTED_STREAM, text=self._marker_text())
        else:
            self.marker.text = self._marker_text()
            LogChunk.objects.filter(pk=self.marker.pk).update(text=self.marker.text)

    def finish(self) -> None:
        """The attempt ended; nothing more to trim (kept for a stable call site)."""

    @property
    def inline_bytes(self) -> int:
        return self.head_bytes + self.tail_bytes
