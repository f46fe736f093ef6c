from __future__ import annotations

import pytest

from connections.models import Connection
from connections.selectors import (
    connection_document,
    connection_list,
    connection_redactor,
    connection_secrets_for_step,
    connections_for_step,
    secret_values,
    user_can_manage_connections,
)
from connections.services import connection_create


def test_secret_values_collects_every_string_recursively_and_skips_short_ones():
    secret = {
        "token": "abcd1234",
        "user": "bob",
        "nested": {"list": ["long-value", "x", 12345]},
        "tuple": ("tuple-value",),
        "flag": True,
        "empty": "",
    }
    assert secret_values(secret) == ["tuple-value", "long-value", "abcd1234"]


def test_secret_values_of_nothing():
    assert secret_values({}) == []
    assert secret_values(None) == []


@pytest.mark.django_db
def test_connections_for_step_uses_one_query_and_carries_no_secret(
    django_assert_num_queries, http_connection
):
    connection_create(actor=None, name="other", kind="generic", config={"a": 1})
    with django_assert_num_queries(1):
        found = connections_for_step(names=["reports-api", "other", "missing"])
    assert found == {
        "reports-api": {
            "name": "reports-api",
            "kind": "http",
            "config": {"base_url": "https://reports.example.com", "auth": "bearer"},
        },
        "other": {"name": "other", "kind": "generic", "config": {"a": 1}},
    }
    with django_assert_num_queries(0):
        assert connections_for_step(names=[]) == {}


@pytest.mark.django_db
def test_connection_secrets_for_step_decrypts_in_one_query(
    django_assert_num_queries, http_connection
):
    connection_create(actor=None, name="bare", kind="generic")
    with django_assert_num_queries(1):
        secrets = connection_secrets_for_step(names=["reports-api", "bare"])
    assert secrets == {"reports-api": {"token": "tok-7f3a9c1e5b2d8f40"}, "bare": {}}


@pytest.mark.django_db
def test_connection_document_never_carries_the_secret(http_connection):
    doc = connection_document(Connection.objects.get(pk=http_connection.pk))
    assert set(doc) == {
        "name",
        "kind",
        "description",
        "config",
        "has_secret",
        "created_at",
        "updated_at",
    }
    assert doc["has_secret"] is True
    assert doc["created_at"].endswith("Z")
    assert "tok-7f3a9c1e5b2d8f40" not in repr(doc)
    assert http_connection.secret_ciphertext not in repr(doc)


@pytest.mark.django_db
def test_connection_list_is_ordered_by_name():
    for name in ("b", "a", "c"):
        connection_create(actor=None, name=name, kind="generic")
    assert [c.name for c in connection_list()] == ["a", "b", "c"]


@pytest.mark.django_db
def test_user_can_manage_connections(manager, plain_user, admin_user):
    assert user_can_manage_connections(admin_user)
    assert user_can_manage_connections(manager)
    assert not user_can_manage_connections(plain_user)
    assert not user_can_manage_connections(None)


def test_connection_redactor_covers_every_secret():
    redactor = connection_redactor(secrets=[{"token": "first-secret"}, {"password": "second-pw"}])
    assert redactor.redact("first-secret and second-pw") == "*** and ***"


@pytest.mark.django_db
def test_a_secret_that_cannot_be_decrypted_names_its_connection(settings, http_connection):
    from cryptography.fernet import Fernet

    from connections.errors import SecretDecryptionError

    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(SecretDecryptionError, match="'reports-api'"):
        connection_secrets_for_step(names=["reports-api"])
