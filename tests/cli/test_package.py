"""The CLI package stands alone: its copies of the terminal states match the server's, and it
loads without Django or any of the server's apps."""

from __future__ import annotations

import json
import subprocess
import sys

from workflows.states import RUN_TERMINAL, STEP_TERMINAL
from workflows_cli.states import TERMINAL_RUN, TERMINAL_STEP


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
