"""The Content-Security-Policy header, and API docs served from our own static files."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest


def test_pages_carry_a_csp_allowing_only_our_own_scripts(client):
    response = client.get("/admin/login/")
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"


def test_the_api_docs_page_references_only_same_origin_assets(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(url.endswith("swagger-ui-bundle.js") for url in urls)
    assert any(url.endswith("swagger-ui.css") for url in urls)
    for url in urls:
        assert not urlsplit(url).netloc, f"{url} leaves the server"
    # no inline script: the only <script> without src is the JSON settings block
    for attrs in re.findall(r"<script([^>]*)>", html):
        assert "src=" in attrs or 'type="application/json"' in attrs, attrs
    for url in urls:
        if url.startswith("/static/"):
            asset = client.get(url)
            assert asset.status_code == 200, url


@pytest.mark.parametrize("template_dir", ["workflows", "approvals"])
def test_templates_have_no_inline_scripts_or_event_handlers(template_dir):
    from pathlib import Path

    import django.conf

    root = Path(__file__).resolve().parents[2] / template_dir / "templates"
    assert django.conf.settings.TEMPLATES[0]["APP_DIRS"]
    for path in root.rglob("*.html"):
        text = path.read_text()
        for attrs in re.findall(r"<script([^>]*)>", text):
            assert "src=" in attrs or 'type="application/json"' in attrs, path
        assert not re.search(r"\son[a-z]+\s*=", text), f"inline event handler in {path}"
        assert "javascript:" not in text, path
