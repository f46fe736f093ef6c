"""The webhook signing recipe in docs/api.md, run as written (bash, openssl, curl) against a
live server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import make_flow, simple_definition
from workflows.models import Run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def signing_recipe() -> str:
    text = DOCS.read_text()
    section = text.split("Signing a delivery in bash with openssl:", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_the_documented_webhook_recipe_starts_a_run(wf, tmp_path):
    for tool in ("bash", "curl", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    make_flow(simple_definition("nightly-report", triggers=[{"type": "webhook"}],
                                input={"repo": {"type": "string"}}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "WF_URL": wf.url, "H": f"Authorization: Bearer {wf.token}",
           "J": "Content-Type: application/json"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", signing_recipe()], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["created"] is True, answer
    run = Run.objects.get(pk=answer["id"])
    assert run.trigger_kind == "webhook" and run.input == {"repo": "core"}
    assert run.idempotency_key == "webhook:push-4711"
