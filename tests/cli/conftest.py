"""Fixtures for CLI tests: the real `wf` console script against pytest-django's live server,
with a real qcluster (from tests/e2e) to run steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from tests.e2e.conftest import cluster_env, qcluster  # noqa: F401 - fixtures used here
from workflows.services.tokens import api_token_create

ROOT = Path(__file__).resolve().parents[2]
WF = Path(sys.executable).parent / "wf"


@dataclass
class Result:
    code: int
    document: Any
    stdout: str
    stderr: str = ""

    @property
    def error(self) -> dict:
        return self.document["error"]


@pytest.fixture(scope="session")
def wf_script() -> Path:
    if not WF.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-e", str(ROOT), "-q",
                        "--no-deps"], check=True, cwd=ROOT)
    return WF


@pytest.fixture
def wf(wf_script, live_server, settings, transactional_db, tmp_path):
    """wf("flows", "list") runs the console script as a superuser and parses its JSON. Its
    config directory (profiles) is a fresh folder of the test's (`wf.config_dir`), never the
    user's. `env` adds variables, `stdin` is the input, `raw=True` skips parsing stdout."""
    settings.PUBLIC_BASE_URL = live_server.url
    user = get_user_model().objects.create_superuser("cli-admin", "cli@example.com", "pw")
    token = api_token_create(user=user, name="cli")[1]
    config_dir = tmp_path / "wf-config"

    def run(*args: str, token: str | None = token, url: str | None = live_server.url,
            timeout: float = 120, env: dict[str, str] | None = None, stdin: str | None = None,
            raw: bool = False, cwd: Path = ROOT) -> Result:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("WF_")}
        environ["WF_CONFIG_DIR"] = str(config_dir)
        if url is not None:
            environ["WF_URL"] = url
        if token is not None:
            environ["WF_TOKEN"] = token
        environ.update(env or {})
        done = subprocess.run([str(wf_script), *args], capture_output=True, text=True,
                              env=environ, timeout=timeout, cwd=cwd,
                              input=stdin if stdin is not None else "")
        if raw:
            return Result(done.returncode, None, done.stdout, done.stderr)
        try:
            document = json.loads(done.stdout) if done.stdout.strip() else None
        except ValueError as exc:
            raise AssertionError(f"wf printed non-JSON: {done.stdout!r} {done.stderr}") from exc
        return Result(done.returncode, document, done.stdout, done.stderr)

    run.user = user
    run.token = token
    run.url = live_server.url
    run.config_dir = config_dir
    run.script = wf_script
    return run
