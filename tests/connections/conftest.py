from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth.models import Permission

from connections.services import connection_create


def _host_key_line() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    blob = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"build-vm.example.com {blob.decode()}"


HOST_KEY_LINE = _host_key_line()
PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    + "\n".join(base64.b64encode(bytes([i]) * 48).decode() for i in range(1, 6))
    + "\n-----END OPENSSH PRIVATE KEY-----\n"
)


@pytest.fixture
def ssh_config() -> dict:
    return {
        "host": "build-vm.example.com",
        "username": "deploy",
        "known_hosts": HOST_KEY_LINE,
        "port": 2222,
    }


@pytest.fixture
def fresh_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def manager(django_user_model):
    user = django_user_model.objects.create_user("manager", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="manage_connections", content_type__app_label="connections")
    )
    return django_user_model.objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def plain_user(django_user_model):
    return django_user_model.objects.create_user("someone", password="pw", is_staff=True)


@pytest.fixture
def http_connection(db):
    return connection_create(
        actor=None,
        name="reports-api",
        kind="http",
        config={"base_url": "https://reports.example.com", "auth": "bearer"},
        secret={"token": "tok-7f3a9c1e5b2d8f40"},
        description="Reports",
    )
