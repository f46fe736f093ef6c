"""The http step's side of the outbound policy (connections/outbound.py, one rule for every
request the platform makes): the httpx request hook that turns a refusal into
`DestinationRefused`, the step's typed, never-retried error.

Every request an http step sends (its one hop: redirects are never followed) passes
`check_destination` before anything is sent.
"""

from __future__ import annotations

import httpx

from connections.outbound import OutboundRefused, check_request, destination_problem, url_problem
from workflows.steps.base import StepFailed

__all__ = ["EVENT_HOOKS", "DestinationRefused", "check_destination", "destination_problem",
           "url_problem"]


class DestinationRefused(StepFailed):
    """The request's destination is refused by the outbound policy. Never retried: the same
    destination would be refused again; nothing was sent."""

    def __init__(self, message: str):
        super().__init__(message, error_type="DestinationRefused", retryable=False)


def check_destination(request: httpx.Request) -> None:
    """httpx request hook: raise DestinationRefused before `request` is sent."""
    try:
        check_request(request)
    except OutboundRefused as exc:
        raise DestinationRefused(f"{request.method} {request.url} {exc}; nothing was sent") \
            from None


EVENT_HOOKS = {"request": [check_destination]}
