"""`wf auth login|status|logout|token`, profiles, `wf --version`, `wf completion`, `--jq`
and `wf api`, against a live server."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from tests.factories import make_flow, simple_definition
from workflows.api.meta import server_version
from workflows.models import ApiToken
from workflows.services.tokens import api_token_create, api_token_revoke

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def operator_token() -> str:
    """A token of a user in the operators group. A transactional test's flush removes the
    groups the data migration made (permissions are made again), so the group is rebuilt."""
    user = get_user_model().objects.create_user("oper", password="pw")
    group = Group.objects.get_or_create(name="operators")[0]
    group.permissions.add(*Permission.objects.filter(
        content_type__app_label="workflows",
        codename__in=["operate_run", "view_flow", "view_run"]))
    user.groups.add(group)
    return api_token_create(user=user, name="cli")[1]


def test_login_checks_the_token_and_stores_it_0600(wf):
    token = operator_token()
    login = wf("auth", "login", "--with-token", token=None, stdin=token + "\n")
    assert login.code == 0, login.stdout
    assert login.document["profile"] == "default" and login.document["url"] == wf.url
    assert login.document["user"]["username"] == "oper"
    assert login.document["user"]["roles"] == ["operators"]
    assert token not in login.stdout + login.stderr
    path = wf.config_dir / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(wf.config_dir.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["profiles"]["default"] == {"url": wf.url,
                                                                   "token": token}

    # Later commands need neither --url nor --token.
    status = wf("auth", "status", token=None, url=None)
    assert status.code == 0, status.stdout
    assert status.document["user"]["username"] == "oper"
    assert status.document["token_source"] == "profile" and status.document["url"] == wf.url
    assert token not in status.stdout
    assert wf("flows", "list", token=None, url=None).code == 0
    printed = wf("auth", "token", "--jq", ".token", token=None, url=None, raw=True)
    assert printed.code == 0 and printed.stdout == token + "\n"

    logout = wf("auth", "logout", token=None, url=None)
    assert logout.code == 0 and logout.document == {
        "profile": "default", "logged_out": True, "config": str(path)}
    assert json.loads(path.read_text())["profiles"] == {}
    after = wf("flows", "list", token=None)
    assert after.code == 3 and "wf auth login" in after.error["message"]


def test_a_refused_token_stores_nothing_and_exits_3(wf):
    refused = wf("auth", "login", "--token", "wf_not-a-token", token=None)
    assert refused.code == 3 and refused.error["code"] == "unauthorized"
    assert "nothing was stored" in refused.error["message"]
    assert not (wf.config_dir / "config.json").exists()
    assert wf("auth", "login", token=None, stdin="").code == 2  # no token given at all


def test_an_expired_or_revoked_stored_token_says_to_log_in_again(wf):
    token = operator_token()
    assert wf("auth", "login", "--token", token, token=None).code == 0
    api_token_revoke(token=ApiToken.objects.get(user__username="oper"))
    status = wf("auth", "status", token=None, url=None)
    assert status.code == 3 and "wf auth login" in status.error["message"]


def test_profiles_are_chosen_by_flag_or_environment_and_flags_win(wf):
    token = operator_token()
    assert wf("auth", "login", "--profile", "staging", "--token", token, token=None).code == 0
    assert wf("auth", "login", "--token", wf.token, token=None).code == 0  # default: admin
    by_flag = wf("auth", "status", "--profile", "staging", token=None, url=None)
    assert by_flag.document["user"]["username"] == "oper"
    assert by_flag.document["profile"] == "staging"
    by_env = wf("auth", "status", token=None, url=None, env={"WF_PROFILE": "staging"})
    assert by_env.document["user"]["username"] == "oper"
    default = wf("auth", "status", token=None, url=None)
    assert default.document["user"]["username"] == "cli-admin"
    # The environment's token, and a flag's, win over the profile.
    env_wins = wf("auth", "status", "--profile", "staging", url=None)
    assert env_wins.document["user"]["username"] == "cli-admin"
    assert env_wins.document["token_source"] == "env"
    flag_wins = wf("auth", "status", "--token", token, token=None, url=None)
    assert flag_wins.document["user"]["username"] == "oper"
    # A profile's token is never sent to another server.
    elsewhere = wf("auth", "token", "--url", "http://127.0.0.1:9", token=None)
    assert elsewhere.code == 3

    missing = wf("flows", "list", "--profile", "prod", token=None, url=None)
    assert missing.code == 2 and missing.error["code"] == "usage"
    assert missing.error["profiles"] == ["default", "staging"]
    assert "default, staging" in missing.error["message"]
    assert wf("auth", "logout", "--profile", "prod", token=None).code == 2
    assert wf("flows", "list", token=None, url=None, env={"WF_PROFILE": "prod"}).code == 2


def test_the_config_file_lives_in_the_platform_config_dir(wf, tmp_path):
    home = tmp_path / "xdg"
    env = {"XDG_CONFIG_HOME": str(home), "WF_CONFIG_DIR": ""}
    assert wf("auth", "login", "--token", wf.token, token=None, env=env).code == 0
    path = home / "wf" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # An existing file is replaced, never loosened.
    path.chmod(0o644)
    assert wf("auth", "login", "--token", wf.token, token=None, env=env).code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_role_refusal_is_still_exit_1(wf):
    get_user_model().objects.create_user("nobody", password="pw")
    token = api_token_create(user=get_user_model().objects.get(username="nobody"))[1]
    make_flow(simple_definition("guarded"))
    refused = wf("runs", "start", "guarded", token=token)
    assert refused.code == 1 and refused.error["code"] == "forbidden"


def test_version_names_the_client_and_the_server(wf):
    answer = wf("--version", token=None)
    assert answer.code == 0
    assert answer.document["version"] == server_version()  # one distribution, one version
    assert answer.document["api"] == server_version()
    offline = wf("--version", url="http://127.0.0.1:9")
    assert offline.code == 0 and offline.document["api"] is None
    assert offline.document["api_error"]["code"] == "network_error"


def test_jq_filters_every_command_and_refuses_a_bad_program(wf):
    make_flow(simple_definition("jqed"))
    slugs = wf("flows", "list", "--jq", ".items[].slug", raw=True)
    assert slugs.code == 0 and slugs.stdout == "jqed\n"
    count = wf("flows", "list", "--jq", ".items | length", raw=True)
    assert count.stdout == "1\n"
    bad = wf("flows", "list", "--jq", ".items[")
    assert bad.code == 2 and bad.error["code"] == "jq_invalid"
    started = wf("runs", "start", "jqed", "--jq", "{")
    assert started.code == 2  # compiled before the command: no run was started
    assert wf("runs", "list", "jqed").document["items"] == []
    failing = wf("flows", "list", "--jq", ".items.nope")
    assert failing.code == 2 and failing.error["code"] == "jq_error"
    # Errors are never filtered: a script sees them whole.
    missing = wf("flows", "get", "nope", "--jq", ".slug")
    assert missing.code == 3 and missing.error["code"] == "not_found"


def test_api_calls_any_endpoint_with_fields_input_and_paginate(wf, tmp_path):
    for index in range(5):
        make_flow(simple_definition(f"paged-{index}", input={"n": {"type": "integer"}}))
    one = wf("api", "GET", "/flows", "-F", "limit=2")
    assert one.code == 0 and len(one.document["items"]) == 2 and one.document["next_cursor"]
    every = wf("api", "get", "/api/v1/flows?limit=2", "--paginate")
    assert every.code == 0 and every.document["next_cursor"] is None
    assert sorted(f["slug"] for f in every.document["items"]) == [
        f"paged-{i}" for i in range(5)]
    started = wf("api", "POST", "/flows/paged-0/runs", "-F", "input={\"n\": 3}",
                 "-f", "idempotency_key=k-1")
    assert started.code == 0 and started.document["input"] == {"n": 3}
    body = tmp_path / "body.json"
    body.write_text('{"input": {"n": 4}}')
    from_file = wf("api", "POST", "flows/paged-0/runs", "--input", str(body), "--jq", ".input.n",
                   raw=True)
    assert from_file.code == 0 and from_file.stdout == "4\n"
    from_stdin = wf("api", "POST", "/flows/paged-0/runs", "--input", "-",
                    stdin='{"input": {"n": "x"}}')
    assert from_stdin.code == 4 and from_stdin.error["code"] == "input_invalid"
    assert wf("api", "GET", "/flows/nope").code == 3
    assert wf("api", "GET", "/flows", token=None).code == 3
    assert wf("api", "BREW", "/flows").code == 2
    assert wf("api", "GET", "https://example.com/api/v1/flows").code == 2
    assert wf("api", "POST", "/flows", "--paginate").code == 2
    meta = wf("api", "GET", "/meta", token=None)
    assert meta.code == 0 and meta.document["api"] == "1"


def test_completion_scripts_come_from_shtab_and_know_the_commands(wf):
    for shell in ("bash", "zsh", "fish"):
        script = wf("completion", shell, raw=True, token=None)
        assert script.code == 0 and "shtab" in script.stdout and "runs" in script.stdout
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    script = wf("completion", "bash", raw=True).stdout
    probe = script + '\nCOMP_WORDS=(wf ru); COMP_CWORD=1; _shtab_wf; echo "${COMPREPLY[@]}"\n'
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == ["runs"], done.stderr
    assert wf("completion", "tcsh").code == 2
