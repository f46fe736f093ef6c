from __future__ import annotations

import json

import pytest
from django.urls import reverse

from connections.models import Connection, ConnectionAudit
from connections.selectors import connection_secret
from connections.services import connection_create
from tests.connections.conftest import HOST_KEY_LINE

pytestmark = pytest.mark.django_db

TOKEN = "tok-7f3a9c1e5b2d8f40"
CHANGELIST = "admin:connections_connection_changelist"


def _change_url(conn: Connection) -> str:
    return reverse("admin:connections_connection_change", args=[conn.pk])


def _form(conn: Connection, **overrides) -> dict[str, str]:
    data = {
        "kind": conn.kind,
        "description": conn.description,
        "config": json.dumps(conn.config),
        "secret": "",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def test_the_change_page_never_shows_the_secret(admin_client, http_connection):
    response = admin_client.get(_change_url(http_connection))
    assert response.status_code == 200
    page = response.content.decode()
    assert TOKEN not in page
    assert http_connection.secret_ciphertext not in page
    assert 'name="secret"' in page and 'name="clear_secret"' in page
    assert "icon-yes" in page  # secret set


def test_posting_a_secret_replaces_it_and_audits(admin_client, admin_user, http_connection):
    ConnectionAudit.objects.all().delete()
    response = admin_client.post(
        _change_url(http_connection), _form(http_connection, secret='{"token": "tok-replaced-1"}')
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    fresh = Connection.objects.get(pk=http_connection.pk)
    assert connection_secret(connection=fresh) == {"token": "tok-replaced-1"}
    assert [(a.action, a.fields, a.actor_id) for a in ConnectionAudit.objects.all()] == [
        ("secret_set", ["secret"], admin_user.pk)
    ]


def test_posting_without_a_secret_keeps_it(admin_client, http_connection):
    response = admin_client.post(
        _change_url(http_connection), _form(http_connection, description="Changed")
    )
    assert response.status_code == 302
    fresh = Connection.objects.get(pk=http_connection.pk)
    assert fresh.description == "Changed"
    assert connection_secret(connection=fresh) == {"token": TOKEN}
    assert ConnectionAudit.objects.filter(action="updated", fields=["description"]).exists()


def test_the_clear_box_clears_the_secret(admin_client, http_connection):
    response = admin_client.post(
        _change_url(http_connection), _form(http_connection, clear_secret="on")
    )
    assert response.status_code == 302
    assert not Connection.objects.get(pk=http_connection.pk).has_secret
    assert ConnectionAudit.objects.filter(action="secret_cleared").exists()


def test_a_refused_form_does_not_echo_the_typed_secret(admin_client, http_connection):
    typed = '{"token": "tok-typed-but-refused"}'
    response = admin_client.post(
        _change_url(http_connection), _form(http_connection, secret=typed, clear_secret="on")
    )
    assert response.status_code == 200  # form errors
    page = response.content.decode()
    assert "tok-typed-but-refused" not in page
    assert connection_secret(connection=Connection.objects.get(pk=http_connection.pk)) == {
        "token": TOKEN
    }


def test_invalid_secret_json_is_a_form_error_without_the_value(admin_client, http_connection):
    response = admin_client.post(
        _change_url(http_connection), _form(http_connection, secret="{tok-not-json-123")
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "not valid JSON" in page
    assert "tok-not-json-123" not in page


def test_validation_problems_show_on_the_form(admin_client, http_connection):
    response = admin_client.post(
        _change_url(http_connection), _form(http_connection, config='{"auth": "oauth"}')
    )
    assert response.status_code == 200
    assert "config.auth" in response.content.decode()
    assert Connection.objects.get(pk=http_connection.pk).config["auth"] == "bearer"


def test_unknown_fields_and_a_broken_jump_chain_show_on_the_form(admin_client, http_connection):
    response = admin_client.post(
        _change_url(http_connection),
        _form(http_connection, config='{"base_url": "https://x.example.com", "retries": 3}',
              secret='{"token": "tok-kept-out-99", "headers": {"a": "b"}}'),
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "config.retries" in page and "secret.headers" in page
    assert "tok-kept-out-99" not in page
    response = admin_client.post(
        reverse("admin:connections_connection_add"),
        {"name": "vm", "kind": "ssh", "description": "", "_save": "Save",
         "config": json.dumps({"host": "h.example.com", "username": "u",
                               "known_hosts": HOST_KEY_LINE, "proxy_jump": "reports-api"}),
         "secret": '{"password": "pw-9999999"}'},
    )
    assert response.status_code == 200
    assert "proxy_jump chain vm → reports-api" in response.content.decode()
    assert not Connection.objects.filter(name="vm").exists()


def test_adding_a_connection_goes_through_the_service(admin_client, admin_user):
    response = admin_client.post(
        reverse("admin:connections_connection_add"),
        {
            "name": "new-api",
            "kind": "http",
            "description": "",
            "config": '{"base_url": "https://api.example.com", "auth": "bearer"}',
            "secret": '{"token": "tok-added-5555"}',
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    conn = Connection.objects.get(name="new-api")
    assert connection_secret(connection=conn) == {"token": "tok-added-5555"}
    assert sorted(
        ConnectionAudit.objects.filter(connection=conn).values_list("action", flat=True)
    ) == ["created", "secret_set"]


def test_deleting_writes_an_audit_row(admin_client, http_connection):
    url = reverse("admin:connections_connection_delete", args=[http_connection.pk])
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Connection.objects.filter(pk=http_connection.pk).exists()
    assert ConnectionAudit.objects.filter(action="deleted", connection_name="reports-api").exists()


def test_a_staff_user_without_the_permission_gets_403(client, plain_user, http_connection):
    client.force_login(plain_user)
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(_change_url(http_connection)).status_code == 403
    response = client.post(
        _change_url(http_connection), _form(http_connection, secret='{"token": "tok-hijack-0000"}')
    )
    assert response.status_code == 403
    assert client.get(reverse("admin:connections_connectionaudit_changelist")).status_code == 403
    assert connection_secret(connection=Connection.objects.get(pk=http_connection.pk)) == {
        "token": TOKEN
    }


def test_a_staff_user_with_manage_connections_may_use_the_pages(client, manager, http_connection):
    client.force_login(manager)
    assert client.get(reverse(CHANGELIST)).status_code == 200
    page = client.get(_change_url(http_connection)).content.decode()
    assert TOKEN not in page
    response = client.post(
        _change_url(http_connection), _form(http_connection, secret='{"token": "tok-by-manager"}')
    )
    assert response.status_code == 302
    assert ConnectionAudit.objects.filter(actor=manager, action="secret_set").exists()


def test_the_audit_admin_is_read_only(admin_client, http_connection):
    audit = ConnectionAudit.objects.first()
    page = admin_client.get(reverse("admin:connections_connectionaudit_changelist"))
    assert page.status_code == 200
    assert TOKEN not in page.content.decode()
    url = reverse("admin:connections_connectionaudit_change", args=[audit.pk])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {}).status_code == 403
    assert admin_client.get(reverse("admin:connections_connectionaudit_add")).status_code == 403


def test_the_changelist_lists_connections_without_secrets(
    admin_client, http_connection, django_assert_max_num_queries
):
    for i in range(5):
        connection_create(actor=None, name=f"extra-{i}", kind="generic", secret={"k": f"val-{i}xx"})
    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse(CHANGELIST))
    page = response.content.decode()
    assert "reports-api" in page and TOKEN not in page and "val-1xx" not in page
