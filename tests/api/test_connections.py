import pytest
from django.contrib.auth.models import Permission

from connections.models import Connection, ConnectionAudit
from connections.selectors import connection_secret
from tests.api.conftest import ApiClient, make_user
from workflows.services.tokens import api_token_create

pytestmark = pytest.mark.django_db

HTTP_CONNECTION = {
    "name": "reports-api", "kind": "http", "description": "Reports",
    "config": {"base_url": "https://reports.example.com", "auth": "bearer"},
    "secret": {"token": "s3cr3t-token-value"},
}


def test_admins_create_list_and_get_connections_without_secrets(admin_api):
    created = admin_api.post("/connections", HTTP_CONNECTION)
    assert created.status == 201, created.body
    assert created.body["has_secret"] is True
    assert "secret" not in created.body and "s3cr3t" not in str(created.body)
    listed = admin_api.get("/connections").body
    assert [c["name"] for c in listed["items"]] == ["reports-api"]
    assert "s3cr3t" not in str(listed)
    one = admin_api.get("/connections/reports-api")
    assert one.status == 200 and one.body["config"]["base_url"] == "https://reports.example.com"


def test_update_changes_only_the_given_fields_and_null_clears_the_secret(admin_api):
    admin_api.post("/connections", HTTP_CONNECTION)
    changed = admin_api.put("/connections/reports-api", {"description": "Nightly reports"})
    assert changed.status == 200
    assert changed.body["description"] == "Nightly reports" and changed.body["has_secret"]
    connection = Connection.objects.get(name="reports-api")
    assert connection_secret(connection=connection) == {"token": "s3cr3t-token-value"}
    cleared = admin_api.put("/connections/reports-api", {"secret": None})
    assert cleared.body["has_secret"] is False
    actions = set(ConnectionAudit.objects.values_list("action", flat=True))
    assert {"created", "secret_set", "updated", "secret_cleared"} <= actions


def test_invalid_connections_are_a_422_with_every_problem(admin_api):
    response = admin_api.post("/connections", {
        "name": "Bad Name", "kind": "http",
        "config": {"base_url": "ftp://x", "password": "oops"},
    })
    assert response.status == 422 and response.error["code"] == "connection_invalid"
    assert {d["path"] for d in response.error["details"]} == {"name"} or \
        {d["path"] for d in response.error["details"]} >= {"name"}
    duplicate = admin_api.post("/connections", HTTP_CONNECTION)
    assert duplicate.status == 201
    again = admin_api.post("/connections", HTTP_CONNECTION)
    assert again.status == 422 and again.error["details"][0]["path"] == "name"
    wrong_type = admin_api.put("/connections/reports-api", {"config": "text"})
    assert wrong_type.status == 422


def test_only_admins_may_see_or_change_connections(as_user, admin_api):
    admin_api.post("/connections", HTTP_CONNECTION)
    for role in ("builder", "operator", "support", "reviewer"):
        api = as_user(role)
        assert api.get("/connections").status == 403
        assert api.get("/connections/reports-api").status == 403
        assert api.post("/connections", {**HTTP_CONNECTION, "name": "other"}).status == 403
        assert api.put("/connections/reports-api", {"description": "x"}).status == 403
    assert Connection.objects.get(name="reports-api").description == "Reports"
    assert not Connection.objects.filter(name="other").exists()


def test_holders_of_manage_connections_are_admins_too(db):
    user = make_user("ops")
    user.user_permissions.add(Permission.objects.get(codename="manage_connections"))
    _, raw = api_token_create(user=user)
    assert ApiClient(raw).get("/connections").status == 200


def test_an_unknown_connection_is_a_404(admin_api):
    assert admin_api.get("/connections/nope").status == 404
    assert admin_api.put("/connections/nope", {"description": "x"}).status == 404


def test_connections_page_by_name(admin_api):
    for index in range(5):
        admin_api.post("/connections", {"name": f"conn-{index}", "kind": "generic"})
    first = admin_api.get("/connections", limit=2).body
    second = admin_api.get("/connections", limit=2, cursor=first["next_cursor"]).body
    third = admin_api.get("/connections", limit=2, cursor=second["next_cursor"]).body
    names = [c["name"] for page in (first, second, third) for c in page["items"]]
    assert names == [f"conn-{index}" for index in range(5)] and third["next_cursor"] is None


def test_unknown_config_and_secret_fields_are_a_422_naming_each(admin_api):
    response = admin_api.post("/connections", {
        **HTTP_CONNECTION,
        "config": {**HTTP_CONNECTION["config"], "base_ur": "https://typo.example.com"},
        "secret": {"token": "s3cr3t-token-value", "headers": {"X-Key": "s3cr3t-header"}},
    })
    assert response.status == 422, response.body
    paths = {d["path"] for d in response.error["details"]}
    assert paths == {"config.base_ur", "secret.headers"}
    assert "s3cr3t" not in str(response.body)
    assert not Connection.objects.exists()
    admin_api.post("/connections", HTTP_CONNECTION)
    changed = admin_api.put("/connections/reports-api", {"secret": {"tokn": "x"}})
    assert changed.status == 422
    assert [d["path"] for d in changed.error["details"]] == ["secret.tokn"]


def test_a_proxy_jump_cycle_or_a_jump_to_a_missing_or_non_ssh_connection_is_a_422(admin_api):
    from tests.connections.conftest import HOST_KEY_LINE

    def ssh(name, **config):
        return {"name": name, "kind": "ssh", "secret": {"password": "pw-123456"},
                "config": {"host": "h.example.com", "username": "u",
                           "known_hosts": HOST_KEY_LINE, **config}}

    missing = admin_api.post("/connections", ssh("vm", proxy_jump="gone"))
    assert missing.status == 422
    assert missing.error["details"] == [{
        "path": "config.proxy_jump", "message": "proxy_jump chain vm → gone: no connection "
                                                "named 'gone'"}]
    admin_api.post("/connections", HTTP_CONNECTION)
    wrong_kind = admin_api.post("/connections", ssh("vm", proxy_jump="reports-api"))
    assert wrong_kind.status == 422
    assert "vm → reports-api" in wrong_kind.error["details"][0]["message"]
    assert "http connection" in wrong_kind.error["details"][0]["message"]
    assert admin_api.post("/connections", ssh("a")).status == 201
    assert admin_api.post("/connections", ssh("b", proxy_jump="a")).status == 201
    cycle = admin_api.put("/connections/a", {"config": ssh("a", proxy_jump="b")["config"]})
    assert cycle.status == 422
    assert cycle.error["details"][0]["message"] == "proxy_jump chain a → b → a is a cycle"


def test_testing_a_connection_through_the_api(admin_api, as_user):
    admin_api.post("/connections", {**HTTP_CONNECTION, "config": {
        "base_url": "http://127.0.0.1:9", "auth": "bearer"}})
    answer = admin_api.post("/connections/reports-api/test")
    assert answer.status == 200, answer.body
    assert answer.body["ok"] is False
    assert set(answer.body) == {"ok", "latency_ms", "detail", "error"}
    assert answer.body["error"]["type"] == "ConnectError"
    assert "s3cr3t" not in str(answer.body)
    assert as_user("builder").post("/connections/reports-api/test").status == 403
    assert admin_api.post("/connections/nope/test").status == 404
    admin_api.post("/connections", {"name": "misc", "kind": "generic"})
    generic = admin_api.post("/connections/misc/test")
    assert generic.status == 422 and generic.error["details"][0]["path"] == "kind"
