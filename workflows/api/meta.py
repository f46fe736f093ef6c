"""/meta (the server's version, for `wf --version`; no credentials needed) and /me (who the
caller is and their roles, for `wf auth login` and `wf auth status`)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

from django.http import HttpRequest
from ninja import Router

from workflows.api.auth import AnonThrottle
from workflows.api.openapi import errors
from workflows.api.schemas import MeOut, MetaOut
from workflows.selectors import user_profile

router = Router(tags=["meta"])

API_VERSION = "1"


@cache
def server_version() -> str:
    try:
        return version("workflows-platform")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


@router.get("/meta", response={200: MetaOut, **errors(anonymous=True)},
            auth=None, throttle=[AnonThrottle()], operation_id="meta_get",
            summary="The server's version and the API version")
def meta_get(request: HttpRequest):
    return {"version": server_version(), "api": API_VERSION}


@router.get("/me", response={200: MeOut, **errors()}, operation_id="me_get",
            summary="The caller: username, roles and the workflow permissions they give")
def me_get(request: HttpRequest):
    return user_profile(user=request.auth)
