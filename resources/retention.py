"""Retention: ended runs past their flow's retention go, with their rows and their files.

How long a run is kept: the `retention_days` of the definition it was pinned to (its
FlowVersion), else WF_RETENTION_DAYS; 0 keeps runs forever. A run counts from when it ended
(`finished_at`, or `created_at` for a run that ended without one). Only terminal runs are
pruned (completed, failed, canceled).

What goes with a run: its step runs, attempts, log chunks, events (events are append-only and
are deleted only here, with their run), approvals, and the resources attached to it — rows in
the database, files in Django storage. Runs that were retried or replayed from it lose their
`retry_of` / `replay_of` link (SET NULL) and keep everything else.

What is never pruned: a resource that a run this pass keeps refers to — a run in flight, an
ended run within retention, a run of a flow kept forever (a `res://` ref in its input, trigger
payload or output, or in the output, error or callback body of one of its step runs, or the
input, output or error of one of its attempts) — nor one a retry or replay of the pruned run
refers to (reused outputs point at the original run's resources). Such a resource stays and is
handed to the newest run that refers to it (`Resource.run`), so it is pruned with that run.
Resources whose `expires_at` has passed, and orphans (no run, no step run) older than
WF_RETENTION_DAYS, are pruned too, unless a run refers to them.

The webhook delivery log goes the same way: a flow's deliveries received longer ago than its
live release's `retention_days` (else WF_RETENTION_DAYS; 0 keeps them) are deleted in batches,
with the body resources only they hold (a started delivery's body belongs to its run and goes
with it). A resource a remaining delivery holds is not an orphan.

Work is done in batches of `batch_size` runs, one short transaction each, so no lock is held
for long (on SQLite, the write lock for one batch). Files are deleted after the batch commits:
a crash in between leaves files without rows, never rows without files.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast, Coalesce

from resources.models import Resource
from workflows.models import (
    Attempt,
    Event,
    Flow,
    FlowVersion,
    LogChunk,
    Run,
    StepRun,
    WebhookDelivery,
)
from workflows.states import RunStatus

__all__ = ["deliveries_prune", "resources_in_flight", "resources_referenced", "retention_days_of",
           "runs_prune"]

TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)
LISTED = 1000
_REF = re.compile(r"res:/{1,2}([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                  r"[0-9a-fA-F]{12})")


def retention_days_of(definition: Any, default: int | None = None) -> int:
    """A definition's `retention_days` when it is a whole number of days ≥ 0, else the default
    (WF_RETENTION_DAYS). Validation of the field itself belongs to definitions."""
    default = settings.WF_RETENTION_DAYS if default is None else default
    days = definition.get("retention_days") if isinstance(definition, dict) else None
    if isinstance(days, int) and not isinstance(days, bool) and days >= 0:
        return days
    return default


def _refs_in(run_id: int, values: Iterable[Any], found: dict[uuid.UUID, int]) -> None:
    for value in values:
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if "res:/" in text:
            for match in _REF.findall(text):
                found[uuid.UUID(match)] = max(found.get(uuid.UUID(match), 0), run_id)


def _mentions_ref(*columns: str) -> tuple[dict[str, Cast], Q]:
    """Annotations and a condition that keep only rows whose JSON text holds "res:/" in one
    of `columns`: the database skips the rows that refer to nothing, which are most."""
    annotations = {f"{column.replace('__', '_')}_text": Cast(column, output_field=TextField())
                   for column in columns}
    condition = Q()
    for name in annotations:
        condition |= Q(**{f"{name}__contains": "res:/"})
    return annotations, condition


def _refs_of_runs(runs: Q) -> dict[uuid.UUID, int]:
    """Every res:// ref in the values of the runs `runs` selects (it may use `ended`, when the
    run ended), their step runs and attempts, with the newest run that refers to it. Reads in
    chunks, only the JSON columns of the rows that mention a ref."""
    found: dict[uuid.UUID, int] = {}
    selected = Run.objects.annotate(ended=Coalesce("finished_at", "created_at")).filter(runs)
    run_ids = selected.values_list("pk", flat=True)
    annotations, mentions = _mentions_ref("input", "trigger_payload", "output")
    for run_id, *row in selected.annotate(**annotations).filter(mentions)\
            .values_list("pk", "input", "trigger_payload", "output").iterator(chunk_size=500):
        _refs_in(run_id, row, found)
    annotations, mentions = _mentions_ref("output", "error", "callback_payload")
    for run_id, *row in StepRun.objects.filter(run_id__in=run_ids).annotate(**annotations)\
            .filter(mentions).values_list("run_id", "output", "error", "callback_payload")\
            .iterator(chunk_size=500):
        _refs_in(run_id, row, found)
    annotations, mentions = _mentions_ref("input", "output", "error")
    for run_id, *row in Attempt.objects.filter(step_run__run_id__in=run_ids)\
            .annotate(**annotations).filter(mentions)\
            .values_list("step_run__run_id", "input", "output", "error")\
            .iterator(chunk_size=500):
        _refs_in(run_id, row, found)
    return found


def resources_in_flight() -> dict[uuid.UUID, int]:
    """The ids of resources that runs in flight (not terminal) refer to, each with the newest
    such run."""
    return _refs_of_runs(~Q(status__in=TERMINAL))


def resources_referenced() -> dict[uuid.UUID, int]:
    """The ids of resources that any run refers to, each with the newest such run."""
    return _refs_of_runs(Q())


def _prunable_runs(now: datetime) -> Q | None:
    """Which ended runs are past retention: one condition per distinct `retention_days`."""
    default = settings.WF_RETENTION_DAYS
    overrides: dict[int, list[int]] = {}
    ended_versions = Run.objects.filter(status__in=TERMINAL).values("version_id")
    for pk, definition in FlowVersion.objects.filter(pk__in=ended_versions)\
            .values_list("pk", "definition").iterator(chunk_size=200):
        days = retention_days_of(definition, default)
        if days != default:
            overrides.setdefault(days, []).append(pk)
    condition: Q | None = None
    terms = [(Q(version_id__in=ids), days) for days, ids in overrides.items()]
    overridden = [pk for ids in overrides.values() for pk in ids]
    terms.append((~Q(version_id__in=overridden), default))
    for selects, days in terms:
        if days <= 0:
            continue
        term = selects & Q(ended__lt=now - timedelta(days=days))
        condition = term if condition is None else condition | term
    return condition


def _empty_report(now: datetime, dry_run: bool) -> dict[str, Any]:
    return {"dry_run": dry_run, "now": now.isoformat(), "retention_days":
            settings.WF_RETENTION_DAYS, "runs": 0, "step_runs": 0, "attempts": 0,
            "log_chunks": 0, "events": 0, "approvals": 0, "resources": 0, "resource_bytes": 0,
            "batches": 0, "run_ids": [], "spared_resources": [], "deliveries": 0}


def _count_batch(ids: list[int], report: dict[str, Any]) -> None:
    report["runs"] += len(ids)
    report["step_runs"] += StepRun.objects.filter(run_id__in=ids).count()
    report["attempts"] += Attempt.objects.filter(step_run__run_id__in=ids).count()
    report["log_chunks"] += LogChunk.objects.filter(step_run__run_id__in=ids).count()
    report["events"] += Event.objects.filter(run_id__in=ids).count()
    # Approvals (an app above) go with their run by CASCADE; counted through the relation so
    # resources never imports approvals.
    report["approvals"] += Run.objects.filter(pk__in=ids, approvals__isnull=False)\
        .values("approvals").count()
    room = LISTED - len(report["run_ids"])
    report["run_ids"].extend(ids[:max(room, 0)])


def _take_resources(resources: Any, protected: dict[uuid.UUID, int], report: dict[str, Any],
                    dry_run: bool) -> None:
    """Delete (or count) `resources` except the protected ones, which are handed to the run
    that refers to them; files go after commit."""
    doomed: list[tuple[uuid.UUID, str]] = []
    for pk, name, size in resources.values_list("pk", "file", "size"):
        if pk in protected:
            if len(report["spared_resources"]) < LISTED:
                report["spared_resources"].append(f"res://{pk}")
            if not dry_run:
                Resource.objects.filter(pk=pk).update(run_id=protected[pk], step_run=None,
                                                      attempt=None)
            continue
        doomed.append((pk, name))
        report["resources"] += 1
        report["resource_bytes"] += size or 0
    if dry_run or not doomed:
        return
    Resource.objects.filter(pk__in=[pk for pk, _ in doomed]).delete()
    storage = Resource._meta.get_field("file").storage
    names = [name for _, name in doomed if name]

    def delete_files() -> None:
        for name in names:
            try:
                storage.delete(name)
            except OSError:
                pass  # already gone; nothing refers to it any more

    transaction.on_commit(delete_files)


def runs_prune(*, now: datetime, dry_run: bool = False, batch_size: int = 100) -> dict[str, Any]:
    """Delete the ended runs past retention with their rows and files, then expired and
    orphaned resources; return what was removed (or, with `dry_run`, what would be).

    Each batch is its own transaction. The refs of runs in flight are read again for every
    batch, so a resource a run started meanwhile refers to is spared (a run that starts between
    that read and the batch's commit, and refers to an old run's resource by its input, is the
    window left; it is one batch long)."""
    report = _empty_report(now, dry_run)
    batch_size = max(int(batch_size), 1)
    condition = _prunable_runs(now)
    # What the runs this pass keeps refer to: their values do not change once ended, so read
    # once; runs in flight are read again for every batch below.
    kept = {} if condition is None else _refs_of_runs(~(condition & Q(status__in=TERMINAL)))
    after = 0
    while condition is not None:
        ids = list(Run.objects.annotate(ended=Coalesce("finished_at", "created_at"))
                   .filter(condition, status__in=TERMINAL, pk__gt=after).order_by("pk")
                   .values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        after = ids[-1]
        report["batches"] += 1
        protected = dict(kept)
        protected.update(_refs_of_runs(
            (Q(retry_of_id__in=ids) | Q(replay_of_id__in=ids)) & ~Q(pk__in=ids)))
        protected.update(resources_in_flight())
        with transaction.atomic():
            _count_batch(ids, report)
            _take_resources(Resource.objects.filter(
                Q(run_id__in=ids) | Q(step_run__run_id__in=ids)), protected, report, dry_run)
            if not dry_run:
                LogChunk.objects.filter(step_run__run_id__in=ids).delete()
                Event.objects.filter(run_id__in=ids).delete()
                Attempt.objects.filter(step_run__run_id__in=ids).delete()
                StepRun.objects.filter(run_id__in=ids).delete()
                Run.objects.filter(pk__in=ids).delete()
    deliveries_prune(now=now, dry_run=dry_run, batch_size=batch_size, report=report)
    _prune_loose_resources(now=now, dry_run=dry_run, batch_size=batch_size, report=report)
    return report


def deliveries_prune(*, now: datetime, dry_run: bool, batch_size: int,
                     report: dict[str, Any]) -> None:
    """Delete the webhook deliveries past their flow's retention (counted in
    report["deliveries"]), with the body resources that belong to no run, one short
    transaction per batch (index delivery_received_at)."""
    default = settings.WF_RETENTION_DAYS
    days_of: dict[int, list[int]] = {}
    for pk, definition in Flow.objects.filter(deliveries__isnull=False).distinct()\
            .values_list("pk", "live_version__definition"):
        days_of.setdefault(retention_days_of(definition, default), []).append(pk)
    for days, flow_ids in days_of.items():
        if days <= 0:
            continue
        old = WebhookDelivery.objects.filter(flow_id__in=flow_ids,
                                             received_at__lt=now - timedelta(days=days))
        if dry_run:
            report["deliveries"] += old.count()
            continue
        while True:
            rows = list(old.order_by("pk").values_list("pk", "payload_resource_id")
                        [:batch_size])
            if not rows:
                break
            report["deliveries"] += len(rows)
            with transaction.atomic():
                ids = [pk for pk, _ in rows]
                resources = [res for _, res in rows if res is not None]
                WebhookDelivery.objects.filter(pk__in=ids).delete()
                _take_resources(Resource.objects.filter(pk__in=resources, run__isnull=True,
                                                        step_run__isnull=True),
                                resources_referenced() if resources else {}, report, dry_run)


def _prune_loose_resources(*, now: datetime, dry_run: bool, batch_size: int,
                           report: dict[str, Any]) -> None:
    """Expired resources, and orphans (no run, no step run) older than WF_RETENTION_DAYS,
    except what a run still refers to (every run left is kept)."""
    loose = Q(expires_at__lt=now)
    if settings.WF_RETENTION_DAYS > 0:
        loose |= Q(run__isnull=True, step_run__isnull=True,
                   created_at__lt=now - timedelta(days=settings.WF_RETENTION_DAYS))
    if not Resource.objects.filter(loose).exists():
        return
    protected = resources_referenced()
    kept = WebhookDelivery.objects.filter(payload_resource__isnull=False)\
        .values("payload_resource_id")
    after: uuid.UUID | None = None
    while True:
        page = Resource.objects.filter(loose).exclude(pk__in=kept).order_by("pk")
        if after is not None:
            page = page.filter(pk__gt=after)
        ids = list(page.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        after = ids[-1]
        with transaction.atomic():
            _take_resources(Resource.objects.filter(pk__in=ids), protected, report, dry_run)
