"""Issue 25 (M2): the pages that show a run's input answer 200 whatever the database holds.

Rows are written directly (raw SQL, past the ORM's own encoder), as an older release or a
restore could have left them: strings PostgreSQL would refuse (kept on SQLite), numbers Python
cannot convert or represent, nesting deeper than Python's recursion limit reads, 1.5 MB, and
values that are not a mapping at all. Each is written on every database that stores it; a
database that refuses it is skipped for that value with the reason.
"""

from __future__ import annotations

import json

import pytest
from django.db import DataError, IntegrityError, connection, transaction
from django.urls import reverse

from tests.admin.conftest import retry_definition, start
from tests.factories import make_flow
from tests.hostile import LONG_DIGITS
from workflows.models import Run

pytestmark = pytest.mark.django_db

HOSTILE_INPUTS = {
    "lone surrogate": '{"topic": "\\ud800"}',
    "NUL in an array": '{"topic": ["ok", "a\\u0000b"]}',
    "NUL in a key": '{"a\\u0000b": 1}',
    "5,000 digits": '{"topic": ' + LONG_DIGITS + "}",
    "1e400": '{"topic": 1e400}',
    "1,500 levels": '{"topic": ' + "[" * 1500 + "]" * 1500 + "}",
    "950 levels": '{"topic": ' + "[" * 950 + "]" * 950 + "}",
    "1.5 MB": json.dumps({"topic": "x" * 1_500_000}),
    "a list": "[1, 2, 3]",
    "a string": '"weekly"',
    "a number": "42",
    "null": "null",
    "markup": json.dumps({"<b>topic</b>": "<script>alert(1)</script>"}),
}


def write_raw(run: Run, column: str, text: str) -> None:
    """Store `text` as the column's JSON as it is, or skip: the database refuses it."""
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"UPDATE {Run._meta.db_table} SET {column} = %s{cast} WHERE id = %s",
                           [text, run.pk])
    except (DataError, IntegrityError) as exc:
        pytest.skip(f"{connection.vendor} does not store it: {str(exc).splitlines()[0]}")


def pages(run: Run) -> list[str]:
    runs = reverse("admin:workflows_run_changelist")
    return [runs, runs + "?status__exact=failed", runs + "?q=weekly",
            reverse("admin:workflows_run_change", args=[run.pk]), "/admin/",
            reverse("admin:workflows_flow_change", args=[run.flow_id])]


@pytest.mark.parametrize("name", HOSTILE_INPUTS)
def test_pages_that_show_inputs_answer_whatever_the_input_holds(clients, admin_client, name):
    run = start(make_flow(retry_definition()))
    assert run.status == "failed"
    write_raw(run, "input", HOSTILE_INPUTS[name])
    write_raw(run, "trigger_payload", HOSTILE_INPUTS[name])
    for client in (admin_client, clients["support"]):
        for url in pages(run):
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            if url.startswith(reverse("admin:workflows_run_changelist")) and "?q=" not in url:
                assert f"/admin/workflows/run/{run.pk}/change/" in (
                    response.content.decode())
