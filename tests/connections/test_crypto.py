from __future__ import annotations

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection as db_connection

from connections.crypto import decrypt_secret, encrypt_secret, rotate_token
from connections.errors import SecretDecryptionError
from connections.models import Connection, ConnectionAudit
from connections.selectors import connection_secret
from connections.services import connection_create, connection_rotate_keys


def _raw_ciphertext(pk: int) -> str:
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT secret_ciphertext FROM connections_connection WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_secret_round_trips():
    token = encrypt_secret({"token": "abc-123", "nested": {"x": [1, "y"]}})
    assert decrypt_secret(token) == {"token": "abc-123", "nested": {"x": [1, "y"]}}


@pytest.mark.django_db
def test_the_database_column_holds_no_plaintext():
    secret = "s3cr3t-plaintext-value-91a"
    conn = connection_create(actor=None, name="api", kind="generic", secret={"password": secret})
    raw = _raw_ciphertext(conn.pk)
    assert raw
    assert secret not in raw
    assert "password" not in raw
    assert connection_secret(connection=Connection.objects.get(pk=conn.pk)) == {"password": secret}


def test_a_wrong_key_raises_instead_of_returning_anything(settings, fresh_key):
    token = encrypt_secret({"token": "abcd"})
    settings.FIELD_ENCRYPTION_KEYS = [fresh_key]
    with pytest.raises(SecretDecryptionError, match="could not be decrypted"):
        decrypt_secret(token)


@pytest.mark.parametrize("token", ["", "not-a-token", "gAAAAABcorrupt"])
def test_corrupt_or_empty_ciphertext_raises(token):
    with pytest.raises(SecretDecryptionError):
        decrypt_secret(token)


@pytest.mark.parametrize("keys", [[], "", ["not-a-fernet-key"]])
def test_missing_or_invalid_keys_are_a_configuration_error(settings, keys):
    settings.FIELD_ENCRYPTION_KEYS = keys
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS"):
        encrypt_secret({"a": "b"})


def test_the_error_for_an_invalid_key_does_not_quote_it(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["definitely-not-a-valid-key"]
    with pytest.raises(ImproperlyConfigured) as info:
        encrypt_secret({"a": "b"})
    assert "definitely-not-a-valid-key" not in str(info.value)


def test_a_comma_separated_string_of_keys_is_accepted(settings, fresh_key):
    old = Fernet.generate_key().decode()
    token = Fernet(old).encrypt(b'{"a": "b"}').decode()
    settings.FIELD_ENCRYPTION_KEYS = f"{fresh_key}, {old}"
    assert decrypt_secret(token) == {"a": "b"}


def test_rotate_token_re_encrypts_with_the_newest_key(settings, fresh_key):
    old = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    token = encrypt_secret({"token": "abcd"})
    settings.FIELD_ENCRYPTION_KEYS = [fresh_key, old]
    rotated = rotate_token(token)
    settings.FIELD_ENCRYPTION_KEYS = [fresh_key]
    assert decrypt_secret(rotated) == {"token": "abcd"}
    with pytest.raises(SecretDecryptionError):
        decrypt_secret(token)


@pytest.mark.django_db
def test_rotation_with_two_keys_lets_the_old_key_go(settings, fresh_key):
    old = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    first = connection_create(actor=None, name="one", kind="generic", secret={"password": "pw-one"})
    second = connection_create(
        actor=None, name="two", kind="generic", secret={"password": "pw-two"}
    )
    connection_create(actor=None, name="no-secret", kind="generic")
    before = _raw_ciphertext(first.pk)

    settings.FIELD_ENCRYPTION_KEYS = [fresh_key, old]
    assert connection_rotate_keys() == 2
    assert _raw_ciphertext(first.pk) != before

    settings.FIELD_ENCRYPTION_KEYS = [fresh_key]
    assert connection_secret(connection=Connection.objects.get(pk=first.pk)) == {
        "password": "pw-one"
    }
    assert connection_secret(connection=Connection.objects.get(pk=second.pk)) == {
        "password": "pw-two"
    }
    assert ConnectionAudit.objects.filter(action="secret_rotated").count() == 2


@pytest.mark.django_db
def test_rotation_is_all_or_nothing_when_a_secret_cannot_be_opened(settings, fresh_key):
    old = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    conn = connection_create(actor=None, name="one", kind="generic", secret={"password": "pw-one"})
    before = _raw_ciphertext(conn.pk)
    settings.FIELD_ENCRYPTION_KEYS = [fresh_key]  # the old key was dropped too early
    with pytest.raises(SecretDecryptionError, match="'one'"):
        connection_rotate_keys()
    assert _raw_ciphertext(conn.pk) == before
    assert not ConnectionAudit.objects.filter(action="secret_rotated").exists()


@pytest.mark.django_db
def test_rotate_connection_keys_command_prints_json(settings, fresh_key):
    old = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    connection_create(actor=None, name="one", kind="generic", secret={"password": "pw-one"})
    settings.FIELD_ENCRYPTION_KEYS = [fresh_key, old]
    out = io.StringIO()
    call_command("rotate_connection_keys", stdout=out)
    assert json.loads(out.getvalue()) == {"rotated": 1, "webhook_secrets": 0}
