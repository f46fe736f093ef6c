"""Browser tests: headless Chromium (tests/conftest.py `page`) against pytest-django's
`live_server`. The engine advances in-process from the test thread (`drain`), so a test decides
exactly when a run moves while the page is open.

Screenshots for docs/screenshots/ are written only when WF_SCREENSHOTS=1 (they change with
every run, so a plain test run must not dirty the tree).
"""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from workflows.steps.actions import action, get_action

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "browser-pw-1"


def screenshots_enabled() -> bool:
    return os.environ.get("WF_SCREENSHOTS", "").strip().lower() in {"1", "true", "yes"}


def save_screenshot(page, name: str, **kwargs) -> None:
    if not screenshots_enabled():
        return
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), **kwargs)


def make_staff(username: str, *groups: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD, is_staff=True,
                                    is_superuser=superuser, email=f"{username}@example.com")
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


def admin_login(page, live_server, username: str) -> None:
    """Log in through the admin's login form, like a person."""
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


if get_action("demo.build") is None:

    @action("demo.build")
    def demo_build(ctx, lines: int = 6, seconds: float = 0.05, **args):
        """A step with some output and some duration, for realistic pages."""
        for n in range(int(lines)):
            ctx.log(f"[{n + 1}/{lines}] compiling module_{n:02d} ... ok\n")
        if args.get("warn"):
            ctx.log("warning: 2 deprecated calls\n", stream="stderr")
        time.sleep(float(seconds))
        return {"artifacts": int(lines), **args}


def ensure_roles() -> None:
    """Transactional tests flush the database, data migrations included: put the role groups
    back as workflows/migrations/0002 makes them."""
    from django.contrib.auth.models import Permission

    roles = importlib.import_module("workflows.migrations.0002_roles_and_sweeper").ROLES
    for name, perms in roles.items():
        group, _ = Group.objects.get_or_create(name=name)
        for perm in perms:
            app_label, codename = perm.split(".")
            permission = Permission.objects.filter(content_type__app_label=app_label,
                                                   codename=codename).first()
            if permission is not None:
                group.permissions.add(permission)


@pytest.fixture(autouse=True)
def roles(transactional_db) -> None:
    ensure_roles()


@pytest.fixture
def superuser(transactional_db) -> User:
    return make_staff("ada", superuser=True)
