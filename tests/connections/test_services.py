from __future__ import annotations

import pytest

from connections.errors import ConnectionInvalid, ConnectionNotFound
from connections.models import Connection, ConnectionAudit
from connections.selectors import connection_get, connection_secret
from connections.services import (
    connection_create,
    connection_delete,
    connection_rotate_keys,
    connection_update,
)
from workflows.errors import NotPermitted

pytestmark = pytest.mark.django_db

TOKEN = "tok-7f3a9c1e5b2d8f40"


def _audits(conn: Connection) -> list[tuple[str, list[str]]]:
    return [
        (a.action, a.fields)
        for a in ConnectionAudit.objects.filter(connection_name=conn.name).order_by("pk")
    ]


def _assert_no_values_in_audits(*values: str) -> None:
    for audit in ConnectionAudit.objects.all():
        text = repr((audit.action, audit.fields, audit.connection_name, str(audit)))
        for value in values:
            assert value not in text


def test_create_audits_the_fields_and_the_secret_but_no_values(manager):
    conn = connection_create(
        actor=manager,
        name="reports-api",
        kind="http",
        config={"base_url": "https://reports.example.com", "auth": "bearer"},
        secret={"token": TOKEN},
        description="Reports",
    )
    assert _audits(conn) == [
        ("created", ["name", "kind", "config", "description"]),
        ("secret_set", ["secret"]),
    ]
    assert ConnectionAudit.objects.filter(actor=manager).count() == 2
    _assert_no_values_in_audits(TOKEN, "https://reports.example.com", "Reports")


def test_update_audits_changed_field_names_only(manager, http_connection):
    ConnectionAudit.objects.all().delete()
    connection_update(
        actor=manager,
        connection=http_connection,
        config={"base_url": "https://new.example.com", "auth": "bearer"},
        description="New description",
    )
    assert _audits(http_connection) == [
        ("updated", ["description", "config", "config.base_url"]),
    ]
    _assert_no_values_in_audits("https://new.example.com", "New description", TOKEN)
    http_connection.refresh_from_db()
    assert http_connection.config["base_url"] == "https://new.example.com"
    assert connection_secret(connection=http_connection) == {"token": TOKEN}  # unchanged


def test_replacing_the_secret_audits_secret_set(manager, http_connection):
    ConnectionAudit.objects.all().delete()
    connection_update(actor=manager, connection=http_connection, secret={"token": "tok-new-4444"})
    assert _audits(http_connection) == [("secret_set", ["secret"])]
    _assert_no_values_in_audits("tok-new-4444")
    fresh = Connection.objects.get(pk=http_connection.pk)
    assert connection_secret(connection=fresh) == {"token": "tok-new-4444"}


def test_clearing_the_secret_audits_secret_cleared(manager, http_connection):
    ConnectionAudit.objects.all().delete()
    connection_update(actor=manager, connection=http_connection, secret=None)
    assert _audits(http_connection) == [("secret_cleared", ["secret"])]
    fresh = Connection.objects.get(pk=http_connection.pk)
    assert not fresh.has_secret
    assert connection_secret(connection=fresh) == {}


def test_an_update_that_changes_nothing_writes_nothing(manager, http_connection):
    ConnectionAudit.objects.all().delete()
    connection_update(
        actor=manager,
        connection=http_connection,
        config=dict(http_connection.config),
        description="Reports",
    )
    connection_update(actor=manager, connection=Connection.objects.get(name="reports-api"))
    assert ConnectionAudit.objects.count() == 0


def test_clearing_an_absent_secret_is_not_a_change(manager):
    conn = connection_create(actor=None, name="bare", kind="generic")
    ConnectionAudit.objects.all().delete()
    connection_update(actor=manager, connection=conn, secret=None)
    assert ConnectionAudit.objects.count() == 0


def test_a_plain_user_may_not_create_update_or_delete(plain_user, http_connection):
    with pytest.raises(NotPermitted):
        connection_create(actor=plain_user, name="x-api", kind="generic")
    with pytest.raises(NotPermitted):
        connection_update(actor=plain_user, connection=http_connection, secret=None)
    with pytest.raises(NotPermitted):
        connection_delete(actor=plain_user, connection=http_connection)
    assert not Connection.objects.filter(name="x-api").exists()
    assert Connection.objects.get(pk=http_connection.pk).has_secret


def test_an_inactive_superuser_is_refused(django_user_model):
    ghost = django_user_model.objects.create_superuser("ghost", password="pw", is_active=False)
    with pytest.raises(NotPermitted):
        connection_create(actor=ghost, name="x-api", kind="generic")


def test_a_user_with_manage_connections_may_change_connections(manager):
    conn = connection_create(actor=manager, name="x-api", kind="generic", secret={"k": "value"})
    connection_update(actor=manager, connection=conn, description="changed")
    connection_delete(actor=manager, connection=conn)
    assert not Connection.objects.filter(name="x-api").exists()
    assert [a.action for a in ConnectionAudit.objects.order_by("pk")] == [
        "created",
        "secret_set",
        "updated",
        "deleted",
    ]
    # The audit trail outlives the connection.
    assert set(ConnectionAudit.objects.values_list("connection_name", flat=True)) == {"x-api"}


def test_a_superuser_may_change_connections(admin_user):
    conn = connection_create(actor=admin_user, name="x-api", kind="generic")
    assert conn.pk


def _problems(exc: pytest.ExceptionInfo) -> dict[str, str]:
    return {p["path"]: p["message"] for p in exc.value.problems}


@pytest.mark.parametrize("name", ["", "Upper", "-leading", "has space", "dot.ted", "x" * 101])
def test_bad_names_are_refused(name):
    with pytest.raises(ConnectionInvalid) as info:
        connection_create(actor=None, name=name, kind="generic")
    assert "name" in _problems(info)


@pytest.mark.parametrize("name", ["a", "0", "build-vm", "build_vm", "a-b_c-9"])
def test_good_names_are_accepted(name):
    assert connection_create(actor=None, name=name, kind="generic").name == name


def test_a_taken_name_is_a_problem_on_name(http_connection):
    with pytest.raises(ConnectionInvalid) as info:
        connection_create(actor=None, name="reports-api", kind="generic")
    assert "already exists" in _problems(info)["name"]


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConnectionInvalid) as info:
        connection_create(actor=None, name="Bad Name", kind="ftp", config=[], secret="x")
    problems = _problems(info)
    assert {"name", "kind", "config", "secret"} <= set(problems)


def test_ssh_config_requires_host_username_and_known_hosts():
    with pytest.raises(ConnectionInvalid) as info:
        connection_create(actor=None, name="vm", kind="ssh", config={"port": "22"})
    problems = _problems(info)
    assert {"config.host", "config.username", "config.known_hosts", "config.port"} <= set(problems)


@pytest.mark.parametrize(
    "known_hosts",
    [
        "only-two fields",
        "host rsa-key AAAA",
        "host ssh-ed25519 not*base64",
        "# just a comment",
    ],
)
def test_ssh_known_hosts_must_be_host_key_lines(ssh_config, known_hosts):
    ssh_config["known_hosts"] = known_hosts
    with pytest.raises(ConnectionInvalid) as info:
        connection_create(actor=None, name="vm", kind="ssh", config=ssh_config)
    assert "config.known_hosts" in _problems(info)


@pytest.mark.parametrize("port", [0, 70000, True, "22", 2.5])
def test_ssh_port_must_be_an_integer_port(ssh_config, port):
    ssh_config["port"] = port
    with pytest.raises(ConnectionInvalid) as info:
        connection_create(actor=None, name="vm", kind="ssh", config=ssh_config)
    assert "config.port" in _problems(info)


def test_a_valid_ssh_connection_is_created(ssh_config):
    conn = connection_create(
        actor=None,
        name="build-vm",
        kind="ssh",
        config=ssh_config,
        secret={"private_key": "-----BEGIN KEY-----\nabcd\n-----END KEY-----"},
    )
    assert conn.has_secret


def test_an_ssh_secret_needs_a_key_or_a_password(ssh_config):
    with pytest.raises(ConnectionInvalid) as info:
        connection_create(
            actor=None, name="vm", kind="ssh", config=ssh_config, secret={"username": "x"}
        )
    assert "secret" in _problems(info)


@pytest.mark.parametrize(
    "config, path",
    [
        ({"auth": "oauth"}, "config.auth"),
        ({"base_url": "ftp://x"}, "config.base_url"),
        ({"headers": ["x"]}, "config.headers"),
        ({"headers": {"Authorization": "Bearer abc"}}, "config.headers.Authorization"),
        ({"password": "hunter22"}, "config.password"),
        ({"auth": "header", "auth_header": "bad header"}, "config.auth_header"),
    ],
)
def test_http_config_problems(config, path):
    with pytest.raises(ConnectionInvalid) as info:
        connection_create(actor=None, name="api", kind="http", config=config)
    problems = _problems(info)
    assert path in problems
    assert "hunter22" not in str(info.value) and "Bearer abc" not in str(info.value)


def test_generic_config_accepts_anything():
    conn = connection_create(
        actor=None,
        name="misc",
        kind="generic",
        config={"anything": [1, {"x": None}], "password_hint": "ask"},
    )
    assert conn.config["anything"] == [1, {"x": None}]


def test_update_validates_against_the_resulting_kind(http_connection):
    with pytest.raises(ConnectionInvalid) as info:
        connection_update(actor=None, connection=http_connection, kind="ssh")
    assert "config.host" in _problems(info)
    assert Connection.objects.get(pk=http_connection.pk).kind == "http"


def test_update_refuses_a_secret_that_is_not_an_object(http_connection):
    with pytest.raises(ConnectionInvalid) as info:
        connection_update(actor=None, connection=http_connection, secret="plain")  # type: ignore[arg-type]
    assert "secret" in _problems(info)


def test_connection_get_raises_not_found():
    with pytest.raises(ConnectionNotFound):
        connection_get(name="nope")


def test_rotate_keys_counts_only_connections_with_a_secret(http_connection):
    connection_create(actor=None, name="bare", kind="generic")
    assert connection_rotate_keys() == 1


def test_update_sees_a_config_edited_in_place(manager, http_connection):
    ConnectionAudit.objects.all().delete()
    http_connection.config["base_url"] = "https://moved.example.com"
    connection_update(actor=manager, connection=http_connection, config=http_connection.config)
    assert _audits(http_connection) == [("updated", ["config", "config.base_url"])]
    fresh = Connection.objects.get(pk=http_connection.pk)
    assert fresh.config["base_url"] == "https://moved.example.com"


@pytest.mark.parametrize(
    ("kind", "config", "secret", "paths"),
    [
        ("ssh", {"hostname": "x"}, {"private_key": "k", "pasphrase": "x"},
         {"config.hostname", "secret.pasphrase"}),
        ("http", {"base_url": "https://x.example.com", "timeout": 3}, {"token": "t", "headers": {}},
         {"config.timeout", "secret.headers"}),
    ],
)
def test_every_kind_refuses_unknown_config_and_secret_fields_naming_each(
    db, ssh_config, kind, config, secret, paths
):
    if kind == "ssh":
        config = {**ssh_config, **config}
    with pytest.raises(ConnectionInvalid) as caught:
        connection_create(actor=None, name="x", kind=kind, config=config, secret=secret)
    assert {p["path"] for p in caught.value.problems} == paths
    assert all("unknown field" in p["message"] for p in caught.value.problems)
