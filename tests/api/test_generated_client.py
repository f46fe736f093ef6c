"""A client generated from the served OpenAPI document works, as an integrator would use it
(issue 27).

`openapi-python-client` (a test dependency) writes a typed client from
`/api/v1/openapi.json` of a live server into a temporary directory, with `--fail-on-warning`:
any warning about the document fails the test. The client then makes a round trip against the
live server with a real qcluster: push a flow, release, promote, start a run, read it, list its
events, approve its approval, and read an error. The generator needs `ruff` (also a test
dependency) for its post hooks; it runs offline.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.e2e.conftest import cluster_env, qcluster  # noqa: F401 - fixtures used here
from tests.factories import make_flow, simple_definition
from workflows.management.commands.export_openapi import openapi_document
from workflows.services.runs import run_start
from workflows.services.tokens import api_token_create

BIN = Path(sys.executable).parent
PACKAGE = "wf_generated_client"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _generate(url: str, into: Path) -> Path:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    config = into / "generator.yaml"
    config.write_text("http_timeout: 120\n")  # a busy CI machine; the default is 5 s
    done = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--url", f"{url}/api/v1/openapi.json",
         "--meta", "none", "--output-path", str(into / PACKAGE), "--fail-on-warning",
         "--config", str(config)],
        capture_output=True, text=True, env=env, cwd=into, timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "warning" not in output.lower(), output
    assert "error" not in output.lower(), output
    return into / PACKAGE


@pytest.fixture
def generated(live_server, tmp_path):
    """The generated package, imported; removed from sys.modules afterwards."""
    _generate(live_server.url, tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _poll(read, until, *, timeout: float = 180):
    deadline = time.monotonic() + timeout
    value = read()
    while not until(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = read()
    return value


def test_a_generated_python_client_makes_a_round_trip(generated, live_server, transactional_db,
                                                       qcluster):  # noqa: F811
    qcluster()
    user = get_user_model().objects.create_superuser("integrator", "i@example.com", "pw")
    token = api_token_create(user=user, name="generated client")[1]

    client_module = importlib.import_module(f"{PACKAGE}.client")
    models = importlib.import_module(f"{PACKAGE}.models")
    flows_create = importlib.import_module(f"{PACKAGE}.api.flows.flows_create")
    releases_create = importlib.import_module(f"{PACKAGE}.api.flows.releases_create")
    releases_promote = importlib.import_module(f"{PACKAGE}.api.flows.releases_promote")
    runs_start = importlib.import_module(f"{PACKAGE}.api.flows.runs_start")
    runs_get = importlib.import_module(f"{PACKAGE}.api.runs.runs_get")
    runs_events = importlib.import_module(f"{PACKAGE}.api.runs.runs_events")
    approvals_list = importlib.import_module(f"{PACKAGE}.api.approvals.approvals_list")
    approvals_approve = importlib.import_module(f"{PACKAGE}.api.approvals.approvals_approve")

    client = client_module.AuthenticatedClient(base_url=live_server.url, token=token,
                                               raise_on_unexpected_status=True)

    definition = models.FlowDefinition.from_dict({
        "slug": "generated", "name": "Generated",
        "steps": [
            {"key": "build", "type": "python", "action": "core.echo", "args": {"built": True}},
            {"key": "review", "type": "approval", "assignees": {"users": ["integrator"]}},
            {"key": "publish", "type": "python", "action": "core.echo", "args": {"done": True}},
        ],
    })
    flow = flows_create.sync(client=client, body=models.DefinitionIn(definition=definition))
    assert isinstance(flow, models.FlowOut), flow
    assert flow.slug == "generated" and flow.live_version is None

    release = releases_create.sync(client=client, slug="generated",
                                   body=models.ReleaseIn(notes="first"))
    assert isinstance(release, models.ReleaseOut), release
    assert release.version == 1 and not release.live

    promoted = releases_promote.sync(client=client, slug="generated", version=1,
                                     body=models.PromoteIn(comment="ship it"))
    assert isinstance(promoted, models.FlowOut), promoted
    assert promoted.live_version == 1

    started = runs_start.sync_detailed(
        client=client, slug="generated",
        body=models.RunStartIn(input_=models.RunStartInInputType0.from_dict({}),
                               idempotency_key="generated-1"))
    assert started.status_code == 201
    run = started.parsed
    assert isinstance(run, models.RunOut) and run.version == 1
    assert isinstance(run.status, models.RunStatus)

    run = _poll(lambda: runs_get.sync(client=client, run_id=run.id),
                lambda r: r.status == models.RunStatus.WAITING_FOR_APPROVAL)
    assert run.status == models.RunStatus.WAITING_FOR_APPROVAL, run.status
    assert [step.key for step in run.steps] == ["build", "review", "publish"]
    assert run.steps[0].status == models.StepStatus.COMPLETED

    events = runs_events.sync(client=client, run_id=run.id)
    assert isinstance(events, models.EventPage)
    kinds = [event.kind for event in events.items]
    assert kinds[0] == models.EventKind.RUN_CREATED
    assert models.EventKind.APPROVAL_REQUESTED in kinds

    inbox = approvals_list.sync(client=client)
    assert isinstance(inbox, models.ApprovalPage)
    (approval,) = [a for a in inbox.items if a.run == run.id]
    assert approval.status == models.ApprovalStatus.PENDING and approval.step == "review"

    decided = approvals_approve.sync(client=client, approval_id=approval.id,
                                     body=models.DecisionIn(comment="looks good"))
    assert isinstance(decided, models.ApprovalOut), decided
    assert decided.status == models.ApprovalStatus.APPROVED and decided.comment == "looks good"

    run = _poll(lambda: runs_get.sync(client=client, run_id=run.id),
                lambda r: r.status == models.RunStatus.COMPLETED)
    assert run.status == models.RunStatus.COMPLETED, run.status

    # Errors are typed too: the one error document.
    missing = runs_get.sync_detailed(client=client, run_id=10**12)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.ErrorOut)
    assert missing.parsed.error.code == "not_found"


def test_the_documented_python_recipe_generates_a_client_that_reads_a_run(
        live_server, transactional_db, tmp_path):
    """docs/api.md "Generate a client", the Python lines run as written (the TypeScript line
    needs npm and the network, so it is left out)."""
    section = DOCS.read_text().split("### Generate a client", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    recipe = "\n".join(line for line in block.splitlines() if not line.startswith("npx "))
    user = get_user_model().objects.create_superuser("reader", "r@example.com", "pw")
    token = api_token_create(user=user, name="docs")[1]
    run, _ = run_start(flow=make_flow(simple_definition("documented")), input={})
    recipe = recipe.replace("run_id=1", f"run_id={run.pk}")
    openapi_document()  # built once per process: the generator's 5 s timeout is for fetching
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "WF_URL": live_server.url, "WF_TOKEN": token}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", recipe], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"RunOut(id={run.pk}, flow='documented'" in done.stdout, done.stdout
