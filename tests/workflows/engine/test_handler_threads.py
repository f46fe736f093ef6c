"""workflows.engine.handler_threads: handlers run in kept threads, never wait for each other,
and a forked worker starts with none."""

from __future__ import annotations

import os
import threading
import time

import pytest

from workflows.engine import handler_threads


def run_and_wait(job, name="step-test"):
    done = threading.Event()
    seen = {}

    def wrapped():
        try:
            seen.update(job() or {})
        finally:
            done.set()

    handler_threads.run(wrapped, name=name)
    assert done.wait(5)
    return seen


def current():
    thread = threading.current_thread()
    return {"ident": thread.ident, "name": thread.name, "daemon": thread.daemon}


def test_a_handler_runs_in_a_named_daemon_thread_that_the_next_one_reuses():
    first = run_and_wait(current, name="step-1")
    time.sleep(0.05)  # the thread goes back to the idle ones once the job has returned
    second = run_and_wait(current, name="step-2")
    assert first["ident"] != threading.current_thread().ident
    assert (first["name"], second["name"]) == ("step-1", "step-2")
    assert first["daemon"] and second["daemon"]
    assert second["ident"] == first["ident"]


def test_a_handler_that_never_returns_does_not_hold_up_the_next():
    release = threading.Event()
    stuck_started = threading.Event()

    def stuck():
        stuck_started.set()
        release.wait(10)

    handler_threads.run(stuck, name="step-stuck")
    assert stuck_started.wait(5)
    try:
        other = run_and_wait(current, name="step-other")
        assert other["name"] == "step-other"
    finally:
        release.set()


def test_a_forked_child_starts_its_own_threads():
    run_and_wait(current)  # the parent now has an idle thread, which a fork does not copy
    time.sleep(0.05)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a handler must still run
        try:
            done = threading.Event()
            handler_threads.run(done.set, name="step-child")
            os.write(write, b"ok" if done.wait(5) else b"no")
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 2) == b"ok"
    finally:
        os.close(read)
        os.waitpid(pid, 0)


@pytest.mark.django_db(transaction=True)
def test_a_handlers_broken_database_connection_is_not_kept_for_the_next():
    from django.db import connection

    def break_connection():
        connection.ensure_connection()
        connection.errors_occurred = True  # as after the database went away mid-query
        connection.health_check_done = False
        connection.close_at = 0  # and past CONN_MAX_AGE
        return {"had": connection.connection is not None}

    def look():
        return {"connection": connection.connection}

    assert run_and_wait(break_connection)["had"]
    time.sleep(0.05)
    assert run_and_wait(look)["connection"] is None  # the same thread, a fresh connection
