"""Config as code: `wf flows pull` round-trips with `push`, `wf connections get|put` (secrets
only from files or stdin), `wf flows secret set --stdin`."""

from __future__ import annotations

import pytest

from connections.models import Connection
from connections.selectors import connection_secret
from tests.factories import make_flow, simple_definition
from workflows.models import Flow, FlowVersion

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FLOW_YAML = """\
name: Pulled
slug: pulled
description: |
  Two lines
  of description.
input:
  repo: {type: string, required: true}
  limit: {type: integer, default: 10}
steps:
  - args: {value: "{{ input.repo }}", flags: [yes, "no", 3], empty: ""}
    action: core.echo
    type: python
    key: fetch
  - key: count
    type: python
    action: core.echo
    args: {n: "{{ input.limit }}", text: "a: b # not a comment"}
"""


def draft_hash(slug: str) -> str:
    return FlowVersion.objects.get(flow__slug=slug, number__isnull=True).content_hash


def test_pull_edit_push_round_trips_without_a_diff(wf, tmp_path):
    source = tmp_path / "source.yaml"
    source.write_text(FLOW_YAML)
    assert wf("flows", "push", str(source)).code == 0
    before = draft_hash("pulled")

    pulled = wf("flows", "pull", "pulled", cwd=tmp_path)
    assert pulled.code == 0, pulled.stdout
    path = tmp_path / "pulled.yaml"
    assert pulled.document == {"slug": "pulled", "version": "draft", "content_hash": before,
                               "path": str(path)}
    text = path.read_text()
    assert text.startswith("slug: pulled\nname: Pulled\ndescription: |")
    pushed = wf("flows", "push", str(path))
    assert pushed.code == 0 and pushed.document["action"] == "draft_replaced"
    assert draft_hash("pulled") == before
    assert wf("flows", "pull", "pulled", "-o", str(path)).code == 0
    assert path.read_text() == text  # the same bytes, pull after pull

    assert wf("flows", "release", "pulled").code == 0
    release = wf("flows", "pull", "pulled", "--version", "1", "-o", "-", raw=True)
    assert release.code == 0 and release.stdout == text
    edited = text.replace("name: Pulled", "name: Pulled again")
    path.write_text(edited)
    assert wf("flows", "push", str(path)).code == 0
    diff = wf("flows", "diff", "pulled", "--from", "1", "--to", "draft").document["changes"]
    assert diff["values"] == [{"path": "name", "before": "Pulled", "after": "Pulled again"}]
    assert wf("flows", "promote", "pulled", "1").code == 0
    live = wf("flows", "pull", "pulled", "--version", "live", "-o", "-", raw=True)
    assert live.stdout == text

    assert wf("flows", "pull", "pulled", "--version", "9").code == 3
    assert wf("flows", "pull", "pulled", "--version", "nine").code == 2
    assert wf("flows", "pull", "nope").code == 3


def test_connections_put_and_get_keep_secrets_out_of_flags_and_output(wf, tmp_path):
    config = tmp_path / "reports.yaml"
    config.write_text("kind: http\ndescription: Reports\nconfig:\n"
                      "  base_url: https://reports.example.com\n  auth: bearer\n")
    created = wf("connections", "put", "reports", "--file", str(config), "--secret-file", "-",
                 stdin='{"token": "tok-SECRET-4711"}')
    assert created.code == 0, created.stdout
    assert created.document["action"] == "created" and created.document["has_secret"] is True
    assert "tok-SECRET-4711" not in created.stdout
    connection = Connection.objects.get(name="reports")
    assert connection_secret(connection=connection) == {"token": "tok-SECRET-4711"}

    exported = tmp_path / "exported.yaml"
    got = wf("connections", "get", "reports", "--file", str(exported))
    assert got.code == 0 and got.document["path"] == str(exported)
    assert "tok-SECRET-4711" not in got.stdout + exported.read_text()
    assert exported.read_text() == config.read_text().replace(
        "  base_url: https://reports.example.com\n  auth: bearer\n",
        "  auth: bearer\n  base_url: https://reports.example.com\n")

    # The exported file goes back unchanged; without a secret the stored one stays.
    updated = wf("connections", "put", "reports", "--file", str(exported))
    assert updated.code == 0 and updated.document["action"] == "updated"
    assert connection_secret(connection=Connection.objects.get(name="reports")) == {
        "token": "tok-SECRET-4711"}
    # A document printed by `get` is accepted too (its read-only fields are ignored).
    whole = tmp_path / "whole.json"
    whole.write_text(wf("connections", "get", "reports").stdout)
    assert wf("connections", "put", "reports", "--file", str(whole)).code == 0

    stray = tmp_path / "stray.yaml"
    stray.write_text("kind: http\ntoken: oops\n")
    assert wf("connections", "put", "reports", "--file", str(stray)).code == 2
    other = tmp_path / "other.yaml"
    other.write_text("name: elsewhere\nkind: http\n")
    assert wf("connections", "put", "reports", "--file", str(other)).code == 2
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("kind: http\nconfig: {base_url: 'not a url', nonsense: 1}\n")
    refused = wf("connections", "put", "reports", "--file", str(invalid))
    assert refused.code == 4 and refused.error["details"]
    assert wf("connections", "get", "nope").code == 3


def test_the_webhook_secret_is_set_from_stdin_and_never_printed(wf):
    make_flow(simple_definition("hooked", triggers=[{"type": "webhook"}]))
    secret = "chosen-by-the-sender-0123456789"
    result = wf("flows", "secret", "set", "hooked", "--stdin", stdin=secret + "\n")
    assert result.code == 0, result.stdout
    assert secret not in result.stdout + result.stderr
    assert result.document["webhook_secret_set"] is True
    assert result.document["webhook_url"].endswith("/api/v1/hooks/hooked")
    assert Flow.objects.get(slug="hooked").webhook_signing_secret() == secret
    short = wf("flows", "secret", "set", "hooked", "--stdin", stdin="short\n")
    assert short.code == 4 and short.error["details"][0]["path"] == "secret"
    assert wf("flows", "secret", "set", "hooked").code == 2  # never from a flag
    rotated = wf("flows", "secret", "rotate", "hooked")
    assert rotated.code == 0 and rotated.document["webhook_secret"] != secret
