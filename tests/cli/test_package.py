"""The CLI package stands alone: its copies of the terminal states match the server's, and it
loads without Django or any of the server's apps."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from workflows.states import RUN_TERMINAL, STEP_TERMINAL
from workflows_cli.parser import build_parser
from workflows_cli.states import TERMINAL_RUN, TERMINAL_STEP

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_the_terminal_states_are_the_servers():
    assert set(TERMINAL_RUN) == {str(status) for status in RUN_TERMINAL}
    assert set(TERMINAL_STEP) == {str(status) for status in STEP_TERMINAL}


def test_the_cli_loads_no_django_and_no_server_app():
    code = ("import json, sys; import workflows_cli.parser; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    loaded = set(json.loads(done.stdout))
    assert "workflows_cli" in loaded
    assert not loaded & {"django", "ninja", "django_q", "config", "workflows", "approvals",
                         "connections", "resources", "ops"}


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ("wf",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*prefix, name))
            return
    yield " ".join(prefix)


def test_docs_cli_lists_every_command_with_an_example():
    text = DOCS.read_text()
    examples = [line.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)
                for line in block.splitlines()]
    every = list(commands(build_parser()))
    assert len(every) > 30
    for command in every:
        group, _, name = command.rpartition(" ")
        if group == "wf":  # wf api, wf completion: a section of their own
            assert f"`{command} " in text, f"docs/cli.md does not describe {command}"
            continue
        rows = [line for line in text.splitlines() if line.startswith(f"| `{group} ")]
        assert any(name in re.split(r"(?<!\\)\|", row)[1] for row in rows), \
            f"docs/cli.md has no table row for {command}"
        assert any(line.startswith(command + " ") or f"| {command} " in line
                   for line in examples), f"docs/cli.md has no example of {command}"
