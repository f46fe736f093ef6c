import hashlib
import uuid
from unittest import mock

import pytest
from django.core import signing

from resources.selectors import resource_from_uri
from resources.services import resource_create, resource_signed_url
from workflows.errors import NotFound

pytestmark = pytest.mark.django_db


@pytest.fixture
def report(db):
    return resource_create(content=b"hello, report", name="report.txt", content_type="text/plain")


def download(client, url: str):
    path = url.split("://", 1)[1].split("/", 1)[1]
    return client.get("/" + path)


def test_resource_create_stores_bytes_with_size_and_hash(report):
    assert report.size == 13
    assert report.sha256 == hashlib.sha256(b"hello, report").hexdigest()
    assert report.uri == f"res://{report.pk}"
    assert resource_from_uri(report.uri) == report
    assert resource_from_uri(str(report.pk)) == report
    with pytest.raises(NotFound):
        resource_from_uri("res://nope")
    with pytest.raises(NotFound):
        resource_from_uri(f"res://{uuid.uuid4()}")


def test_get_a_resource_by_uri_or_id_with_a_signed_url(as_user, report, client):
    api = as_user("support")
    for ref in (str(report.pk), report.uri, f"res%3A%2F%2F{report.pk}"):
        response = api.get(f"/resources/{ref}")
        assert response.status == 200, (ref, response.body)
    document = response.body
    assert document["uri"] == report.uri and document["size"] == 13
    assert document["sha256"] == report.sha256 and document["content_type"] == "text/plain"
    assert document["url"].startswith("http://127.0.0.1:8000/resources/download/")
    fetched = download(client, document["url"])
    assert fetched.status_code == 200
    assert b"".join(fetched.streaming_content) == b"hello, report"
    assert "report.txt" in fetched["Content-Disposition"]


def test_resources_need_view_permission(as_user, report):
    assert as_user("nobody").get(f"/resources/{report.pk}").status == 403
    assert as_user("support").get(f"/resources/{uuid.uuid4()}").status == 404
    assert as_user("support").get("/resources/res://not-a-uuid").status == 404


def test_an_expired_link_is_a_410(report, client):
    url = resource_signed_url(resource=report, expires_in=60)
    with mock.patch("django.core.signing.time.time", return_value=signing.time.time() + 120):
        expired = download(client, url)
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "expired"


def test_a_forged_link_is_refused(report, client):
    url = resource_signed_url(resource=report, expires_in=60)
    forged = url.replace(":60:", ":999999:")
    assert download(client, forged).status_code == 403
    assert client.get("/resources/download/garbage/").status_code == 403
    other = resource_create(content=b"x")
    swapped = url.replace(str(report.pk), str(other.pk))
    assert download(client, swapped).status_code == 403


@pytest.mark.parametrize(("name", "content_type", "disposition", "served_type"), [
    ("evil\r\nSet-Cookie: a=b.txt", "text/plain", "evil  Set-Cookie: a=b.txt", "text/plain"),
    ("report.txt", "text/html\r\nX-Injected: 1", "report.txt", "application/octet-stream"),
    ("\r\n", "text/plain; charset=utf-8", None, "text/plain; charset=utf-8"),
])
def test_a_name_or_content_type_with_cr_lf_downloads_with_safe_headers(
        db, client, name, content_type, disposition, served_type):
    resource = resource_create(content=b"data", name=name, content_type=content_type)
    fetched = download(client, resource_signed_url(resource=resource))
    assert fetched.status_code == 200
    assert b"".join(fetched.streaming_content) == b"data"
    assert fetched["Content-Type"] == served_type
    assert "X-Injected" not in fetched and "Set-Cookie" not in fetched
    assert "\n" not in fetched["Content-Disposition"]
    assert (disposition or str(resource.pk)) in fetched["Content-Disposition"]
