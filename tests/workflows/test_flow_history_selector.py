"""selectors.flow_history: the newest entries and who made each release live, in one query."""

import pytest

from tests.factories import make_flow, simple_definition
from workflows import selectors
from workflows.services.history import flow_history_record
from workflows.states import FlowHistoryKind

pytestmark = pytest.mark.django_db


def test_a_release_that_went_live_long_ago_keeps_its_entry_past_the_newest_rows(
        django_assert_num_queries):
    flow = make_flow(simple_definition("history"))  # v1 created, released and promoted
    for n in range(40):
        flow_history_record(flow=flow, kind=FlowHistoryKind.DRAFT_EDITED, comment=f"edit {n}")
    with django_assert_num_queries(1):
        entries, went_live = selectors.flow_history(flow=flow, limit=30, numbers=[1, 2])
    assert len(entries) == 30
    assert [e.comment for e in entries[:2]] == ["edit 39", "edit 38"]
    assert all(e.kind == FlowHistoryKind.DRAFT_EDITED for e in entries)
    assert set(went_live) == {1}
    assert went_live[1].kind == FlowHistoryKind.PROMOTED and went_live[1].to_version == 1


def test_the_last_promotion_of_a_release_is_the_one_shown():
    flow = make_flow(simple_definition("again"))
    first = selectors.flow_history(flow=flow, limit=5, numbers=[1])[1][1]
    later = flow_history_record(flow=flow, kind=FlowHistoryKind.ROLLED_BACK, from_version=2,
                                to_version=1)
    entries, went_live = selectors.flow_history(flow=flow, limit=5, numbers=[1])
    assert went_live[1].pk == later.pk != first.pk
    assert entries[0].pk == later.pk
