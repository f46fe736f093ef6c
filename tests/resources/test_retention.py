"""Retention: ended runs past retention go with their rows and files, in batches; what a run in
flight refers to stays."""

from __future__ import annotations

import importlib
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from resources.models import Resource
from resources.retention import retention_days_of, runs_prune
from resources.services import resource_create
from tests.resources.conftest import drain, make_flow, simple_definition
from workflows.models import Attempt, Event, FlowVersion, LogChunk, Run, StepRun
from workflows.services.runs import run_start
from workflows.states import RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


def ended_run(flow, *, days_ago: float, with_file: bool = True) -> tuple[Run, Resource | None]:
    run, _ = run_start(flow=flow, input={})
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    step = StepRun.objects.filter(run=run).first()
    attempt = Attempt.objects.filter(step_run=step).first()
    LogChunk.objects.create(step_run=step, attempt=attempt, seq=999, text="log")
    resource = resource_create(content=b"artifact", run=run, step_run=step) if with_file \
        else None
    Run.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days_ago))
    return run, resource


@pytest.fixture
def flow(db):
    return make_flow(simple_definition("kept"))


def file_exists(resource: Resource) -> bool:
    return resource.file.storage.exists(resource.file.name)


def test_old_ended_runs_go_with_their_rows_and_files(flow, settings):
    settings.WF_RETENTION_DAYS = 30
    old, old_file = ended_run(flow, days_ago=31)
    recent, recent_file = ended_run(flow, days_ago=29)
    assert Event.objects.filter(run=old).exists()
    report = runs_prune(now=timezone.now())
    assert report["runs"] == 1 and report["run_ids"] == [old.pk]
    assert report["step_runs"] == 2 and report["attempts"] == 2 and report["log_chunks"] == 1
    assert report["events"] > 0 and report["resources"] == 1 and report["resource_bytes"] == 8
    assert not Run.objects.filter(pk=old.pk).exists()
    assert not StepRun.objects.filter(run_id=old.pk).exists()
    assert not Event.objects.filter(run_id=old.pk).exists()
    assert not LogChunk.objects.filter(step_run__run_id=old.pk).exists()
    assert not Resource.objects.filter(pk=old_file.pk).exists() and not file_exists(old_file)
    assert Run.objects.filter(pk=recent.pk).exists() and file_exists(recent_file)
    assert Event.objects.filter(run=recent).exists()


def test_runs_in_flight_are_never_pruned_however_old(flow, settings):
    settings.WF_RETENTION_DAYS = 1
    run, _ = run_start(flow=flow, input={})  # queued, not ended
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=90))
    assert runs_prune(now=timezone.now())["runs"] == 0
    assert Run.objects.filter(pk=run.pk).exists()


def test_a_definition_overrides_the_retention(flow, settings):
    settings.WF_RETENTION_DAYS = 30
    short = make_flow(simple_definition("short"))
    forever = make_flow(simple_definition("forever"))
    for target, days in ((short, 2), (forever, 0)):
        version = FlowVersion.objects.get(pk=target.live_version_id)
        FlowVersion.objects.filter(pk=version.pk).update(
            definition={**version.definition, "retention_days": days})
    short_run, _ = ended_run(short, days_ago=3)
    forever_run, _ = ended_run(forever, days_ago=3000)
    default_run, _ = ended_run(flow, days_ago=3)
    report = runs_prune(now=timezone.now())
    assert report["run_ids"] == [short_run.pk]
    assert Run.objects.filter(pk__in=[forever_run.pk, default_run.pk]).count() == 2


@pytest.mark.parametrize(("definition", "days"), [
    ({"retention_days": 7}, 7), ({"retention_days": 0}, 0), ({"retention_days": -1}, 30),
    ({"retention_days": "7"}, 30), ({"retention_days": True}, 30), ({}, 30), (None, 30),
])
def test_retention_days_of(definition, days):
    assert retention_days_of(definition, 30) == days


def test_a_resource_a_run_in_flight_refers_to_is_kept_and_handed_over(flow, settings):
    settings.WF_RETENTION_DAYS = 30
    old, shared = ended_run(flow, days_ago=40)
    live, _ = run_start(flow=flow, input={})
    StepRun.objects.filter(run=live, key="first").update(
        output={"report": {"$resource": shared.uri, "size": 8}})
    report = runs_prune(now=timezone.now())
    assert report["runs"] == 1 and report["resources"] == 0
    assert report["spared_resources"] == [shared.uri]
    shared.refresh_from_db()
    assert shared.run_id == live.pk and shared.step_run_id is None and file_exists(shared)
    # Once the live run ends and passes retention, the resource goes with it.
    drain()
    Run.objects.filter(pk=live.pk).update(finished_at=timezone.now() - timedelta(days=31))
    assert runs_prune(now=timezone.now())["resources"] == 1
    assert not Resource.objects.filter(pk=shared.pk).exists() and not file_exists(shared)


def test_a_dry_run_counts_and_removes_nothing(flow, settings):
    settings.WF_RETENTION_DAYS = 30
    old, old_file = ended_run(flow, days_ago=31)
    report = runs_prune(now=timezone.now(), dry_run=True)
    assert report["dry_run"] is True and report["runs"] == 1 and report["resources"] == 1
    assert Run.objects.filter(pk=old.pk).exists() and file_exists(old_file)


def test_work_is_done_in_batches(flow, settings):
    settings.WF_RETENTION_DAYS = 30
    runs = [ended_run(flow, days_ago=31 + i, with_file=False)[0] for i in range(3)]
    report = runs_prune(now=timezone.now(), batch_size=2)
    assert report["batches"] == 2 and report["runs"] == 3
    assert sorted(report["run_ids"]) == sorted(r.pk for r in runs)
    assert not Run.objects.exists()


def test_expired_and_old_orphan_resources_go_unless_in_flight(flow, settings):
    settings.WF_RETENTION_DAYS = 30
    expired = resource_create(content=b"e")
    Resource.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    orphan = resource_create(content=b"o")
    wanted = resource_create(content=b"w")
    fresh = resource_create(content=b"f")
    Resource.objects.filter(pk__in=[orphan.pk, wanted.pk]).update(
        created_at=timezone.now() - timedelta(days=31))
    live, _ = run_start(flow=flow, input={})
    Run.objects.filter(pk=live.pk).update(input={"file": wanted.uri})
    report = runs_prune(now=timezone.now())
    assert report["resources"] == 2 and report["spared_resources"] == [wanted.uri]
    assert set(Resource.objects.values_list("pk", flat=True)) == {wanted.pk, fresh.pk}
    assert not file_exists(expired) and not file_exists(orphan)


def test_zero_days_keeps_everything(flow, settings):
    settings.WF_RETENTION_DAYS = 0
    ended_run(flow, days_ago=10_000)
    assert runs_prune(now=timezone.now())["runs"] == 0


def test_the_command_prints_what_it_removed_as_json(flow, settings):
    settings.WF_RETENTION_DAYS = 30
    old, _ = ended_run(flow, days_ago=31)
    out = StringIO()
    call_command("prune", "--dry-run", stdout=out)
    assert json.loads(out.getvalue())["run_ids"] == [old.pk]
    assert Run.objects.filter(pk=old.pk).exists()
    out = StringIO()
    call_command("prune", stdout=out)
    document = json.loads(out.getvalue())
    assert document["dry_run"] is False and document["runs"] == 1
    assert not Run.objects.filter(pk=old.pk).exists()


def test_prune_runs_daily_as_a_schedule():
    """The data migration's function (transactional tests flush the rows migrations made)."""
    from django.apps import apps

    migration = importlib.import_module("resources.migrations.0003_prune_schedule")
    migration.create_prune_schedule(apps, None)
    migration.create_prune_schedule(apps, None)  # idempotent
    schedule = Schedule.objects.get(name="resources-prune")
    assert schedule.next_run > timezone.now()
    assert schedule.func == "resources.tasks.prune" and schedule.schedule_type == Schedule.DAILY
    assert schedule.repeats == -1


def test_approvals_go_with_their_run(settings):
    from django.contrib.auth import get_user_model

    from approvals.models import Approval
    from approvals.services import approval_approve

    settings.WF_RETENTION_DAYS = 30
    flow = make_flow(simple_definition("reviewed", steps=[
        {"key": "review", "type": "approval", "assignees": {"users": ["boss"]}}]))
    boss = get_user_model().objects.create_user("boss")
    run, _ = run_start(flow=flow, input={})
    drain()
    approval_approve(approval=Approval.objects.get(run=run), actor=boss)
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    Run.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=31))
    report = runs_prune(now=timezone.now())
    assert report["runs"] == 1 and report["approvals"] == 1
    assert not Approval.objects.exists()


@pytest.mark.parametrize("where", ["input", "trigger_payload", "output", "step_output"])
def test_a_resource_a_kept_run_refers_to_is_spared_and_handed_over(flow, settings, where):
    """Issue 25 (L2): a kept run (ended, within retention) that refers to an old run's
    resource keeps it; it goes with the kept run later, not with the old one now."""
    settings.WF_RETENTION_DAYS = 30
    old, shared = ended_run(flow, days_ago=40)
    kept, _ = ended_run(flow, days_ago=1, with_file=False)
    descriptor = {"$resource": shared.uri, "size": 8}
    if where == "step_output":
        StepRun.objects.filter(run=kept, key="first").update(output={"report": descriptor})
    else:
        Run.objects.filter(pk=kept.pk).update(**{where: {"file": shared.uri}})
    report = runs_prune(now=timezone.now())
    assert report["runs"] == 1 and report["run_ids"] == [old.pk]
    assert report["resources"] == 0 and report["spared_resources"] == [shared.uri]
    shared.refresh_from_db()
    assert shared.run_id == kept.pk and file_exists(shared)
    Run.objects.filter(pk=kept.pk).update(finished_at=timezone.now() - timedelta(days=31))
    assert runs_prune(now=timezone.now())["resources"] == 1
    assert not Resource.objects.filter(pk=shared.pk).exists()


def test_a_run_of_a_flow_kept_forever_keeps_what_it_refers_to(flow, settings):
    settings.WF_RETENTION_DAYS = 30
    forever = make_flow(simple_definition("forever", retention_days=0))
    old, shared = ended_run(flow, days_ago=40)
    kept, _ = ended_run(forever, days_ago=4000, with_file=False)
    Run.objects.filter(pk=kept.pk).update(input={"file": shared.uri})
    orphan = resource_create(content=b"o")
    Resource.objects.filter(pk=orphan.pk).update(created_at=timezone.now() - timedelta(days=31))
    Run.objects.filter(pk=kept.pk).update(trigger_payload={"also": orphan.uri})
    report = runs_prune(now=timezone.now())
    assert report["run_ids"] == [old.pk] and report["resources"] == 0
    assert Resource.objects.filter(pk__in=[shared.pk, orphan.pk]).count() == 2


def test_old_webhook_deliveries_go_with_the_bodies_only_they_hold(settings):
    from resources.payloads import keep_json
    from workflows.models import WebhookDelivery

    settings.WF_INLINE_OUTPUT_BYTES = 16
    hooked = make_flow(simple_definition("hooked-kept", triggers=[{"type": "webhook"}]))
    short = make_flow(simple_definition("hooked-short", retention_days=1,
                                        triggers=[{"type": "webhook"}]))
    kept = keep_json({"blob": "x" * 100}, name="old-body.json")
    old = WebhookDelivery.objects.create(
        flow=hooked, outcome="filtered", payload=kept.value, payload_resource_id=kept.resource_id)
    fresh_body = keep_json({"blob": "y" * 100}, name="fresh-body.json")
    fresh = WebhookDelivery.objects.create(
        flow=hooked, outcome="filtered", payload=fresh_body.value,
        payload_resource_id=fresh_body.resource_id)
    newer = WebhookDelivery.objects.create(flow=short, outcome="rejected", reason="forged")
    WebhookDelivery.objects.filter(pk=old.pk).update(
        received_at=timezone.now() - timedelta(days=31))
    WebhookDelivery.objects.filter(pk=newer.pk).update(
        received_at=timezone.now() - timedelta(days=2))
    # An orphan resource older than retention is pruned, but not while a delivery holds it.
    Resource.objects.filter(pk=fresh_body.resource_id).update(
        created_at=timezone.now() - timedelta(days=40))
    assert runs_prune(now=timezone.now(), dry_run=True)["deliveries"] == 2
    report = runs_prune(now=timezone.now())
    assert report["deliveries"] == 2
    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert set(Resource.objects.values_list("pk", flat=True)) == {fresh_body.resource_id}
