"""The admin page modules and the API modules stay thin: no query of their own (they read
through selectors), and a size a newcomer can read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import workflows.admin_views
import workflows.api

ROOT = Path(workflows.admin_views.__file__).parents[2]
MODULES = [*sorted(Path(workflows.admin_views.__file__).parent.glob("*.py")),
           ROOT / "approvals" / "admin_views.py"]
API_MODULES = [*sorted(Path(workflows.api.__file__).parent.glob("*.py")),
               ROOT / "approvals" / "api.py"]


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_admin_page_modules_read_only_through_selectors(module: Path):
    source = module.read_text()
    assert not re.search(r"\.objects\b|get_object_or_404|get_list_or_404", source), (
        f"{module.name} queries the database itself; add a selector")


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_admin_page_modules_stay_under_500_lines(module: Path):
    assert len(module.read_text().splitlines()) < 500


@pytest.mark.parametrize("module", API_MODULES, ids=lambda p: p.name)
def test_api_modules_read_only_through_selectors(module: Path):
    source = module.read_text()
    assert not re.search(r"\.objects\b|get_object_or_404|get_list_or_404", source), (
        f"{module.parent.name}/{module.name} queries the database itself; add a selector "
        "(workflows.document_selectors, workflows.selectors or the app's selectors)")
