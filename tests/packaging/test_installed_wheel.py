"""The built wheel works outside the source tree: templates, static files and demo flows are
package data, and `python -m django` with config.settings migrates, passes
`check --deploy`, and serves the admin login (with its CSS) and the API docs.

The fresh virtualenv sees the dependencies of the shared one through a .pth line (no download
of every dependency, no editable install: the .pth of the shared venv is not processed, so the
project itself is importable only from the installed wheel)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.conftest import free_port, wait_for_port
from tests.ops.test_deploy_settings import production_env

pytestmark = pytest.mark.packaging

SOURCE = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "media", "media-test",
                                "staticfiles", "*.sqlite3*", "__pycache__", "*.egg-info",
                                ".env", "test-results", ".pytest_cache", ".ruff_cache")


# No PYTHONPATH: nothing from the source tree may be importable in the installed copy.
CLEAN_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("env", CLEAN_ENV)
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv holding the wheel, non-editable; returns its python."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    shutil.copytree(SOURCE, source, ignore=IGNORE)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(root / "dist"),
         str(source)])
    wheel = next((root / "dist").glob("workflows_platform-*.whl"))
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--quiet", str(wheel)])
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                          "['purelib'])"]).stdout.strip())
    (site / "shared-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> dict[str, str]:
    """The documented production environment, on a SQLite file, without Redis."""
    home = tmp_path_factory.mktemp("home")
    env = {key: value for key, value in production_env().items()
           if key not in {"REDIS_URL", "CACHE_REDIS_URL"}}
    env.update(
        PATH=os.environ.get("PATH", "/usr/bin:/bin"), HOME=str(home),
        DATABASE_URL=f"sqlite:///{home / 'db.sqlite3'}",
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        MEDIA_ROOT=str(home / "media"), STATIC_ROOT=str(home / "static"),
        LOG_LEVEL="WARNING",
    )
    return env


def django(python: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run([str(python), "-m", "django", *args], env=env, cwd=env["HOME"])


def test_the_wheel_holds_templates_static_files_and_demo_flows(installed):
    code = ("import workflows, approvals, accounts, pathlib; "
            "w = pathlib.Path(workflows.__file__).parent; "
            "a = pathlib.Path(approvals.__file__).parent; "
            "print(w); "
            "print((w / 'templates/workflows/flow_page.html').is_file(), "
            "(a / 'templates/approvals/inbox.html').is_file(), "
            "(w / 'static/workflows/admin.js').is_file(), "
            "len(list((w / 'demo').glob('*.yaml'))), "
            "(a / 'templates/approvals/email/approval_requested.txt').is_file(), "
            "(pathlib.Path(accounts.__file__).parent / 'templates/accounts/login.html').is_file())")
    out = run([str(installed), "-c", code], cwd="/").stdout.splitlines()
    assert not out[0].startswith(str(SOURCE)), "imported the source tree, not the wheel"
    assert out[1] == "True True True 5 True True"


def test_the_installed_copy_migrates_checks_and_serves(installed, environment):
    django(installed, environment, "migrate", "--noinput")
    check = django(installed, environment, "check", "--deploy", "--fail-level", "WARNING")
    assert "no issues" in check.stdout
    loaded = django(installed, environment, "load_demo_flows")
    assert "approval-demo" in loaded.stdout + loaded.stderr

    port = free_port()
    server = subprocess.Popen(
        [str(installed), "-m", "django", "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=environment, cwd=environment["HOME"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, timeout=30)

        def get(path: str) -> tuple[int, str, dict[str, str]]:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                headers={"Host": "workflows.example.com", "X-Forwarded-Proto": "https"})
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode(), dict(response.headers)

        status, login, headers = get("/admin/login/")
        assert status == 200 and 'name="username"' in login
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        stylesheets = re.findall(r'<link[^>]+href="([^"]+\.css)"', login)
        assert stylesheets
        for href in stylesheets:
            css_status, css, _ = get(href)
            assert css_status == 200 and "{" in css

        status, docs, _ = get("/api/v1/docs")
        assert status == 200 and "swagger-ui-bundle.js" in docs
        bundle = re.search(r'src="([^"]+swagger-ui-bundle\.js)"', docs).group(1)
        assert bundle.startswith("/static/")
        assert get(bundle)[0] == 200

        status, health, _ = get("/healthz")
        assert status == 200 and '"ok"' in health
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_wheel_installs_the_wf_console_script(installed):
    """`wf` comes from the workflows_cli package of the wheel, not from the source tree."""
    wf = installed.parent / "wf"
    done = subprocess.run([str(wf), "flows", "list", "--url", "http://127.0.0.1:9"],
                          capture_output=True, text=True, timeout=60, env=CLEAN_ENV, cwd="/")
    assert done.returncode == 5, done.stdout + done.stderr
    assert '"network_error"' in done.stdout
    where = run([str(installed), "-c", "import workflows_cli; print(workflows_cli.__file__)"],
                cwd="/").stdout
    assert not where.startswith(str(SOURCE))
