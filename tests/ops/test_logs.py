"""LOG_FORMAT=json: one JSON object per line with run_id, step_run_id and flow on every line
logged while a task works on a step; the plain format has time, level and logger."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops.logs import JsonFormatter, RunContextFilter
from tests.factories import make_flow, simple_definition
from workflows import tasks
from workflows.models import StepRun
from workflows.services.runs import run_start
from workflows.steps.actions import action, get_action

SOURCE = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_lines():
    """A handler like the console's with LOG_FORMAT=json, on the root logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RunContextFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture
def logging_action():
    if get_action("tests.log_line") is None:
        @action("tests.log_line")
        def log_line(ctx, **args):
            logging.getLogger("workflows.steps.test").info("working on %s", args.get("what"))
            return {"logged": True}
    return "tests.log_line"


@pytest.mark.django_db
def test_every_line_of_a_task_names_its_run_step_and_flow(json_lines, logging_action):
    flow = make_flow(simple_definition("logged", steps=[
        {"key": "one", "type": "python", "action": logging_action, "args": {"what": "a"}},
        {"key": "two", "type": "python", "action": logging_action, "args": {"what": "b"}},
    ]))
    run, _ = run_start(flow=flow, input={})
    first = StepRun.objects.get(run=run, key="one")
    second = StepRun.objects.get(run=run, key="two")
    tasks.advance_step(first.pk)  # goes on with "two" inline (WF_CONTINUE_INLINE)
    logging.getLogger("outside").warning("after the task")

    lines = json_lines()
    steps = [line for line in lines if line["logger"] == "workflows.steps.test"]
    assert [(line["message"], line["run_id"], line["step_run_id"], line["flow"])
            for line in steps] == [("working on a", run.pk, first.pk, "logged"),
                                   ("working on b", run.pk, second.pk, "logged")]
    for line in steps:
        assert {"time", "level", "logger", "message"} <= set(line)
    outside = next(line for line in lines if line["logger"] == "outside")
    assert outside["run_id"] is None and outside["step_run_id"] is None


def test_exceptions_and_extra_fields_stay_in_one_json_line():
    formatter = JsonFormatter()
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info(),
            extra={"attempt": 2})
    RunContextFilter().filter(record)
    text = formatter.format(record)
    assert "\n" not in text
    entry = json.loads(text)
    assert entry["message"] == "failed here" and entry["attempt"] == 2
    assert "ValueError: boom" in entry["exc_info"]


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_log_format_setting_shapes_the_console(tmp_path, fmt):
    code = ("import django, logging; django.setup(); "
            "logging.getLogger('workflows.engine.executor').warning('hello')")
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(SOURCE), "DEBUG": "true",
             "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_FORMAT": fmt},
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    if fmt == "json":
        entry = json.loads(line)
        assert entry["level"] == "WARNING" and entry["logger"] == "workflows.engine.executor"
        assert entry["message"] == "hello"
        assert {"run_id", "step_run_id", "flow", "time"} <= set(entry)
    else:
        date, time, level, logger, message = line.split(" ", 4)
        assert len(date) == 10 and ":" in time
        assert (level, logger, message) == ("WARNING", "workflows.engine.executor", "hello")


@pytest.mark.django_db
def test_the_engine_called_outside_a_task_leaves_no_context_behind(json_lines):
    from tests.factories import drain

    flow = make_flow(simple_definition("untasked"))
    run_start(flow=flow, input={})
    drain()  # executor.advance directly, as the sweeper's callers and tests do
    logging.getLogger("outside").warning("later")
    line = next(line for line in json_lines() if line["logger"] == "outside")
    assert (line["run_id"], line["step_run_id"], line["flow"]) == (None, None, None)
