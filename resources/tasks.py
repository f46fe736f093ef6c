"""django-q2 entry points of the resources app (the daily prune; see migration 0003)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from resources.retention import runs_prune


def prune() -> dict[str, Any]:
    """The daily retention pass; django-q2 keeps the returned report as the task's result."""
    return runs_prune(now=timezone.now())
