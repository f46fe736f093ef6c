"""Property-based checks of every operation against the app's own OpenAPI schema: whatever
schemathesis sends (valid or not), the API answers without a server error.

The Django WSGI app runs in-process on the test database; requests are authenticated as a
superuser with a Bearer token, and a flow with a live release, runs, an approval and a resource
exist so that some generated requests reach real objects. WF_SCHEMATHESIS_EXAMPLES raises the
number of examples per operation (default 20) for a deeper run.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import ignored_auth  # noqa: F401 - loads the registry

from approvals.models import Approval
from connections.services import connection_create
from resources.services import resource_create
from tests.api.conftest import approval_definition, make_user, wait_definition
from tests.factories import drain, make_flow, simple_definition
from workflows.engine.callback_tokens import callback_token
from workflows.models import Flow, StepRun
from workflows.services.runs import run_start
from workflows.services.tokens import api_token_create

pytestmark = pytest.mark.django_db

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


@pytest.fixture
def in_process_requests():
    """Keep the test's database connection across WSGI requests: Django's handler would close
    it at the end of each request (the test client disconnects the same signal)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(db, in_process_requests, settings):
    """A superuser token, and path parameters that name real objects."""
    settings.WF_ANON_THROTTLE = ""
    user = make_user("schemathesis", superuser=True)
    flow = make_flow(simple_definition("simple", triggers=[{"type": "webhook"}]))
    make_flow(approval_definition())
    make_flow(wait_definition())
    run, _ = run_start(flow=flow, input={})
    run_start(flow=Flow.objects.get(slug="reviewed"), input={})
    waiting, _ = run_start(flow=Flow.objects.get(slug="waiting"), input={})
    drain()
    resource = resource_create(content=b"artifact", name="a.txt", run=run)
    connection_create(actor=None, name="api", kind="generic", config={"x": 1})
    wait_step = StepRun.objects.get(run=waiting, key="agent_done")
    known = {
        "slug": "simple", "run_id": run.pk, "key": "first", "version": 1,
        "approval_id": Approval.objects.get().pk, "ref": resource.uri, "name": "api",
        "token": callback_token(wait_step.callback_nonce),
    }
    return api_token_create(user=user)[1], known


@schema.parametrize()
@settings(max_examples=int(os.environ.get("WF_SCHEMATHESIS_EXAMPLES", "20")),
          derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error(case, world):
    token, known = world
    headers = {"Authorization": f"Bearer {token}"}
    response = case.call(headers=headers)
    case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])
    # The same request against real objects, so handlers run past their lookups.
    if case.path_parameters:
        case.path_parameters = {name: known.get(name, value)
                                for name, value in case.path_parameters.items()}
        response = case.call(headers=headers)
        case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])
