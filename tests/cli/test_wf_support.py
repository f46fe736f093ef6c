"""`wf runs list` (search across flows), `wf runs rerun` and `wf runs explain`."""

from __future__ import annotations

import pytest

from tests.factories import drain
from tests.history import broken_release_history, release_live

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_runs_list_searches_across_flows_and_keeps_the_flow_form(wf):
    history = broken_release_history(good=1, bad=2)
    bad = [r.pk for r in reversed(history.bad_runs)]

    every = wf("runs", "list")
    assert every.code == 0, every.stderr
    assert [r["id"] for r in every.document["items"]] == bad + [history.good_runs[0].pk]
    failed = wf("runs", "list", "--status", "failed", "--error-kind", "error", "--q",
                "exploded")
    assert [r["id"] for r in failed.document["items"]] == bad
    assert [r["id"] for r in wf("runs", "list", "--q", "bad-1").document["items"]] == bad[:1]
    # The flow form (`wf runs list SLUG`) still lists a flow's runs, and pages with --all.
    flow_runs = wf("runs", "list", "pipeline", "--status", "completed")
    assert [r["id"] for r in flow_runs.document["items"]] == [history.good_runs[0].pk]
    paged = wf("runs", "list", "pipeline", "--q", "bad", "--limit", "1", "--all")
    assert [r["id"] for r in paged.document["items"]] == bad
    assert wf("runs", "list", "pipeline", "--flow", "other").code == 2
    assert wf("runs", "list", "--error-kind", "nonsense").code == 4


def test_rerun_and_explain(wf):
    history = broken_release_history(good=1, bad=2)
    explained = wf("runs", "explain", str(history.bad_runs[-1].pk))
    assert explained.code == 0, explained.stderr
    assert explained.document["first_bad_run"]["id"] == history.bad_runs[0].pk
    assert explained.document["failing_since_count"] == 2
    assert wf("runs", "explain", str(history.good_runs[0].pk)).code == 4

    pinned = wf("runs", "rerun", str(history.bad_runs[1].pk), "--on-version", "1")
    assert pinned.code == 0, pinned.stderr
    assert pinned.document["version"] == 1 and pinned.document["rerun_of"] == history.bad_runs[1].pk
    assert wf("runs", "get", str(history.bad_runs[1].pk)).document["reruns"] == [
        pinned.document["id"]]
    assert wf("runs", "rerun", str(history.bad_runs[1].pk), "--on-version", "9").code == 3

    fix = release_live(history.flow, history.v1.definition)
    rerun = wf("runs", "rerun", str(history.bad_runs[0].pk))
    assert rerun.code == 0, rerun.stderr
    assert rerun.document["rerun_of"] == history.bad_runs[0].pk
    assert rerun.document["version"] == fix.number
    drain()
    assert wf("runs", "get", str(rerun.document["id"])).document["status"] == "completed"
    assert wf("runs", "rerun", "999999").code == 3
