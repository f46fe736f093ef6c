"""The admin's CSS, htmx and scripts are served whatever DEBUG says (WhiteNoise)."""

import pytest


@pytest.mark.parametrize("path", [
    "/static/workflows/admin.js",
    "/static/django_htmx/htmx-2.min.js",
    "/static/admin/css/base.css",
])
def test_static_files_are_served_with_debug_off(client, settings, path):
    settings.DEBUG = False
    response = client.get(path)
    assert response.status_code == 200
    assert b"".join(response.streaming_content)
