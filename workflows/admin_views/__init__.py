"""The admin's own pages (DESIGN.md §7), mounted by `workflows.admin` and `approvals.admin`.

One module per page, so a page's code is in the file named for it:

| module | holds |
| --- | --- |
| `home.py` | the workflows home (the admin site's index, `workflows/admin_site.py`) and the lookup page the lookup box on every page submits to |
| `run_list.py` | the runs list's columns (failed step, error line, input summary, finished) and its Today / 24 h / 7 days filter |
| `flow_page.py` | the flow page (Flow change view), its run matrix fragment, the flow actions (save draft, release, promote, start a run) and the add-flow page |
| `diff_page.py` | the version diff page (every changed value between two versions) and the promote confirmation (changes, runs in flight that stay pinned, comment) |
| `run_page.py` | the run page (Run change view), its live fragment, the comparison fragment and the run actions (cancel, retry, replay) |
| `run_next.py` | a failed run's "what happens next" box, the run actions' confirmations, and the one place the value diff is linked from (`version_diff_url`) |
| `timeline.py` | the run page's timeline, compact by default and full with `?timeline=full` |
| `step_panel.py` | the step panel and its polled live / earlier-logs fragments |
| `edge.py` | what every page shares at the edge: `call_service` (the one mapping of refusals), the 403 page, `safe_next`/`page_url`, the admin context, roles, polling responses, loading a flow or run the user may view |

The small renderers (status labels, durations, JSON as HTML) are template filters in
`workflows/templatetags/wf_render.py`. The approvals inbox and detail pages, the decision
endpoints and the approval cards live in the approvals app (`approvals/admin_views.py`, issue 18); every query goes through `workflows.selectors` or
`approvals.selectors`; every action calls the same service as the API.
"""
