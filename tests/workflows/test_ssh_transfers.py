"""The ssh step's `upload` and `download` over SFTP, against the real sshd on loopback, and its
`proxy_jump` through a second sshd (the bastion)."""

from __future__ import annotations

import hashlib
import os

import pytest

from connections.services import connection_create
from resources.models import Resource
from resources.services import resource_create
from tests.factories import drain, make_flow, steps_of
from tests.workflows.test_ssh_step import logs_of, run_ssh, ssh_connection, ssh_definition
from workflows.definitions import validate_definition
from workflows.errors import DefinitionInvalid
from workflows.services.runs import run_start

pytestmark = pytest.mark.ssh


def read_resource(ref: str) -> bytes:
    resource = Resource.objects.get(pk=ref.removeprefix("res://"))
    with resource.file.open("rb") as handle:
        return handle.read()


# --- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"upload": {"from": "x", "to": "/tmp/x"}}, "steps[0].upload"),
        ({"upload": [{"to": "/tmp/x"}]}, "steps[0].upload[0].from"),
        ({"upload": [{"from": "x"}]}, "steps[0].upload[0].to"),
        ({"upload": [{"from": "x", "to": "/x", "mode": "rwx"}]}, "steps[0].upload[0].mode"),
        ({"upload": [{"from": "x", "to": "/x", "owner": "me"}]}, "steps[0].upload[0].owner"),
        ({"download": [{"name": "x"}]}, "steps[0].download[0].path"),
        ({"download": [{"path": "/a/b", "optional": "yes"}]}, "steps[0].download[0].optional"),
        ({"download": [{"path": "/a/x.txt"}, {"path": "/b/x.txt"}]}, "steps[0].download[1].name"),
        ({"download": [{"path": "/a/x", "name": "no/slash"}]}, "steps[0].download[0].name"),
        ({"keepalive_seconds": 0}, "steps[0].keepalive_seconds"),
    ],
)
def test_transfer_parameters_are_checked(params, path):
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(ssh_definition("true", **params))
    assert path in [p["path"] for p in caught.value.problems]


# --- upload ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_text_is_uploaded_with_its_mode_before_the_command_runs(sshd, tmp_path):
    ssh_connection(sshd)
    target = tmp_path / "run.sh"
    run, step = run_ssh(
        f"{target}", upload=[{"from": "#!/bin/sh\necho uploaded-and-ran\n", "to": str(target),
                              "mode": "0755"}],
    )
    assert run.status == "completed", step.error
    assert step.output["stdout_tail"] == "uploaded-and-ran\n"
    assert oct(os.stat(target).st_mode & 0o777) == "0o755"
    assert f"uploaded 32 bytes to {target}" in logs_of(step, "system")


@pytest.mark.django_db(transaction=True)
def test_a_resource_is_uploaded_from_its_ref(sshd, tmp_path):
    ssh_connection(sshd)
    content = bytes(range(256)) * 1000
    resource = resource_create(content=content, name="blob.bin")
    target = tmp_path / "blob.bin"
    run, step = run_ssh(f"sha256sum {target}", upload=[{"from": resource.uri, "to": str(target)}])
    assert run.status == "completed", step.error
    assert target.read_bytes() == content
    assert step.output["stdout_tail"].split()[0] == hashlib.sha256(content).hexdigest()


@pytest.mark.django_db(transaction=True)
def test_an_unknown_resource_fails_the_upload_and_the_command_never_runs(sshd, tmp_path):
    ssh_connection(sshd)
    marker = tmp_path / "ran"
    run, step = run_ssh(
        f"touch {marker}",
        upload=[{"from": "res://00000000-0000-0000-0000-000000000000", "to": "/tmp/x"}],
    )
    assert step.error["type"] == "UploadFailed"
    assert "no resource" in step.error["message"]
    assert not marker.exists()


# --- download ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_downloaded_files_become_resources_with_their_sha256(sshd, tmp_path):
    ssh_connection(sshd)
    patch, log = tmp_path / "fix.patch", tmp_path / "build.log"
    run, step = run_ssh(
        f"printf 'diff --git a/x b/x\\n' > {patch}; head -c 3000000 /dev/urandom > {log}",
        download=[{"path": str(patch)}, {"path": str(log), "name": "log"},
                  {"path": str(tmp_path / "absent"), "optional": True}],
    )
    assert run.status == "completed", step.error
    files = step.output["files"]
    assert set(files) == {"fix.patch", "log"}
    assert read_resource(files["fix.patch"]) == patch.read_bytes()
    big = Resource.objects.get(pk=files["log"].removeprefix("res://"))
    data = log.read_bytes()
    assert big.size == len(data) == 3_000_000
    assert big.sha256 == hashlib.sha256(data).hexdigest()
    assert read_resource(files["log"]) == data
    assert big.step_run_id == step.pk and big.run_id == run.pk
    assert f"{tmp_path / 'absent'} does not exist (optional)" in logs_of(step, "system")


@pytest.mark.django_db
def test_a_missing_download_fails_the_attempt_naming_the_path(sshd, tmp_path):
    ssh_connection(sshd)
    missing = tmp_path / "never-written.patch"
    run, step = run_ssh("true", download=[{"path": str(missing)}], retry={"max_attempts": 3})
    assert run.status == "failed"
    assert step.error["type"] == "DownloadMissing"
    assert step.error["message"] == f"download {missing}: no such file"
    assert step.attempt_count == 1  # a retry would not write it either


@pytest.mark.django_db
def test_a_directory_or_a_file_over_the_limit_fails_with_the_reason(sshd, tmp_path, settings):
    ssh_connection(sshd)
    run, step = run_ssh("true", download=[{"path": str(tmp_path), "name": "dir"}])
    assert step.error["type"] == "DownloadNotAFile"
    assert "is a directory" in step.error["message"]

    settings.WF_SFTP_MAX_BYTES = 10
    big = tmp_path / "big.txt"
    big.write_text("more than ten bytes")
    flow = make_flow(ssh_definition("true", slug="big", download=[{"path": str(big)}]))
    run, _ = run_start(flow=flow, input={})
    drain()
    step = steps_of(run)["remote"]
    assert step.error["type"] == "DownloadTooLarge"
    assert "19 bytes, more than WF_SFTP_MAX_BYTES (10)" in step.error["message"]
    assert not Resource.objects.exists()


@pytest.mark.django_db
def test_after_a_failed_command_the_files_that_exist_are_still_brought_back(sshd, tmp_path):
    ssh_connection(sshd)
    log = tmp_path / "build.log"
    run, step = run_ssh(
        f"echo compiling > {log}; exit 2",
        download=[{"path": str(log)}, {"path": str(tmp_path / "app.tar")}],
    )
    assert step.error["type"] == "NonZeroExit"
    assert set(step.output["files"]) == {"build.log"}
    assert read_resource(step.output["files"]["build.log"]) == b"compiling\n"


# --- jump hosts --------------------------------------------------------------------------------


def bastion(sshd_jump, name: str = "bastion", **config):
    return connection_create(
        actor=None, name=name, kind="ssh",
        config={"host": sshd_jump.host, "port": sshd_jump.port, "username": sshd_jump.username,
                "known_hosts": sshd_jump.host_key_line, **config},
        secret={"private_key": sshd_jump.client_private_key},
    )


@pytest.mark.django_db
def test_a_host_behind_a_jump_host_is_reached_through_a_direct_tcpip_channel(sshd, sshd_jump):
    bastion(sshd_jump)
    ssh_connection(sshd, config={"proxy_jump": "bastion"})
    run, step = run_ssh("echo behind-the-bastion")
    assert run.status == "completed", step.error
    assert step.output["stdout_tail"] == "behind-the-bastion\n"
    system = logs_of(step, "system")
    assert f"connecting to {sshd_jump.username}@{sshd_jump.host}:{sshd_jump.port}\n" in system
    assert f"{sshd.host}:{sshd.port} via bastion" in system
    with open(sshd_jump.log_path) as log:
        assert "Accepted publickey" in log.read()

    # The target's transport runs over a direct-tcpip channel of the bastion's transport.
    import paramiko

    from connections.selectors import connection_secrets_for_step, connections_for_step
    from workflows.steps.ssh.client import open_chain

    names = ["vm", "bastion"]
    chain = open_chain(name="vm", connections=connections_for_step(names=names),
                       secrets=connection_secrets_for_step(names=names), timeout=5)
    try:
        assert chain.names == ["bastion", "vm"]
        sock = chain.transport.sock
        assert isinstance(sock, paramiko.Channel)
        assert sock.get_transport() is chain.clients[0].get_transport()
    finally:
        chain.close()


@pytest.mark.django_db
def test_each_hop_is_verified_against_its_own_known_hosts(sshd, sshd_jump):
    # The bastion's connection trusts a different key: refused before reaching the target.
    bastion(sshd_jump, known_hosts=sshd_jump.other_host_key_line)
    ssh_connection(sshd, config={"proxy_jump": "bastion"})
    run, step = run_ssh("true")
    assert step.error["type"] == "HostKeyMismatch"
    assert "connection 'bastion'" in step.error["message"]

    # The target's key is checked against the target's connection, not the bastion's.
    from connections.models import Connection

    Connection.objects.filter(name="bastion").update(
        config={**Connection.objects.get(name="bastion").config,
                "known_hosts": sshd_jump.host_key_line})
    Connection.objects.filter(name="vm").update(
        config={**Connection.objects.get(name="vm").config,
                "known_hosts": sshd.other_host_key_line})
    flow = make_flow(ssh_definition("true", slug="again"))
    run, _ = run_start(flow=flow, input={})
    drain()
    step = steps_of(run)["remote"]
    assert step.error["type"] == "HostKeyMismatch"
    assert "connection 'vm'" in step.error["message"]


@pytest.mark.django_db
def test_the_jump_chain_is_checked_at_release(sshd, sshd_jump):
    from connections.models import Connection

    bastion(sshd_jump, name="a")
    bastion(sshd_jump, name="b", proxy_jump="a")
    ssh_connection(sshd, config={"proxy_jump": "b"})
    assert validate_definition(ssh_definition("true"), check_connections=True)
    flow = make_flow(ssh_definition("true"))  # released while the chain was sound
    # A chain broken behind the services' back (rows edited directly) is refused at release.
    Connection.objects.filter(name="a").update(
        config={**Connection.objects.get(name="a").config, "proxy_jump": "vm"})
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(ssh_definition("true"), check_connections=True)
    assert caught.value.problems == [{
        "path": "steps[0].connection",
        "message": "proxy_jump chain vm → b → a → vm is a cycle",
    }]
    run, _ = run_start(flow=flow, input={})
    drain()
    step = steps_of(run)["remote"]
    assert step.error["type"] == "ConnectionInvalid"
    assert "vm → b → a → vm is a cycle" in step.error["message"]
