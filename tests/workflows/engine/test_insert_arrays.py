"""statements.insert of many rows (an array per column on PostgreSQL): values land as the ORM
writes them, columns of NULLs only and quotes in text included, ids returned in row order."""

import pytest
from django.utils import timezone

from tests.factories import steps_of
from tests.workflows.engine.test_for_each import definition, fan, start
from workflows.engine import executor, statements
from workflows.models import Attempt, LogChunk, StepInstance

pytestmark = pytest.mark.django_db


def test_many_rows_land_as_the_orm_writes_them_null_only_columns_included():
    run = start(definition(fan()), input={"items": list(range(12))})
    executor.advance(steps_of(run)["each"].pk)
    rows = list(StepInstance.objects.filter(step_run__run=run).order_by("index"))
    now = timezone.now()
    attempts = [Attempt(step_run_id=i.step_run_id, instance=i, number=1, status="completed",
                        worker="w", started_at=now) for i in rows]
    cursor = statements.insert(attempts, returning=True)
    ids = [pk for (pk,) in cursor.fetchall()]
    cursor.close()
    assert len(ids) == 12
    for attempt, pk in zip(attempts, ids, strict=True):
        attempt.pk = pk
    got = list(Attempt.objects.filter(pk__in=ids).order_by("pk")
               .values_list("instance_id", "output", "error", "exit_code", "input"))
    assert got == [(i.pk, None, None, None, None) for i in rows]
    text = "x'\"{}\\"
    chunks = [LogChunk(step_run_id=a.step_run_id, attempt=a, instance_id=a.instance_id, seq=1,
                       stream="stdout", text=text) for a in attempts]
    cursor = statements.insert(chunks)
    assert cursor.rowcount == 12
    cursor.close()
    assert set(LogChunk.objects.filter(attempt_id__in=ids).values_list("text", flat=True)) == {
        text}
    assert LogChunk.objects.filter(attempt_id__in=ids, at__isnull=False).count() == 12
