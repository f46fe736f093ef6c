"""Selectors for investigating runs (issue 12, the support desk): finding a run from any key
someone pastes, and explaining what happens next and why it broke. They read only.

    search.py      runs_search / search_filter / search_matches: the one run search (q) and
                   why each result matched
    lookup.py      lookup_resolve: a run id, approval id, callback URL/token or delivery key
    explain.py     run_explain: the last good run, the first bad one, and what changed between;
                   run_baseline: the one "last good" run pages compare with
    noise.py       is_volatile: response headers that change on every call
    next_steps.py  run_next_steps (pinned/live/draft, retry/replay/rerun plans), wait_step_info
    plans.py       retry_reuse / run_retry_plan: what a retry reuses (`run_retry` builds on it)
"""

from workflows.investigation.explain import run_baseline, run_explain
from workflows.investigation.lookup import lookup_resolve
from workflows.investigation.next_steps import run_next_steps, wait_step_info
from workflows.investigation.plans import retry_reuse, run_replay_plan, run_retry_plan
from workflows.investigation.search import SEARCHES, runs_search, search_filter, search_matches

__all__ = [
    "SEARCHES",
    "lookup_resolve",
    "retry_reuse",
    "run_baseline",
    "run_explain",
    "run_next_steps",
    "run_replay_plan",
    "run_retry_plan",
    "runs_search",
    "search_filter",
    "search_matches",
    "wait_step_info",
]
