"""Request and response schemas of the HTTP API (CONTRACT.md "HTTP API").

Field names here are public: add fields freely, never rename or remove one (the snapshot test
against docs/openapi.json enforces it). Free-form JSON values (input, output, event data) are
`dict`/`Any` fields inside these schemas; a definition sent is described by FlowDefinition.

The schemas are as strict as the server (issue 27): statuses and kinds are enums (the model's
TextChoices, so a new member appears in the document by itself), keys and names carry their
patterns and lengths. Where a service, not pydantic, judges an input (a connection's kind, a
step key), the constraint is documented with `json_schema_extra` and the service keeps its own
answer, so the document changes and what the server accepts does not.

Longer than the ~500 lines we aim for: it is the API's whole public vocabulary in one place, read
top to bottom when the surface changes (one class per document, no logic); splitting it by
router would scatter shared documents (RunOut, ErrorOut) across modules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import ConfigDict, PlainValidator, StrictBool

from approvals.models import ApprovalStatus
from connections.models import ConnectionKind
from connections.validation import NAME_MAX_LENGTH as CONNECTION_NAME_MAX
from workflows.definitions.base import MAX_STEP_KEY_LENGTH
from workflows.definitions.schema import FlowDefinition
from workflows.models import ActorKind, TriggerKind
from workflows.states import (
    AttemptStatus,
    ErrorKind,
    EventKind,
    FlowHistoryKind,
    RunStatus,
    StepStatus,
)

STEP_KEY = {"pattern": r"^[a-z0-9_]*$", "maxLength": MAX_STEP_KEY_LENGTH}

# --- errors -------------------------------------------------------------------------------------


class ProblemOut(Schema):
    path: str
    message: str


class ErrorDetailOut(Schema):
    code: str = Field(description="A stable machine-readable code, e.g. not_found, conflict.")
    message: str
    details: list[ProblemOut] = Field(
        default_factory=list, description="Every problem found, each with the path of the value."
    )


class ErrorOut(Schema):
    """The one error document of every operation (CONTRACT.md "HTTP API")."""

    error: ErrorDetailOut


# --- flows --------------------------------------------------------------------------------------


def _object_or_text(value: Any) -> dict[str, Any] | str:
    """Any object or string passes on to the definition checks, which answer with their own
    paths and messages (422 definition_invalid), never pydantic's."""
    if isinstance(value, dict | str):
        return value
    raise ValueError("must be an object (the definition) or a string (YAML or JSON text)")


DefinitionText = Annotated[str, Field(
    min_length=1, pattern=r"\S", description="The definition as YAML or JSON text.")]

# Documented as the FlowDefinition component (the document GET /api/v1/schema/flow.json serves)
# or YAML/JSON text; validated by the definition checks.
DefinitionBody = Annotated[
    FlowDefinition | DefinitionText,
    PlainValidator(_object_or_text, json_schema_input_type=FlowDefinition | DefinitionText),
]


class DefinitionIn(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [{"definition": {
        "slug": "simple", "name": "Simple", "steps": [
            {"key": "first", "type": "python", "action": "core.echo", "args": {"n": 1}}]}}]})

    definition: DefinitionBody = Field(
        description="The flow definition: a JSON object, or YAML/JSON text. The object is "
        "described by the FlowDefinition schema (also at GET /api/v1/schema/flow.json); the "
        "server checks it and answers 422 with every problem."
    )


class DraftOut(Schema):
    hash: str
    updated_at: datetime
    definition: dict[str, Any] = Field(description="The draft's definition (a FlowDefinition).")


class FlowOut(Schema):
    slug: str
    name: str
    description: str
    live_version: int | None = Field(description="The number of the live release, if any.")
    draft: DraftOut | None
    triggers: list[dict[str, Any]] = Field(description="The triggers of the live release.")
    webhook_url: str
    webhook_enabled: bool = Field(
        description="Whether the live release declares a webhook trigger."
    )
    created_at: datetime
    updated_at: datetime
    admin_url: str


class FlowPage(Schema):
    items: list[FlowOut]
    next_cursor: str | None


class ReleaseIn(Schema):
    notes: str = Field("", max_length=10_000)


class ReleaseOut(Schema):
    version: int
    content_hash: str
    notes: str
    live: bool
    created_by: str | None
    created_at: datetime
    released_at: datetime | None
    definition: dict[str, Any] = Field(description="The release's definition (a FlowDefinition).")


class ReleasePage(Schema):
    items: list[ReleaseOut]
    next_cursor: str | None


class PromoteIn(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [{"comment": "fixes the report"}]})

    comment: str = Field("", max_length=10_000, description="Recorded in the flow's history.")


class HistoryItemOut(Schema):
    id: int
    kind: FlowHistoryKind
    actor: str | None = Field(description="the user's name; null for the system")
    at: datetime
    from_version: int | None
    to_version: int | None
    comment: str
    data: dict[str, Any] = Field(
        description="content_hash (releases, draft edits, promotions), approval (requests and "
                    "their outcome), requested_by and request_comment (approved promotions)")


class HistoryPage(Schema):
    items: list[HistoryItemOut]
    next_cursor: str | None


class DiffOut(Schema):
    model_config = ConfigDict(populate_by_name=True)

    flow: str
    from_: str = Field(alias="from", description="The version compared from (vN or draft).")
    to: str
    changes: dict[str, Any] = Field(
        description="metadata, input, concurrency, triggers and steps (added, removed, changed, "
                    "order): only what differs; and `values`, every changed value as "
                    "{path, before, after} (e.g. steps.transform.action: core.flaky → core.fail)."
    )


class WebhookSecretOut(Schema):
    webhook_secret: str = Field(description="Shown once; store it with the sender.")
    webhook_url: str


class NotificationSecretOut(Schema):
    notification_secret: str = Field(
        description="Shown once; the receiver verifies each notification with it "
                    "(Standard Webhooks, `whsec_` form).")
    signature_header: str = Field(description="The header that carries the signature.")


class WebhookSecretIn(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [{"secret": "a-secret-the-sender-chose"}]})

    secret: str = Field(description="The secret the sender gave: 16 to 256 printable ASCII "
                                    "characters without spaces; a whsec_ secret must be base64 "
                                    "after its prefix.")


class WebhookSecretSetOut(Schema):
    set: bool = Field(description="Always true: the secret was stored (it is never shown).")
    webhook_url: str


class DeliveryOut(Schema):
    id: int
    received_at: datetime
    verify: str = Field(description="The preset that checked it (signature, github, gitlab, "
                                    "stripe, slack, standard); empty when no trigger applied.")
    event: str = Field(description="The event name the sender gave, or empty.")
    delivery_id: str = Field(description="The sender's delivery id (X-GitHub-Delivery, Stripe's "
                                         "event id, webhook-id, Idempotency-Key...), or empty.")
    outcome: str = Field(description="started | duplicate | filtered | rejected | invalid")
    reason: str = Field(description="Why it was filtered, rejected or invalid.")
    run: int | None = Field(description="The run it started (a duplicate: the run its first "
                                        "copy started).")


class DeliveryPage(Schema):
    items: list[DeliveryOut]
    next_cursor: str | None


class MetaOut(Schema):
    version: str = Field(description="The server's version (the workflows-platform package).")
    api: str = Field(description="The API version, as in /api/v1.")


class MeOut(Schema):
    username: str
    email: str
    name: str
    is_superuser: bool
    roles: list[str] = Field(description="builders, operators, reviewers, support (and admin "
                                         "for a superuser)")
    permissions: list[str] = Field(description="what the roles allow, e.g. workflows.operate_run")


class MatrixStepOut(Schema):
    key: str
    type: str


class MatrixCellOut(Schema):
    step_run_id: int
    status: StepStatus
    attempts: int
    duration_ms: int | None
    reused: bool


class MatrixRunOut(Schema):
    id: int
    status: RunStatus
    version: int | None
    rehearsal: bool
    trigger_kind: TriggerKind
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    retry_of: int | None
    replay_of: int | None
    cells: dict[str, MatrixCellOut]


class MatrixOut(Schema):
    steps: list[MatrixStepOut]
    runs: list[MatrixRunOut]
    next_before: int | None = Field(description="Pass as `before` for older runs.")


# --- runs ---------------------------------------------------------------------------------------


class RunStartIn(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"input": {}, "idempotency_key": "order-1234"}]})

    input: dict[str, Any] | None = None
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    # Strict: "yes", "1" or 1 are a 422, not a rehearsal (lax parsing read "yes" as true).
    draft: StrictBool = Field(False, description="Start a rehearsal run on the draft (a JSON "
                                                 "boolean). Refused (403) for a flow under the "
                                                 "two-person rule.")


class RetryIn(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [{"from_step": "first"}, {}]})

    from_step: str | None = Field(None, max_length=100, json_schema_extra=STEP_KEY)


class CancelIn(Schema):
    reason: str = Field("", max_length=2000)


class TriggerOut(Schema):
    kind: TriggerKind
    actor: str
    payload: dict[str, Any]
    delivery: int | None = Field(None, description="The webhook delivery the run was started "
                                                   "from (by the delivery or redelivered).")


class InstanceCounts(Schema):
    total: int
    by_status: dict[str, int] = Field(description="{STATUS: N} of the instances.")


class InstanceOut(Schema):
    index: int = Field(description="The item's position in the list (item_index).")
    item: Any = None
    status: StepStatus
    attempts: int
    reused: bool = Field(description="Reused from the retried run's completed instance.")
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    output: Any = None
    error: Any = None
    child_run: int | None = Field(
        None, description="An instance of a `for_each` flow step: the child run it started "
                          "(a reused instance: the child it reuses); null otherwise.")


class InstancePage(Schema):
    items: list[InstanceOut]
    next_cursor: str | None


class StepOut(Schema):
    key: str
    type: str
    status: StepStatus
    attempts: int = Field(description="How many attempts were made.")
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    output: Any = None
    error: Any = None
    reused: bool = Field(description="The output was reused from an earlier run (retry).")
    error_kind: str | None = Field(
        None, description="For a failed step: rejected, timeout, heartbeat_timeout, "
                          "budget_exceeded or error.")
    heartbeat_at: datetime | None = Field(
        None, description="A wait's remote agent: its last heartbeat, log post or artifact.")
    message: str | None = Field(None, description="The agent's last heartbeat message.")
    progress: dict[str, float] | None = Field(None, description="{done, total}")
    usage: dict[str, float] | None = Field(
        None, description="The agent's running total: {input_tokens, output_tokens, cost_usd}.")
    artifacts: dict[str, Any] | None = Field(
        None, description="What the agent uploaded: {name: resource descriptor}.")
    on_cancel: dict[str, Any] | None = Field(
        None, description="What the wait's on_cancel command did: {exit_code, output, ...}.")
    child_run: int | list[int | None] | None = Field(
        None, description="A `flow` step: the run it started (its subflow); with for_each, "
                          "once the step has started, the list of its instances' child runs "
                          "in item order (null for an instance whose child has not started "
                          "yet); null otherwise.")

    instances: InstanceCounts | None = Field(
        None, description="A for_each step's instances: how many, and how many per status.")


class ParentOut(Schema):
    run: int
    step: str
    instance: int | None = Field(
        None, description="The index of the instance this run resolves, when the `flow` step "
                          "has for_each (its item is that instance's); null otherwise.")


class RunOut(Schema):
    id: int
    flow: str
    version: int | None = Field(description="The release number; null for a rehearsal run.")
    rehearsal: bool
    status: RunStatus
    trigger: TriggerOut
    input: dict[str, Any]
    output: Any = None
    error: Any = None
    error_kind: ErrorKind | None = Field(
        None, description="Why a failed run failed: rejected, timeout or error; null otherwise.")
    idempotency_key: str | None
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    retry_of: int | None
    replay_of: int | None
    rerun_of: int | None = Field(
        None, description="The run whose input this run reruns (on the live version, or the "
        "release the rerun named).")
    reruns: list[int] = Field(
        default_factory=list, description="The runs started from this one with "
        "POST /runs/{id}/rerun, oldest first.")
    trace_id: str | None = Field(
        None, description="The run's OpenTelemetry trace id (32 hex digits); null when the run "
                          "was started with tracing off.")
    parent: ParentOut | None = Field(
        None, description="A subflow: the run and `flow` step that started it; null otherwise.")
    steps: list[StepOut]
    usage: dict[str, float] | None = Field(
        None, description="Usage reported by the run's remote agents, summed over its steps.")
    admin_url: str


class SearchMatchOut(Schema):
    field: str = Field(description="What matched: run id, approval, input, error, delivery "
                       "key, idempotency key, approver, callback or flow.")
    snippet: str = Field(description="The matched text with some context.")


class RunFoundOut(RunOut):
    match: SearchMatchOut | None = Field(
        None, description="Why this run is in the results of `q` (GET /runs?q=); null "
        "otherwise.")


class RunPage(Schema):
    items: list[RunFoundOut]
    next_cursor: str | None


class RerunIn(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [{}, {"version": 1}]})

    version: int | None = Field(
        None, ge=1, description="Run the input on this release instead of the live one (e.g. "
        "the version of the last good run while the live one fails).")


class EventOut(Schema):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    at: datetime
    kind: EventKind
    step: str | None
    from_: str = Field(alias="from", description="The status before (empty: none).")
    to: str = Field(description="The status after (empty: no status change).")
    actor: str
    actor_kind: ActorKind
    reason: str
    data: dict[str, Any]


class EventPage(Schema):
    items: list[EventOut]
    next_cursor: str | None


class AttemptOut(Schema):
    number: int
    status: AttemptStatus
    worker: str
    input: Any = None
    output: Any = None
    error: Any = None
    exit_code: int | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    log_ref: str | None = Field(None, description="res:// uri of this attempt's whole log "
                                "(null while it runs or when it logged nothing).")
    log_size: int | None = Field(None, description="Its size in bytes.")


class StepDetailOut(Schema):
    run: int
    key: str
    type: str
    status: StepStatus
    needs: list[str]
    attempt_count: int
    attempts: list[AttemptOut]
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    output: Any = None
    error: Any = None
    reused: bool
    child_run: int | list[int | None] | None = Field(
        None, description="A `flow` step: its child run; with for_each, the list of its "
                          "instances' child runs in item order (see StepOut.child_run).")
    log_ref: str | None = Field(None, description="res:// uri of the latest attempt's whole "
                                "log (the database keeps a window of WF_LOG_INLINE_BYTES).")
    log_size: int | None = Field(None, description="Its size in bytes.")
    instances: InstanceCounts | None = Field(
        None, description="A for_each step's instances: how many, and how many per status.")


class LogChunkOut(Schema):
    seq: int
    at: datetime
    stream: str
    text: str
    attempt: int = Field(description="The attempt number that wrote it.")


class LogPage(Schema):
    items: list[LogChunkOut]
    next_cursor: str | None = Field(
        description="The seq to pass as `after` for more chunks available now; null when none."
    )
    last_seq: int = Field(description="The seq of the last chunk returned (or `after`).")
    step_status: StepStatus = Field(description="When terminal, no more chunks will come.")
    log_ref: str | None = Field(None, description="res:// uri of the latest attempt's whole "
                                "log; the chunks are a window of it (head and newest tail, an "
                                "`omitted` chunk in the gap).")
    log_size: int | None = Field(None, description="Its size in bytes.")


class CompareOut(Schema):
    run: int
    other: int
    version: dict[str, Any]
    input: dict[str, Any]
    steps: list[dict[str, Any]]


class ExplainRunOut(Schema):
    id: int
    version: int | None = Field(description="The release number; null for a rehearsal run.")
    rehearsal: bool
    status: RunStatus
    error_kind: ErrorKind | None
    step_status: StepStatus | None = Field(description="The failing step's status in this run.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ValueChangeOut(Schema):
    path: str
    before: Any = None
    after: Any = None


class VersionChangeOut(Schema):
    from_: int | None = Field(alias="from")
    to: int | None
    from_label: str
    to_label: str
    definition_value_changes: list[ValueChangeOut] = Field(
        description="Every changed value, the failing step's paths first.")


class InputChangeOut(Schema):
    key: str
    before: Any = None
    after: Any = None


class ConnectionChangeOut(Schema):
    name: str
    action: str = Field(description="The audit action: updated, secret_set, secret_rotated, ...")
    change: Literal["edited", "rotated"]
    fields: list[str] = Field(description="Names of the changed fields, never their values.")
    at: datetime
    actor: str | None


class ExplainChangesOut(Schema):
    version: VersionChangeOut | None
    input: list[InputChangeOut]
    connections: list[ConnectionChangeOut]


class ExplainOut(Schema):
    model_config = ConfigDict(populate_by_name=True)

    step: str = Field(description="The step that failed in the run explained.")
    last_good_run: ExplainRunOut | None = Field(
        description="The newest earlier run where the step ran and completed.")
    first_bad_run: ExplainRunOut | None = Field(
        description="The first run after the last good one where the step failed.")
    failing_since_count: int = Field(
        description="How many runs, from the first bad one on, the step failed in.")
    changes: ExplainChangesOut = Field(
        description="Between the last good and the first bad run; all empty: nothing we "
                    "control changed (look at the outside world).")
    first_on_version: bool = Field(
        description="The first bad run was the first run on its release.")
    summary: str


# --- approvals ----------------------------------------------------------------------------------


class DecisionIn(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [{"comment": "looks good"}]})

    comment: str = Field("", max_length=10_000)
    to_step: str | None = Field(None, max_length=100, json_schema_extra=STEP_KEY,
                                description="redo only: the step to redo.")


class ApprovalOut(Schema):
    id: int
    kind: Literal["step", "promotion"] = Field(
        description="step: a run's approval step; promotion: a promotion request "
                    "(run and step are null, version is the release to make live)")
    run: int | None
    flow: str
    step: str | None
    version: int | None = Field(description="promotion: the release to make live")
    requested_by: str | None = Field(description="promotion: who asked (never its approver)")
    status: ApprovalStatus
    instructions: str
    data: Any = None
    assignees: dict[str, Any]
    redo_to: str
    redo_step: str
    decided_by: str | None
    comment: str
    created_at: datetime
    timeout_at: datetime | None
    decided_at: datetime | None
    run_admin_url: str | None
    admin_url: str


class ApprovalPage(Schema):
    items: list[ApprovalOut]
    next_cursor: str | None


class PromotionRequestOut(Schema):
    """202 from promote when the flow's promotion requires approval: nothing is live yet."""

    request: ApprovalOut


# --- callbacks and webhooks ---------------------------------------------------------------------


class CallbackAcceptedOut(Schema):
    status: Literal["accepted"]
    step: str
    run: int


class AgentStatusOut(Schema):
    status: Literal["waiting"]


class AgentLogOut(Schema):
    status: Literal["waiting"]
    seq: int


class AgentArtifactOut(Schema):
    uri: str
    size: int
    sha256: str
    content_type: str


class HookRunOut(Schema):
    id: int
    status: RunStatus
    admin_url: str
    delivery: int = Field(description="The delivery's id in the flow's delivery log.")
    created: bool = Field(description="Always true: a repeated delivery answers 200 duplicate.")


class HookOutcomeOut(Schema):
    delivery: int = Field(description="The delivery's id in the flow's delivery log.")
    outcome: str = Field(description="duplicate | filtered")
    run: int | None = Field(None, description="duplicate: the run the first copy started.")
    reason: str | None = Field(None, description="filtered: why no run started.")
    challenge: Any = Field(None, description="Slack's url_verification: its challenge.")


# --- resources ----------------------------------------------------------------------------------


class ResourceOut(Schema):
    id: str
    uri: str
    name: str
    size: int
    sha256: str
    content_type: str
    created_at: datetime
    url: str = Field(description="A signed download URL; it expires at url_expires_at.")
    url_expires_at: datetime


# --- connections --------------------------------------------------------------------------------


class ConnectionOut(Schema):
    name: str
    kind: ConnectionKind
    description: str
    config: dict[str, Any]
    has_secret: bool
    created_at: datetime | None
    updated_at: datetime | None


class ConnectionPage(Schema):
    items: list[ConnectionOut]
    next_cursor: str | None


class ConnectionIn(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "reports-api", "kind": "http",
        "config": {"base_url": "https://reports.example.com", "auth": "bearer"},
        "secret": {"token": "..."}}]})

    name: str = Field(max_length=100, json_schema_extra={
        "minLength": 1, "maxLength": CONNECTION_NAME_MAX, "pattern": r"^[a-z0-9][a-z0-9-_]*$"})
    kind: str = Field(max_length=16, json_schema_extra={"enum": ConnectionKind.values})
    description: str = Field("", max_length=10_000)
    config: dict[str, Any] = Field(default_factory=dict)
    secret: dict[str, Any] | None = Field(None, description="Write-only.")


class ConnectionUpdateIn(Schema):
    """Only the fields given change; `secret: null` clears the secret."""

    kind: str | None = Field(None, max_length=16,
                             json_schema_extra={"enum": [*ConnectionKind.values, None]})
    description: str | None = Field(None, max_length=10_000)
    config: dict[str, Any] | None = None
    secret: dict[str, Any] | None = Field(None, description="Write-only; null clears it.")


class InstanceDetailOut(InstanceOut):
    attempt_list: list[AttemptOut] = Field(description="The instance's attempts, oldest first.")
    logs: list[LogChunkOut] = Field(description="The instance's log lines (first 200 chunks).")
