"""The HTTP side of `wf`: one `Api` client (base URL, bearer token, timeouts), the error a
command raises (`CliError`, printed as `{"error": ...}` with its exit code) and the mapping of
HTTP statuses to exit codes. Nothing here knows a command."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"

EXIT_OK = 0
EXIT_AUTH = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_SERVER = 5


class CliError(Exception):
    """A failure to report as `{"error": ...}` with an exit code."""

    def __init__(self, exit_code: int, error: dict[str, Any]):
        self.exit_code = exit_code
        self.error = error
        super().__init__(error.get("message", ""))


def error_object(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "details": [], **extra}


def exit_code_for(status: int) -> int:
    if status in (401, 403):
        return EXIT_AUTH
    if status == 404:
        return EXIT_NOT_FOUND
    if status == 429 or status >= 500:
        return EXIT_SERVER
    if 400 <= status < 500:
        return EXIT_CONFLICT
    return EXIT_SERVER


class Api:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0):
        self.base = url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "wf-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(base_url=self.base + API_PREFIX, headers=headers,
                                   timeout=timeout, follow_redirects=False)

    def request(self, method: str, path: str, *, body: Any = None,
                params: dict[str, Any] | None = None) -> tuple[int, Any]:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self.client.request(method, path, params=params,
                                           json=body if body is not None else None)
        except httpx.TimeoutException as exc:
            raise CliError(EXIT_SERVER, error_object("timeout", f"the API did not answer in time: "
                                                          f"{exc}")) from None
        except httpx.HTTPError as exc:
            raise CliError(EXIT_SERVER, error_object(
                "network_error", f"cannot reach the API at {self.base}: {exc}")) from None
        try:
            document = response.json() if response.content else None
        except ValueError:
            document = None
        if response.status_code >= 400:
            if isinstance(document, dict) and isinstance(document.get("error"), dict):
                error = document["error"]
            else:
                error = error_object(f"http_{response.status_code}",
                               (response.text or response.reason_phrase)[:500])
            error.setdefault("status", response.status_code)
            raise CliError(exit_code_for(response.status_code), error)
        return response.status_code, document

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)[1]

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body=body)[1]

    def put(self, path: str, body: Any = None) -> Any:
        return self.request("PUT", path, body=body)[1]

    def all_pages(self, path: str, **params: Any) -> dict[str, Any]:
        items: list[Any] = []
        cursor = None
        while True:
            page = self.get(path, cursor=cursor, limit=200, **params)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return {"items": items, "next_cursor": None}


def seg(value: Any) -> str:
    """One URL path segment."""
    return quote(str(value), safe="")
