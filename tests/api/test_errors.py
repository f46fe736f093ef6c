"""Bad input of every kind is a 4xx with the one error shape, never a 500."""

import json

import pytest

from tests.hostile import JSON_TEXTS, PATH_IDS, UNSTORABLE_STRINGS

pytestmark = pytest.mark.django_db


def assert_error_shape(body):
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["details"], list)


def test_malformed_json_is_a_400(admin_api, flow):
    response = admin_api.post("/flows/simple/runs", raw=b'{"input": ')
    assert response.status == 400
    assert_error_shape(response.body)
    assert "not valid JSON" in response.error["message"]


def test_nan_is_not_json(admin_api, flow):
    response = admin_api.post("/flows/simple/runs", raw=b'{"input": {"x": NaN}}')
    assert response.status == 400


def test_a_wrong_content_type_is_a_415(admin_api, flow):
    response = admin_api.post("/flows/simple/runs", raw=b"input=1",
                              content_type="application/x-www-form-urlencoded")
    assert response.status == 415 and response.error["code"] == "unsupported_media_type"


def test_a_huge_body_is_a_413(admin_api, flow):
    body = json.dumps({"input": {"blob": "x" * (1024 * 1024 + 10)}}).encode()
    response = admin_api.post("/flows/simple/runs", raw=body)
    assert response.status == 413 and response.error["code"] == "payload_too_large"


def test_wrong_types_are_a_422_with_paths(admin_api, flow):
    response = admin_api.post("/flows/simple/runs", {"input": [1], "draft": "maybe"})
    assert response.status == 422
    assert_error_shape(response.body)
    assert {d["path"] for d in response.error["details"]} >= {"input", "draft"}
    assert admin_api.post("/flows/simple/runs", [1, 2]).status == 422
    assert admin_api.get("/flows", limit="many").status == 422


def test_strings_the_database_cannot_store_are_a_422(admin_api, flow):
    response = admin_api.post("/flows/simple/runs",
                              {"input": {}, "idempotency_key": "a\u0000b"})
    assert response.status == 422
    assert response.error["details"][0]["path"] == "idempotency_key"
    surrogate = admin_api.post("/flows/simple/runs", raw=b'{"input": {"k": "\\ud800"}}')
    assert surrogate.status == 422
    assert admin_api.get("/flows/a%00b").status == 400


def test_an_unknown_endpoint_is_a_json_404(admin_api):
    response = admin_api.get("/no/such/thing")
    assert response.status == 404
    assert_error_shape(response.body)


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options"])
def test_an_unknown_endpoint_is_a_json_404_for_every_method(method):
    """Unsafe methods too: no HTML 403 "CSRF cookie not set" from a session-less client."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    if method == "get":
        response = client.get("/api/v1/no/such/thing")
    else:
        response = getattr(client, method)("/api/v1/no/such/thing", data=b"{}",
                                           content_type="application/json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert_error_shape(response.json())
    assert response.json()["error"]["code"] == "not_found"


def test_a_wrong_method_is_a_json_405(admin_api, flow):
    response = admin_api.request("delete", "/flows/simple")
    assert response.status == 405
    assert_error_shape(response.body)
    assert response.headers["Allow"] == "GET"


@pytest.mark.parametrize("path", ["/flows", "/runs/1", "/approvals", "/connections"])
def test_every_error_has_the_same_shape(anon_api, path):
    response = anon_api.get(path)
    assert response.status == 401
    assert_error_shape(response.body)


def test_the_openapi_page_is_served(admin_api, client):
    assert client.get("/api/v1/docs").status_code == 200
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/flows/{slug}/runs" in schema["paths"]


@pytest.mark.parametrize("text", JSON_TEXTS)
def test_hostile_json_in_a_body_is_a_400(admin_api, flow, text):
    """Non-finite numbers, integers past Python's digit limit, nesting past the recursion
    limit: the same values the admin's run form is fed (tests/admin/test_hostile_doors.py)."""
    response = admin_api.post("/flows/simple/runs",
                              raw=b'{"input": {"x": ' + text.encode() + b"}}")
    assert response.status == 400 and response.error["code"] == "bad_request"
    assert "not valid JSON" in response.error["message"]


@pytest.mark.parametrize("value", UNSTORABLE_STRINGS)
def test_unstorable_strings_anywhere_in_the_input_are_a_422(admin_api, flow, value):
    for given in ({"k": value}, {"k": ["ok", value]}, {value: 1}):
        response = admin_api.post("/flows/simple/runs", {"input": given})
        assert response.status == 422, (given, response.body)


@pytest.mark.parametrize("draft", ["yes", "true", "1", 1, 0, None, "on"])
def test_draft_must_be_a_json_boolean(admin_api, flow, draft):
    """Issue 25 (notes): `"draft": "yes"` was read as true."""
    response = admin_api.post("/flows/simple/runs", {"input": {}, "draft": draft})
    assert response.status == 422, response.body
    assert [d["path"] for d in response.error["details"]] == ["draft"]
    assert not flow.runs.exists()


@pytest.mark.parametrize("value", PATH_IDS)
def test_ids_that_are_not_ids_are_a_4xx(admin_api, flow, value):
    """The same values the admin's approval URLs and the download links are fed
    (tests/admin/test_hostile_doors.py, tests/resources/test_download_hostile.py)."""
    from urllib.parse import quote

    segment = quote(value, safe="")
    for path in (f"/runs/{segment}", f"/runs/{segment}/events", f"/approvals/{segment}",
                 f"/resources/{segment}"):
        response = admin_api.get(path)
        assert 400 <= response.status < 500, (path, response.status)
    for path in (f"/runs/{segment}/cancel", f"/approvals/{segment}/approve"):
        response = admin_api.post(path, {})
        assert 400 <= response.status < 500, (path, response.status)


def test_hostile_query_values_are_never_a_500(admin_api, flow):
    """Cursors, limits, version labels and search text fed the same values as the admin's
    pages (tests/admin/test_hostile_doors.py)."""
    from urllib.parse import quote

    from tests.factories import drain
    from workflows.services.runs import run_start

    run, _ = run_start(flow=flow, input={})
    drain()
    failures = []
    for value in PATH_IDS:
        text = quote(value)
        for path in (f"/runs?q={text}&limit={text}", f"/runs?cursor={text}",
                     f"/approvals?cursor={text}", f"/flows/simple/runs?cursor={text}",
                     f"/flows/simple/matrix?before={text}&limit={text}",
                     f"/flows/simple/diff?from={text}&to={text}",
                     f"/runs/{run.pk}/compare?to={text}", f"/runs/{run.pk}/events?cursor={text}",
                     f"/runs/{run.pk}/steps/first/logs?cursor={text}&limit={text}",
                     f"/flows/simple/history?cursor={text}",
                     f"/runs/{run.pk}/steps/{quote(value, safe='')}"):
            status = admin_api.request("get", path).status
            if status >= 500:
                failures.append((path[:100], status))
    assert not failures, failures
