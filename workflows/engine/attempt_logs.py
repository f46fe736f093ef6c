"""An attempt's log as the worker writes it: the whole log to storage, a window to the database.

The executor's supervising thread takes the handler's log lines every 0.25 s and hands them to
one `LogWriter` per attempt, which

- redacts them (per stream, so a secret split across two reads is still caught),
- appends them to a `LogSink` (resources/logs.py): the whole log, as the bytes came, in
  storage parts of 1 MiB while the step runs, closed into one `log` resource when it ends —
  memory stays at one part whatever the size of the log;
- keeps at most WF_LOG_INLINE_BYTES of them as LogChunks through a `LogWindow` (the head and the
  newest tail; text made storable, NUL shown as ␀), numbered per step run.

The log resource's id derives from the step run and the attempt number, so the omitted-chunk
marker names it before it exists and the sweeper can assemble what a dead worker left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from resources.logs import LogSink, LogWindow
from resources.models import Resource
from workflows.models import LogChunk

logger = logging.getLogger(__name__)

__all__ = ["LogWriter"]


class LogWriter:
    """Appends an attempt's redacted log lines to its sink and its step run's window.

    `ensure_attempt()` writes the Attempt row if it is not written yet (a LogChunk points to
    it). Not thread-safe: only the worker's supervising thread calls it. Each `write` is its
    own short statements, outside the outcome's transaction."""

    def __init__(self, *, step_run: Any, run: Any, attempt: Any, redactor: Any,
                 ensure_attempt: Callable[[], None]):
        self.attempt = attempt
        self.redactor = redactor
        self.ensure_attempt = ensure_attempt
        self.sink = LogSink(step_run=step_run, attempt_number=attempt.number, run=run)
        self.window = LogWindow(step_run_id=step_run.pk, log_ref=self.sink.uri)
        self.step_run_id = step_run.pk
        self.next_seq: int | None = None
        self.stream_redactors: dict[str, Any] = {}

    @property
    def uri(self) -> str:
        return self.sink.uri

    def write(self, logs: list[tuple[str, str]], *, final: bool = False) -> None:
        pieces = [(stream, self._redactor(stream).redact_stream(text)) for stream, text in logs]
        if final:
            pieces.extend((stream, r.flush()) for stream, r in self.stream_redactors.items())
        pieces = [(s, t) for s, t in pieces if t]
        if not pieces:
            return
        for _, text in pieces:
            self.sink.write(text)
        self.ensure_attempt()
        if self.next_seq is None:
            last = (LogChunk.objects.filter(step_run_id=self.step_run_id, instance=None)
                    .order_by("-seq").values_list("seq", flat=True).first())
            self.next_seq = (last or 0) + 1
        self.next_seq = self.window.keep(pieces, attempt_id=self.attempt.pk,
                                         first_seq=self.next_seq)

    def close(self) -> Resource | None:
        """Finish the whole log as one resource (None when nothing was logged). A storage
        failure is logged, never the step's failure: the window in the database stays."""
        self.window.finish()
        try:
            return self.sink.close()
        except Exception:  # noqa: BLE001 - the log's resource must not fail the step
            logger.exception("could not finish the log resource %s", self.sink.uri)
            return None

    def _redactor(self, stream: str) -> Any:
        if stream not in self.stream_redactors:
            self.stream_redactors[stream] = self.redactor.log_redactor()
        return self.stream_redactors[stream]
