"""Issue 25 (M3): the signed download view answers hostile links and Range headers with a 4xx
(or ignores a Range that is not one), never a 500. The values are the API tests' own
(tests/hostile.py)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.core import signing

from resources.services import DOWNLOAD_SALT, resource_create, resource_signed_path
from tests.hostile import NOT_BYTE_RANGES, PATH_IDS, RANGE_HEADERS

pytestmark = pytest.mark.django_db


@pytest.fixture
def report(db):
    return resource_create(content=b"hello, report", name="report.txt", content_type="text/plain")


def signed_with_lifetime(resource, lifetime: str) -> str:
    """A link genuinely signed (as a thief of SECRET_KEY could not, but as the view must still
    survive) around a lifetime that is no number, and one whose lifetime field alone changed."""
    return signing.TimestampSigner(salt=DOWNLOAD_SALT).sign(f"{resource.pk}:{lifetime}")


@pytest.mark.parametrize("lifetime", PATH_IDS)
def test_a_link_whose_lifetime_is_not_a_number_is_refused(client, report, lifetime):
    genuine = resource_signed_path(resource=report, expires_in=60)
    tampered = genuine.replace(":60:", f":{quote(lifetime, safe='')}:")
    response = client.get(tampered)
    assert 400 <= response.status_code < 500, (lifetime, response.status_code)
    signed = signed_with_lifetime(report, lifetime)
    response = client.get(f"/resources/download/{quote(signed, safe=':')}/")
    assert 400 <= response.status_code < 500, (lifetime, response.status_code)


def test_a_lifetime_of_percent_c2_b2_is_a_403(client, report):
    genuine = resource_signed_path(resource=report, expires_in=60)
    assert client.get(genuine.replace(":60:", ":%C2%B2:")).status_code == 403
    assert client.get(genuine.replace(":60:", ":" + "9" * 5000 + ":")).status_code == 403


@pytest.mark.parametrize("header", RANGE_HEADERS)
def test_a_range_no_content_reaches_is_a_416(client, report, header):
    response = client.get(resource_signed_path(resource=report), HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */13"


@pytest.mark.parametrize("header", NOT_BYTE_RANGES)
def test_a_range_that_is_not_a_byte_range_is_ignored(client, report, header):
    response = client.get(resource_signed_path(resource=report), HTTP_RANGE=header)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"hello, report"


def test_ordinary_ranges_still_work(client, report):
    path = resource_signed_path(resource=report)
    response = client.get(path, HTTP_RANGE="bytes=0-4")
    assert response.status_code == 206 and b"".join(response.streaming_content) == b"hello"
    response = client.get(path, HTTP_RANGE=f"bytes=7-{'9' * 18}")
    assert response.status_code == 206 and b"".join(response.streaming_content) == b"report"
