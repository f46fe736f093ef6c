from __future__ import annotations

import re

import pytest
from django.urls import reverse

from resources.payloads import is_descriptor, value_load
from resources.services import resource_create
from tests.admin.conftest import echo_definition, start
from tests.factories import make_flow
from workflows.admin_views import step_panel
from workflows.engine import attempts, executor
from workflows.models import LogChunk, StepRun
from workflows.services.runs import run_start
from workflows.states import StepStatus

pytestmark = pytest.mark.django_db


def panel_url(run, key: str) -> str:
    return reverse("admin:workflows_run_step", args=[run.pk, key])


def live_url(run, key: str, after: int = 0, v: str = "") -> str:
    return reverse("admin:workflows_run_step_live", args=[run.pk, key]) + f"?after={after}&v={v}"


def test_the_panel_shows_input_attempts_errors_and_output(admin_client, failed_run):
    body = admin_client.get(panel_url(failed_run, "flaky"), HTTP_HX_REQUEST="true")
    page = body.content.decode()
    assert page.count('class="sp-attempt ') == 2
    assert 'data-attempt="1" data-status="failed"' in page
    assert 'data-attempt="2" data-status="failed"' in page
    assert page.count("ActionFailed") >= 2 and "upstream said no" in page
    assert "core.fail" in page  # the resolved input
    assert 'data-status="failed"' in page
    ok = admin_client.get(panel_url(failed_run, "fetch")).content.decode()
    assert "&quot;weekly&quot;" in ok  # output {"topic": "weekly"}, resolved from the input


def test_a_panel_of_an_unknown_step_is_404(admin_client, failed_run):
    assert admin_client.get(panel_url(failed_run, "nope")).status_code == 404


def test_a_user_who_cannot_view_runs_cannot_open_the_panel(clients, failed_run):
    assert clients["nobody"].get(panel_url(failed_run, "flaky")).status_code == 403
    assert clients["support"].get(panel_url(failed_run, "flaky")).status_code == 200


def _logs(step: StepRun, count: int) -> None:
    attempt = step.attempts.order_by("-number").first()
    LogChunk.objects.bulk_create(
        LogChunk(step_run=step, attempt=attempt, seq=n, text=f"line {n}\n")
        for n in range(1, count + 1)
    )


def test_a_long_log_opens_at_its_tail_and_loads_earlier_pages(admin_client, completed_run):
    step = completed_run.step_runs.get(key="first")
    _logs(step, step_panel.LOG_PAGE * 2 + 50)
    page = admin_client.get(panel_url(completed_run, "first")).content.decode()
    seqs = [int(s) for s in re.findall(r'data-seq="(\d+)"', page)]
    assert seqs == list(range(step_panel.LOG_PAGE + 51, step_panel.LOG_PAGE * 2 + 51))
    earlier = re.search(r'class="sp-earlier" hx-get="([^"]+)"', page).group(1)
    earlier = earlier.replace("&amp;", "&")
    body = admin_client.get(earlier).content.decode()
    seqs = [int(s) for s in re.findall(r'data-seq="(\d+)"', body)]
    assert seqs == list(range(51, step_panel.LOG_PAGE + 51))
    last = re.search(r'class="sp-earlier" hx-get="([^"]+)"', body).group(1).replace("&amp;", "&")
    body = admin_client.get(last).content.decode()
    assert [int(s) for s in re.findall(r'data-seq="(\d+)"', body)] == list(range(1, 51))
    assert "sp-earlier" not in body
    assert "── attempt 1 ──" in body


def test_the_panel_of_a_running_step_tails_its_log_until_it_ends(admin_client, clients):
    definition = echo_definition(keys=("work",))
    flow = make_flow(definition)
    run, _ = run_start(flow=flow, input={})
    step = StepRun.objects.get(run=run, key="work")
    claimed = executor.claim(step.pk)
    attempts.attempt_write(claimed.attempt)  # what the worker writes at its first check
    step.refresh_from_db()
    assert step.status == StepStatus.RUNNING
    page = admin_client.get(panel_url(run, "work")).content.decode()
    poller = re.search(r'<div id="sp-poller" hx-get="([^"]+)" hx-trigger="every 2s"', page)
    assert poller, "a running step polls its own fragment"
    url = poller.group(1).replace("&amp;", "&")
    assert admin_client.get(url).status_code == 204  # nothing new yet
    _logs(step, 3)
    response = admin_client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'hx-swap-oob="beforeend:#sp-log-lines"' in body and "line 3" in body
    assert 'id="sp-state"' not in body  # the attempts part is only sent when it changed
    follow = re.search(r'hx-get="([^"]+)"', body).group(1).replace("&amp;", "&")
    assert "after=3" in follow
    executor.finish(claimed, executor.execute(claimed))
    response = admin_client.get(follow)
    assert response.status_code == 286  # ended: the last update, and polling stops
    body = response.content.decode()
    assert 'id="sp-state" hx-swap-oob="true"' in body and 'data-status="completed"' in body
    assert "hx-trigger" not in body
    assert clients["nobody"].get(follow).status_code == 403


def test_res_references_in_an_output_link_to_the_resource(admin_client):
    resource = resource_create(content=b"a,b\n1,2\n", name="t.csv", content_type="text/csv")
    flow = make_flow({"slug": "res", "name": "Res", "steps": [
        {"key": "make", "type": "python", "action": "core.echo",
         "args": {"file": resource.uri, "note": "x" * 500}}]})
    run = start(flow)
    page = admin_client.get(panel_url(run, "make")).content.decode()
    change = reverse("admin:resources_resource_change", args=[resource.pk])
    download = reverse("admin:resources_resource_download", args=[resource.pk])
    assert f'href="{change}"' in page and f'href="{download}"' in page
    assert '<details class="j-fold">' in page  # the long value is folded
    response = admin_client.get(download)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"a,b\n1,2\n"
    assert response["Content-Disposition"].startswith("attachment")


# --- input apart from configuration, errors, reused steps ---------------------------------------

def _section(page: str, name: str) -> str:
    """The HTML of the panel section `data-section=name` up to the next section."""
    start = page.index(f'data-section="{name}"')
    end = page.find('data-section="', start + 10)
    return page[start:end if end > 0 else len(page)]


def test_input_is_what_the_step_received_and_the_configuration_sits_apart_collapsed(
        admin_client, failed_run):
    page = admin_client.get(panel_url(failed_run, "flaky")).content.decode()
    received = _section(page, "step-input")
    assert "&quot;message&quot;" in received and "upstream said no" in received
    for config_key in ("retry", "needs", "max_attempts", "core.fail", "&quot;key&quot;"):
        assert config_key not in received
    config = _section(page, "step-config")
    assert '<details class="sp-section sp-config" data-section="step-config">' in page
    assert '<details class="sp-section sp-config" data-section="step-config" open' not in page
    assert "max_attempts" in config and "&quot;needs&quot;" in config and "core.fail" in config
    # An input resolved from references shows its value, as the attempt received it.
    fetch = _section(admin_client.get(panel_url(failed_run, "fetch")).content.decode(),
                     "step-input")
    assert "&quot;topic&quot;" in fetch and "&quot;weekly&quot;" in fetch
    assert "{{" not in fetch


def test_a_failure_without_a_traceback_shows_no_traceback_block(admin_client, failed_run):
    page = admin_client.get(panel_url(failed_run, "flaky")).content.decode()
    assert "ActionFailed" in page and "upstream said no" in page
    assert "traceback" not in page.lower()


def test_an_exception_shows_its_traceback_folded(admin_client, db):
    from tests.admin.conftest import start as start_run
    from workflows.steps.actions import action, get_action

    if get_action("test.raises_value_error") is None:
        @action("test.raises_value_error")
        def raises(ctx, **_):
            raise ValueError("bad row 7")

    flow = make_flow({"slug": "raising", "name": "Raising", "steps": [
        {"key": "boom", "type": "python", "action": "test.raises_value_error"}]})
    run = start_run(flow)
    page = admin_client.get(panel_url(run, "boom")).content.decode()
    assert page.count('<details class="sp-trace"><summary>traceback</summary>') == 2
    assert "bad row 7" in page and "Traceback (most recent call last)" in page


def test_a_reused_step_links_to_the_step_of_the_run_it_came_from(admin_client, failed_run):
    from tests.admin.conftest import make_user
    from workflows.services.runs import run_retry

    operator = make_user("olga", "operators")
    retry = run_retry(run=failed_run, actor=operator)
    page = admin_client.get(panel_url(retry, "fetch")).content.decode()
    link = reverse("admin:workflows_run_change", args=[failed_run.pk]) + "#step=fetch"
    assert f'href="{link}" data-reused-link' in page
    assert f"fetch of run #{failed_run.pk}" in page
    assert "step run" not in page  # no internal id
    # The source step itself is not reused: no link there.
    assert "data-reused-link" not in admin_client.get(panel_url(failed_run, "fetch")).content.decode()


def test_a_wait_step_shows_its_callback_issued_expiry_and_sender(admin_client, db):
    from django.test import Client

    from tests.admin.conftest import start as start_run
    from tests.factories import drain
    from workflows.engine.callback_tokens import callback_token

    flow = make_flow({"slug": "waiting", "name": "Waiting", "steps": [
        {"key": "hold", "type": "wait", "timeout_seconds": 3600},
        {"key": "after", "type": "python", "action": "core.echo", "args": {"ok": True}}]})
    run = start_run(flow)
    step = StepRun.objects.get(run=run, key="hold")
    page = admin_client.get(panel_url(run, "hold")).content.decode()
    wait = _section(page, "wait")
    assert '<dd data-wait="issued"><time ' in wait
    assert '<dd data-wait="expires"><time ' in wait  # the wait is reached: its timeout is set
    assert "not yet" in wait and 'data-wait="sender"' not in wait
    assert "none: this step takes no input" in page
    response = Client(REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="agent-runner/2.1").post(
        f"/api/v1/callbacks/{callback_token(step.callback_nonce)}", {"pr": 5},
        content_type="application/json")
    assert response.status_code == 202
    drain()
    wait = _section(admin_client.get(panel_url(run, "hold")).content.decode(), "wait")
    assert '<dd data-wait="received"><time ' in wait
    assert "<code>203.0.113.9</code>" in wait and "<code>agent-runner/2.1</code>" in wait
    assert callback_token(step.callback_nonce) not in wait  # never the token


def test_an_output_nested_900_deep_is_kept_and_rendered_with_a_depth_cap(admin_client, db):
    from tests.admin.conftest import start as start_run
    from workflows.steps.actions import action, get_action

    def deep_value(levels: int) -> object:
        deep: object = "bottom"
        for n in range(levels):
            deep = {"n": deep} if n % 2 else [deep]
        return deep

    if get_action("test.returns_deep") is None:
        @action("test.returns_deep")
        def returns_deep(ctx, levels=900, **_):
            return deep_value(levels)

    # Through the engine, the storage rule keeps a 900-deep output whole as a resource.
    flow = make_flow({"slug": "deep", "name": "Deep", "steps": [
        {"key": "first", "type": "python", "action": "test.returns_deep"}]})
    run = start_run(flow)
    step = run.step_runs.get(key="first")
    assert step.status == "completed" and is_descriptor(step.output)
    assert step.output["reason"] == "depth"
    assert value_load(step.output) == deep_value(900)
    response = admin_client.get(panel_url(run, "first"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    # A row written inline deeper than the panel shows (40 levels) renders with a cut.
    StepRun.objects.filter(pk=step.pk).update(output=deep_value(60))
    page = admin_client.get(panel_url(run, "first"), HTTP_HX_REQUEST="true").content.decode()
    assert "nested deeper than 40 levels; the API has the whole value" in page
    assert StepRun.objects.get(pk=step.pk).output == deep_value(60)  # kept whole
