"""`wf resources get|download`: the document, a streamed download checked against its sha256,
and a progress bar on stderr only when stderr is a terminal."""

from __future__ import annotations

import json
import os
import sys

import pytest
from django.contrib.auth import get_user_model

from resources.services import resource_create
from workflows.services.tokens import api_token_create
from workflows_cli import client, parser

pytestmark = pytest.mark.django_db(transaction=True)

BLOB = os.urandom(300_000)


@pytest.fixture
def wf_in_process(live_server, settings, monkeypatch, capsys, transactional_db):
    """Run `wf` in this process (so stderr can be a terminal), as a superuser."""
    settings.PUBLIC_BASE_URL = live_server.url
    user = get_user_model().objects.create_superuser("res-cli", "r@example.com", "pw")
    monkeypatch.setenv("WF_URL", live_server.url)
    monkeypatch.setenv("WF_TOKEN", api_token_create(user=user, name="cli")[1])

    def run(*args: str, terminal: bool = False):
        """(exit code, the JSON document on stdout, what went to stderr)."""
        if terminal:
            monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
        code = parser.main(list(args))
        captured = capsys.readouterr()
        return code, json.loads(captured.out), captured.err

    return run


def test_get_prints_the_document(wf_in_process, tmp_path):
    resource = resource_create(content=BLOB, name="blob.bin")
    code, document, _ = wf_in_process("resources", "get", resource.uri)
    assert code == 0
    assert document["uri"] == resource.uri and document["sha256"] == resource.sha256
    assert document["size"] == len(BLOB) and "path" not in document
    assert not list(tmp_path.iterdir())


def test_download_streams_to_a_file_and_checks_the_sha256(wf_in_process, tmp_path):
    resource = resource_create(content=BLOB, name="blob.bin")
    target = tmp_path / "out.bin"
    code, document, err = wf_in_process("resources", "download", resource.uri, "-o", str(target))
    assert code == 0, document
    assert target.read_bytes() == BLOB and document["path"] == str(target.resolve())
    assert err == ""  # no progress bar when stderr is not a terminal
    assert not (tmp_path / "out.bin.part").exists()


def test_download_draws_a_progress_bar_on_a_terminal(wf_in_process, tmp_path):
    resource = resource_create(content=BLOB, name="blob.bin")
    code, _, err = wf_in_process("resources", "download", str(resource.pk), "-o",
                                 str(tmp_path / "x"), terminal=True)
    assert code == 0
    assert "100.0%" in err and f"{len(BLOB)}/{len(BLOB)} bytes" in err


def test_download_defaults_to_the_resource_name(wf_in_process, tmp_path, monkeypatch):
    resource = resource_create(content=b"named", name="../../etc/report.txt")
    monkeypatch.chdir(tmp_path)
    code, document, _ = wf_in_process("resources", "download", resource.uri)
    assert code == 0
    assert (tmp_path / "report.txt").read_bytes() == b"named"


def test_a_sha256_mismatch_is_an_error_and_leaves_no_file(wf_in_process, tmp_path):
    resource = resource_create(content=BLOB, name="blob.bin")
    with resource.file.storage.open(resource.file.name, "wb") as handle:
        handle.write(BLOB[:-1] + b"!")  # corrupted at rest
    target = tmp_path / "out.bin"
    code, document, _ = wf_in_process("resources", "download", resource.uri, "-o",
                                      str(target))
    assert code == client.EXIT_SERVER
    assert document["error"]["code"] == "checksum_mismatch"
    assert not target.exists() and not (tmp_path / "out.bin.part").exists()


def test_unknown_resources_exit_not_found(wf_in_process, tmp_path):
    code, document, _ = wf_in_process("resources", "download",
                                   "res://00000000-0000-0000-0000-000000000000")
    assert code == client.EXIT_NOT_FOUND and document["error"]["code"] == "not_found"
