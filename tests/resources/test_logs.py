"""Logs of any size: the whole log streams to a resource; the database keeps a bounded head and
tail per step run."""

from __future__ import annotations

import os

import pytest
from django.core.files.storage import default_storage

from resources import logs
from resources.logs import (
    OMITTED_STREAM,
    LogSink,
    LogWindow,
    log_parts_assemble,
    log_resource_id,
)
from resources.models import Resource, ResourceKind
from workflows.models import LogChunk

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_parts_from_earlier_sessions():
    """Log resource ids derive from step run ids, which restart with each test database, while
    the test media folder stays: clear the parts earlier sessions may have left."""
    try:
        folders, _ = default_storage.listdir("logs/parts")
    except FileNotFoundError:
        return
    for folder in folders:
        for name in default_storage.listdir(f"logs/parts/{folder}")[1]:
            default_storage.delete(f"logs/parts/{folder}/{name}")


def chunks_of(step_run):
    return list(LogChunk.objects.filter(step_run=step_run).order_by("seq")
                .values_list("seq", "stream", "text"))


def test_a_small_log_stays_whole_in_the_database(step_run, attempt):
    window = LogWindow(step_run_id=step_run.pk, limit=1000)
    next_seq = window.keep([("stdout", "hello\n"), ("stderr", "oops\x00\n")],
                           attempt_id=attempt.pk, first_seq=1)
    assert next_seq == 3
    assert chunks_of(step_run) == [(1, "stdout", "hello\n"), (2, "stderr", "oops\u2400\n")]


def test_the_database_keeps_the_head_and_the_newest_tail(step_run, attempt):
    window = LogWindow(step_run_id=step_run.pk, limit=1000, log_ref="res://x")
    seq = 1
    for i in range(100):
        seq = window.keep([("stdout", f"line {i:03d} ".ljust(49, ".") + "\n")],
                          attempt_id=attempt.pk, first_seq=seq)
    window.finish()
    kept = chunks_of(step_run)
    texts = [text for _, stream, text in kept if stream != OMITTED_STREAM]
    assert sum(len(t) for t in texts) <= 1000
    assert [s for s, _, _ in kept[:10]] == list(range(1, 11))  # the head
    assert kept[10][0] == 11 and kept[10][1] == OMITTED_STREAM  # the gap, where it is
    assert "4,000 bytes omitted" in kept[10][2] and "res://x" in kept[10][2]
    assert [s for s, _, _ in kept[11:]] == list(range(91, 101))  # the newest tail
    assert texts[-1].startswith("line 099")
    assert window.inline_bytes <= 1000


def test_one_piece_larger_than_the_window_keeps_its_end(step_run, attempt):
    window = LogWindow(step_run_id=step_run.pk, limit=100)
    window.keep([("stdout", "x" * 10_000 + "THE END")], attempt_id=attempt.pk, first_seq=1)
    kept = chunks_of(step_run)
    assert kept[0][1] == OMITTED_STREAM and "9,957 bytes omitted" in kept[0][2]
    assert kept[1][0] == 2 and kept[1][2].endswith("THE END") and len(kept[1][2]) == 50


def test_a_later_attempt_continues_the_same_window(step_run, attempt):
    first = LogWindow(step_run_id=step_run.pk, limit=200)
    seq = 1
    for _ in range(10):
        seq = first.keep([("stdout", "a" * 40)], attempt_id=attempt.pk, first_seq=seq)
    second = LogWindow(step_run_id=step_run.pk, limit=200)
    for _ in range(10):
        seq = second.keep([("stdout", "b" * 40)], attempt_id=attempt.pk, first_seq=seq)
    kept = chunks_of(step_run)
    markers = [c for c in kept if c[1] == OMITTED_STREAM]
    assert len(markers) == 1
    assert sum(len(t) for _, s, t in kept if s != OMITTED_STREAM) <= 200
    assert kept[-1][2] == "b" * 40 and kept[0][2] == "a" * 40
    assert f"{(20 - 2 - 2) * 40:,} bytes omitted" in markers[0][2]


def test_the_sink_streams_parts_to_storage_and_closes_into_one_resource(
        step_run, attempt, monkeypatch):
    monkeypatch.setattr(logs, "PART_BYTES", 1000)
    raw = os.urandom(5000)
    sink = LogSink(step_run=step_run, attempt_number=1, run=step_run.run)
    expected = b""
    for i in range(0, len(raw), 300):
        piece = raw[i:i + 300]
        sink.write(piece.decode("utf-8", "surrogateescape") + "\x00\n")
        expected += piece + b"\x00\n"
        assert len(sink._buffer) < 1000 + 400  # memory stays at one part
    prefix = f"logs/parts/{sink.resource_id}/"
    assert len(default_storage.listdir(prefix)[1]) >= 3  # written while "running"
    resource = sink.close(attempt=attempt)
    assert resource.uri == sink.uri
    assert resource.uri == f"res://{log_resource_id(step_run_id=step_run.pk, attempt_number=1)}"
    assert resource.kind == ResourceKind.LOG and resource.attempt_id == attempt.pk
    assert resource.content_type.startswith("text/plain")
    with resource.file.open("rb") as handle:
        assert handle.read() == expected  # byte for byte, NUL and raw bytes included
    assert default_storage.listdir(prefix)[1] == []
    assert sink.close() == resource  # closing twice is harmless


def test_an_empty_log_makes_no_resource(step_run):
    assert LogSink(step_run=step_run, attempt_number=1).close() is None
    assert not Resource.objects.exists()


def test_the_parts_a_dead_worker_left_are_assembled(step_run, attempt, monkeypatch):
    monkeypatch.setattr(logs, "PART_BYTES", 100)
    sink = LogSink(step_run=step_run, attempt_number=2)
    for i in range(10):
        sink.write(f"{i}".ljust(50, "-") + "\n")
    # the worker dies here: the last, unspilled half part is lost
    resource = log_parts_assemble(step_run=step_run, attempt_number=2, attempt=attempt)
    with resource.file.open("rb") as handle:
        text = handle.read().decode()
    assert text.startswith("0---") and text.count("\n") == 10
    assert log_parts_assemble(step_run=step_run, attempt_number=2) is None
    assert log_parts_assemble(step_run=step_run, attempt_number=9) is None
