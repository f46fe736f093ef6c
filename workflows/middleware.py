"""The reader's time zone for pages: `TimeZoneMiddleware` activates the zone named by the
`wf_tz` cookie (an IANA name such as "Europe/Paris", which the admin script sets from the
browser's own zone), else settings.TIME_ZONE stays current. The `when` filters of
workflows/templatetags/wf_render.py render in the current zone; API documents are ISO 8601 UTC
whatever the cookie says."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "wf_tz"
MAX_NAME = 64


@lru_cache(maxsize=64)
def zone_named(name: str) -> ZoneInfo | None:
    """The zone for an IANA name, or None for anything else (a cookie is user input)."""
    if not name or len(name) > MAX_NAME or ".." in name or name.startswith("/"):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


class TimeZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = zone_named(request.COOKIES.get(COOKIE, ""))
        if zone is None:
            return self.get_response(request)
        timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
