"""On PostgreSQL, run search's text match is served by the trigram indexes of migration 0007
(the planner is told not to scan, so the plan shows whether an index *can* serve the query)."""

from __future__ import annotations

import pytest
from django.db import connection

from workflows.investigation import runs_search

pytestmark = pytest.mark.django_db


@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        pytest.skip("trigram indexes exist on PostgreSQL only")


def test_the_trigram_indexes_exist(postgres):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes "
                       "WHERE tablename = 'workflows_run' AND indexname LIKE %s", ["%trgm"])
        indexes = dict(cursor.fetchall())
    assert set(indexes) == {"run_input_trgm", "run_error_trgm"}
    assert all("gin_trgm_ops" in definition for definition in indexes.values())


def test_a_text_search_uses_the_trigram_indexes_not_a_scan(postgres):
    queryset = runs_search(actor=None, q="transform exploded")
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        # No scan of the table, and no walk of the primary key in id order: what is left is
        # the bitmap index scans a BitmapOr combines (one index per branch of the OR).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "run_input_trgm" in plan and "run_error_trgm" in plan, plan
    assert "BitmapOr" in plan and "Seq Scan on workflows_run" not in plan, plan

