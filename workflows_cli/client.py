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


LOGIN_HINT = "log in with `wf auth login` (or set WF_TOKEN)"


def exit_code_for(status: int) -> int:
    """401 (no token, or one the server does not know: revoked, expired, mistyped) is 3, like
    a missing object, with a hint to log in; 403 (a known user without the role) stays 1."""
    if status == 401:
        return EXIT_NOT_FOUND
    if status == 403:
        return EXIT_AUTH
    if status == 404:
        return EXIT_NOT_FOUND
    if status == 429 or status >= 500:
        return EXIT_SERVER
    if 400 <= status < 500:
        return EXIT_CONFLICT
    return EXIT_SERVER


class Api:
    """The API at `url`, with `token` when there is one. Relative paths are under /api/v1."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0):
        self.base = url.rstrip("/")
        self.has_token = bool(token)
        headers = {"Accept": "application/json", "User-Agent": "wf-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(base_url=self.base + API_PREFIX, headers=headers,
                                   timeout=timeout, follow_redirects=False)

    def send(self, method: str, path: str, *, body: Any = None,
             params: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        """The raw answer; a network failure or timeout raises CliError (exit 5)."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            return self.client.request(method, path, params=params, headers=headers,
                                       json=body if body is not None else None)
        except httpx.TimeoutException as exc:
            raise CliError(EXIT_SERVER, error_object("timeout", f"the API did not answer in time: "
                                                          f"{exc}")) from None
        except httpx.HTTPError as exc:
            raise CliError(EXIT_SERVER, error_object(
                "network_error", f"cannot reach the API at {self.base}: {exc}")) from None

    def request(self, method: str, path: str, *, body: Any = None,
                params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """(status, parsed JSON) of a successful answer; an error answer raises CliError with
        the API's error object (and its `status`)."""
        response = self.send(method, path, body=body, params=params, headers=headers)
        return response.status_code, self.check(response)

    def check(self, response: httpx.Response) -> Any:
        """The answer's JSON (None when it has none); an error answer raises CliError."""
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
            if response.status_code == 401 and error.get("code") == "unauthorized":
                reason = "no API token was given" if not self.has_token else \
                    "the API token was refused (revoked, expired or mistyped)"
                error["message"] = f"{reason}: {LOGIN_HINT}"
            raise CliError(exit_code_for(response.status_code), error)
        return document

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)[1]

    def post(self, path: str, body: Any = None, *,
             headers: dict[str, str] | None = None) -> Any:
        return self.request("POST", path, body=body, headers=headers)[1]

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
