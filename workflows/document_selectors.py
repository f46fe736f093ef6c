"""The reads behind the API's documents (STYLE.md: selectors), kept apart from
`workflows.selectors` (the admin's) so each stays under 500 lines.

The API modules (`workflows/api/`) make no query of their own: they page, filter and shape
what these return. The querysets prefetch what a document needs, so a page costs the same few
queries whatever its size (the API's query-count tests hold them to it); the single-row reads
are for documents built outside such a page."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from workflows.models import Attempt, Flow, FlowHistory, FlowVersion, Run, StepRun
from workflows.prepared_queries import PreparedQuery, concrete_attnames

# --- flows --------------------------------------------------------------------------------------


def flows_queryset() -> QuerySet[Flow]:
    """Flows with their live release and their draft (as `drafts`), in three queries a page."""
    return Flow.objects.select_related("live_version").prefetch_related(
        Prefetch("versions", queryset=FlowVersion.objects.filter(number__isnull=True),
                 to_attr="drafts")
    )


def flow_drafts(flow: Flow) -> list[FlowVersion]:
    """The flow's draft as a list (empty or one), for a flow not read by `flows_queryset`."""
    return list(FlowVersion.objects.filter(flow=flow, number__isnull=True))


FLOW_COLUMNS = concrete_attnames(Flow)
# Run starts read the flow by its (unique) slug on every call: compiled once per process.
_flow_by_slug = PreparedQuery(
    Flow, lambda slug: Flow.objects.filter(slug=slug).order_by().values_list(*FLOW_COLUMNS),
    sentinel="prepared-query-sentinel",
)


def flow_row_by_slug(slug: str) -> Flow | None:
    """The flow's row alone (no versions), through the prepared query: one query."""
    rows = _flow_by_slug.rows(slug)
    if not rows:
        return None
    return Flow.from_db(_flow_by_slug.db_alias(), FLOW_COLUMNS, rows[0])


def flow_releases(flow: Flow) -> QuerySet[FlowVersion]:
    """The flow's releases (not its draft) with their author, for keyset paging by number."""
    return FlowVersion.objects.filter(flow=flow, number__isnull=False).select_related("created_by")


def flow_history_entries(flow: Flow) -> QuerySet[FlowHistory]:
    return FlowHistory.objects.filter(flow=flow)


# --- runs ---------------------------------------------------------------------------------------


RUN_PREFETCH = (
    Prefetch("step_runs", queryset=StepRun.objects.order_by("position"), to_attr="ordered_steps"),
    # `reruns` of each run document (issue 24): the runs started from it by POST .../rerun.
    Prefetch("reruns", queryset=Run.objects.only("id", "rerun_of_id").order_by("id"),
             to_attr="rerun_list"),
)


def runs_queryset() -> QuerySet[Run]:
    """Runs with flow, version, ordered step runs and reruns: four queries a page, whatever
    its size."""
    return Run.objects.select_related("flow", "version", "parent_step").prefetch_related(
        *RUN_PREFETCH)


def runs_with_flow() -> QuerySet[Run]:
    """Runs with flow and version only (no steps): for the run's events, logs and steps."""
    return Run.objects.select_related("flow", "version")


def run_rerun_ids(run: Run) -> list[int]:
    """The ids of the runs started from `run`, oldest first: one query."""
    return list(Run.objects.filter(rerun_of_id=run.pk).order_by("id")
                .values_list("id", flat=True))


def run_steps(run: Run) -> list[StepRun]:
    """The run's steps in definition order: one query."""
    return list(StepRun.objects.filter(run=run).order_by("position"))


def run_step(run: Run, key: str) -> StepRun | None:
    return StepRun.objects.filter(run=run, key=key).first()


def step_attempts(step: StepRun) -> list[Attempt]:
    """The step run's own attempts (a for_each step's instances have theirs), by number."""
    return list(Attempt.objects.filter(step_run=step, instance=None).order_by("number"))


def step_attempt_numbers(step: StepRun) -> dict[int, int]:
    """{attempt id: attempt number} of the step, for labelling its log chunks."""
    return dict(Attempt.objects.filter(step_run=step, instance=None)
                .values_list("id", "number"))
