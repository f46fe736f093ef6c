"""Reading the admin pages in tests."""

from __future__ import annotations

import re

from django.contrib.messages import get_messages
from django.urls import reverse

CELL = re.compile(r'data-run="(\d+)" data-step="([a-z0-9_]+)" data-status="([a-z_]+)"')


def cells(html: str) -> set[tuple[int, str, str]]:
    return {(int(run), step, status) for run, step, status in CELL.findall(html)}


def flow_url(flow) -> str:
    return reverse("admin:workflows_flow_change", args=[flow.pk])


def run_url(run) -> str:
    return reverse("admin:workflows_run_change", args=[run.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]
