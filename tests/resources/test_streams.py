"""Resources stream both ways: stored from bytes, files or chunk iterators; served with
Content-Length and HTTP Range."""

from __future__ import annotations

import hashlib
import io
import uuid
from unittest import mock

import pytest
from django.core import signing

from resources.models import Resource
from resources.services import ResourceTooLarge, resource_create, resource_signed_url
from resources.views import parse_range

pytestmark = pytest.mark.django_db

BLOB = bytes(range(256)) * 1000  # 256,000 bytes holding every byte value, NUL included


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


class OneWayFile:
    """A file-like object that can only be read forward in small pieces (like an SFTP file or
    a socket); it records the largest read so the test can see nothing was read whole."""

    def __init__(self, data: bytes):
        self._buffer = io.BytesIO(data)
        self.largest_read = 0

    def read(self, size: int = -1) -> bytes:
        assert size > 0, "a streaming reader never asks for everything"
        self.largest_read = max(self.largest_read, size)
        return self._buffer.read(size)


@pytest.mark.parametrize("make_content", [
    lambda: BLOB,
    lambda: OneWayFile(BLOB),
    lambda: (BLOB[i:i + 7001] for i in range(0, len(BLOB), 7001)),
], ids=["bytes", "file", "iterator"])
def test_resource_create_streams_bytes_files_and_iterators(make_content):
    resource = resource_create(content=make_content(), name="blob.bin")
    resource.refresh_from_db()
    assert resource.size == len(BLOB)
    assert resource.sha256 == hashlib.sha256(BLOB).hexdigest()
    with resource.file.open("rb") as handle:
        assert handle.read() == BLOB


def test_a_file_is_read_in_chunks_never_whole():
    source = OneWayFile(BLOB)
    resource_create(content=source)
    assert 0 < source.largest_read <= 64 * 1024


def test_a_cap_stops_storing_and_keeps_nothing():
    before = Resource.objects.count()
    chunks = (b"x" * 1000 for _ in range(100))
    with pytest.raises(ResourceTooLarge) as caught:
        resource_create(content=chunks, max_bytes=50_000, max_bytes_setting="WF_HTTP_MAX_BYTES")
    assert "50000" in str(caught.value) and "WF_HTTP_MAX_BYTES" in str(caught.value)
    assert caught.value.limit == 50_000
    assert Resource.objects.count() == before


def test_a_given_resource_id_is_kept():
    resource_id = uuid.uuid4()
    resource = resource_create(content=b"x", resource_id=resource_id)
    assert resource.uri == f"res://{resource_id}"


def test_a_download_streams_with_content_length(client):
    resource = resource_create(content=BLOB, name="blob.bin")
    response = client.get(path_of(resource_signed_url(resource=resource)))
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(BLOB))
    assert response["Accept-Ranges"] == "bytes"
    assert response.streaming
    assert b"".join(response.streaming_content) == BLOB


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-9", 0, 9),
    ("bytes=1000-", 1000, len(BLOB) - 1),
    ("bytes=-500", len(BLOB) - 500, len(BLOB) - 1),
    ("bytes=255990-999999999", 255990, len(BLOB) - 1),
])
def test_a_range_is_a_206_with_content_range(client, header, first, last):
    resource = resource_create(content=BLOB)
    response = client.get(path_of(resource_signed_url(resource=resource)), HTTP_RANGE=header)
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(BLOB)}"
    assert response["Content-Length"] == str(last - first + 1)
    assert b"".join(response.streaming_content) == BLOB[first:last + 1]


def test_an_unsatisfiable_range_is_a_416(client):
    resource = resource_create(content=b"0123456789")
    url = path_of(resource_signed_url(resource=resource))
    for header in ("bytes=10-", "bytes=5-2", "bytes=-0"):
        response = client.get(url, HTTP_RANGE=header)
        assert response.status_code == 416, header
        assert response["Content-Range"] == "bytes */10"
        assert response.json()["error"]["code"] == "range_not_satisfiable"


def test_several_ranges_or_a_stale_if_range_get_everything(client):
    resource = resource_create(content=b"0123456789")
    url = path_of(resource_signed_url(resource=resource))
    several = client.get(url, HTTP_RANGE="bytes=0-1,4-5")
    assert several.status_code == 200 and b"".join(several.streaming_content) == b"0123456789"
    stale = client.get(url, HTTP_RANGE="bytes=0-1", HTTP_IF_RANGE='"not-the-etag"')
    assert stale.status_code == 200
    fresh = client.get(url, HTTP_RANGE="bytes=0-1", HTTP_IF_RANGE=f'"{resource.sha256}"')
    assert fresh.status_code == 206 and b"".join(fresh.streaming_content) == b"01"


def test_parse_range_ignores_what_is_not_a_byte_range():
    assert parse_range("", 10) is None
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=-", 10) is None
    assert parse_range("bytes=0-0", 0) is False


def test_names_and_content_types_with_cr_lf_never_break_a_download(client):
    """Issue 10: a resource whose name or content type held CR/LF made downloads a 500."""
    clean = resource_create(content=b"x", name="a\r\nSet-Cookie: x=1.txt",
                            content_type="text/plain\r\nX-Evil: 1")
    assert "\r" not in clean.name and "\n" not in clean.content_type
    # Rows written before names were cleaned still download.
    old = resource_create(content=b"x")
    Resource.objects.filter(pk=old.pk).update(name="bad\r\nname\t.txt",
                                              content_type="text/plain\r\nX-Evil: 1")
    old.refresh_from_db()
    for resource in (clean, old):
        response = client.get(path_of(resource_signed_url(resource=resource)))
        assert response.status_code == 200
        assert "X-Evil" not in response and "Set-Cookie" not in response
        assert "\n" not in response["Content-Disposition"]
        assert b"".join(response.streaming_content) == b"x"


def test_unknown_forged_and_expired_links_answer_the_usual_error_body(client):
    resource = resource_create(content=b"x")
    url = path_of(resource_signed_url(resource=resource, expires_in=60))
    tampered = client.get(url.replace(str(resource.pk)[:8], "00000000"))
    assert tampered.status_code == 403
    assert tampered.json()["error"]["code"] == "forbidden"
    with mock.patch("django.core.signing.time.time", return_value=signing.time.time() + 120):
        expired = client.get(url)
    assert expired.status_code == 410
    assert set(expired.json()["error"]) == {"code", "message", "details"}
    Resource.objects.filter(pk=resource.pk).delete()
    gone = client.get(url)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"
