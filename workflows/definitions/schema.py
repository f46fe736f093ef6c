"""The flow definition format as pydantic models, published as a JSON Schema.

These models document the shape (for editors' autocompletion, `GET /api/v1/schema/flow.json`,
docs/flow.schema.json and the OpenAPI `definition` field); they do not validate definitions.
`validate_definition` (check/) stays the one judge, with its own messages and paths, and the
rules a schema cannot say (references, needs and cycles, cron syntax, registered actions,
connections that exist). Keep the two in step: a field a step type accepts belongs here too.

`notify` is checked by check/notify.py, `promotion` by check/promotion.py and `retention_days`
by check/metadata.py. Editors read YAML 1.2, where `on:` is a string key; PyYAML (YAML 1.1) reads
a bare `on` as true, which the notify check reads back as `on` (quoting it, `"on":`, works
everywhere).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.definitions.base import (
    MAX_ATTEMPTS,
    MAX_NAME_LENGTH,
    MAX_SLUG_LENGTH,
    MAX_STEP_KEY_LENGTH,
)

StepKey = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9_]+$",
        max_length=MAX_STEP_KEY_LENGTH,
        description="A step's key: lowercase letters, digits and _, unique in the flow.",
    ),
]
Seconds = Annotated[float, Field(gt=0)]
Names = Annotated[list[Annotated[str, Field(min_length=1)]], Field(description="Names.")]
Reference = Annotated[
    str,
    Field(
        pattern=r"^\s*\{\{.*\}\}\s*$",
        description="A single reference such as '{{ steps.check.output.ok }}'.",
    ),
]


def _names_only(field: str):
    """json_schema_extra: a mapping field whose keys must match its patternProperties (pydantic
    describes the key pattern but leaves other keys open)."""

    def extra(schema: dict[str, Any]) -> None:
        for variant in schema["properties"][field].get("anyOf", []):
            if "patternProperties" in variant:
                variant["additionalProperties"] = False

    return extra


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputDeclaration(_Part):
    """A declared input: run input is checked against it (unknown or missing required is 422)."""

    type: Literal["string", "integer", "number", "boolean", "object", "array"]
    required: bool = Field(False, description="A required input takes no default.")
    default: Any = Field(None, description="Used when a run does not give this input.")
    description: str | None = None
    enum: list[Any] | None = Field(
        None, min_length=1,
        description="The allowed values (string, integer and number inputs); the admin's run"
        " form offers them as a choice.")


class Concurrency(_Part):
    """How many runs with the same key may be active at once, and what happens beyond."""

    key: str | None = Field(
        None,
        description="Runs sharing this key share the limit; may refer to inputs, e.g. "
        "'{{ input.repo }}'. None: one key for the whole flow.",
    )
    limit: int = Field(1, ge=1)
    policy: Literal["allow", "queue", "skip", "cancel_running"] = Field(
        "queue",
        description="allow: start anyway; queue: wait for a slot; skip: do not start; "
        "cancel_running: cancel the active runs and start.",
    )


class ManualTrigger(_Part):
    """Manual runs are always allowed; declaring them is optional."""

    type: Literal["manual"]


class ScheduleTrigger(_Part):
    type: Literal["schedule"]
    cron: str = Field(description="A cron expression such as '0 2 * * *' (or @daily, ...).")
    timezone: str = Field("UTC", description="An IANA time zone such as Europe/Paris.")
    input: dict[str, Any] = Field(
        default_factory=dict, description="The run's input; no references."
    )


class WebhookTrigger(_Part):
    """Runs on a verified POST to /api/v1/hooks/{slug}; a flow has at most one."""

    type: Literal["webhook"]
    verify: Literal["signature", "github", "gitlab", "stripe", "slack", "standard"] = Field(
        "signature", description="How deliveries are authenticated (docs/webhooks.md).")
    events: list[str] | None = Field(
        None, min_length=1, description="Only these event names start a run.")
    when: str | None = Field(
        None, description="A CEL condition over body, headers (lower-case) and event.")
    input: dict[str, Any] | None = Field(
        None, description="The run's input, resolved from {{ webhook.body… }}, "
                          "{{ webhook.headers.NAME }}, {{ webhook.event }}, "
                          "{{ webhook.delivery_id }}.")


Trigger = Annotated[ManualTrigger | ScheduleTrigger | WebhookTrigger, Field(discriminator="type")]


class Retry(_Part):
    """Automatic retries: each try is an attempt of the same step run."""

    max_attempts: int = Field(1, ge=1, le=MAX_ATTEMPTS)
    backoff_seconds: float = Field(0, ge=0)
    backoff_factor: float = Field(2, ge=1)


class Until(_Part):
    """Repeat the step (each repetition an attempt) until `condition` holds; after
    `max_times` attempts it fails with condition_not_met and the last output."""

    condition: str = Field(min_length=1, examples=['output.status == "healthy"'],
                           description="A CEL expression over `output` (and `input`).")
    every_seconds: Annotated[float, Field(ge=0)] = Field(
        10, description="The wait between two repetitions; a long one waits in the database.")
    max_times: Annotated[int, Field(ge=1, le=10_000)] = 10


class _Step(_Part):
    """What every step may carry besides its type's parameters."""

    key: StepKey
    name: str | None = None
    description: str | None = None
    needs: StepKey | list[StepKey] | None = Field(
        None,
        description="The steps this one runs after; default: the previous step; [] for none.",
    )
    retry: Retry | None = None
    timeout_seconds: Seconds | None = None
    when: str | None = Field(
        None,
        description="A CEL expression over `input`, `steps` ({output, status} of each ended "
                    "step) and `item`; the step is skipped when it is false. A single "
                    "`{{ reference }}` instead: skipped when it resolves to false, null, 0 or "
                    "empty. A CEL expression that cannot be evaluated fails the step "
                    "(condition_error).",
        examples=['steps.check.output.count > 10 && size(input.repos) > 1',
                  "{{ steps.check.output.ok }}"],
    )
    until: str | Until | None = Field(
        None,
        description="Polling: run the step again until this CEL expression over its `output` "
                    "holds (a string: the condition, every 10 s, at most 10 times).",
    )
    continue_on_error: bool | None = Field(
        None,
        description="The step may fail without failing the run: the steps after it still run "
                    "(they can test `steps.KEY.status`), and the run completes.",
    )


class _FanOutStep(_Step):
    """A step that may run once per item of a list (python, http, ssh and flow steps)."""

    for_each: Reference | None = Field(
        None,
        description="A reference to a list: the step runs one instance per item, with "
        "{{ item }} and {{ item_index }} in its parameters. Its output is the list of the "
        "instances' outputs in item order. More than WF_FOR_EACH_MAX_ITEMS (10,000) items "
        "fails the step with too_many_items; a value that is not a list with "
        "for_each_not_a_list.",
        examples=["{{ input.repos }}"],
    )
    max_parallel: int | None = Field(
        None, ge=1, le=1000,
        description="Instances running at once (with for_each); default WF_FOR_EACH_PARALLEL "
        "(10).")
    fail_fast: bool | None = Field(
        None,
        description="With for_each: the step fails as soon as one instance has failed after "
        "its retries, canceling the others (default: once every instance has ended).")


class PythonStep(_FanOutStep):
    """Runs a registered action with `args`; its return value is the output."""

    type: Literal["python"]
    action: str = Field(
        min_length=1,
        description="A registered action.",
        examples=["core.echo", "core.sleep", "core.fail"],
    )
    args: dict[str, Any] | None = None


class HttpRequest(_Part):
    method: str = Field(
        "GET", examples=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    )
    url: str = Field(
        min_length=1, description="Absolute, or relative to the connection's base_url."
    )
    headers: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    json_body: Any = Field(None, alias="json", description="Sent as a JSON body.")
    body: Any = Field(None, description="Sent as is (text) or as JSON.")


class HttpStep(_FanOutStep):
    """One HTTP request. Output: {status, headers, body}; a status of 400 and above fails
    the attempt unless `fail_on_status: false` or the status is in `accept_statuses`."""

    type: Literal["http"]
    request: HttpRequest
    connection: str | None = Field(
        None, description="An http or generic connection: base URL, headers, auth."
    )
    fail_on_status: bool | None = None
    accept_statuses: list[int] | None = None


class SftpUpload(_Part):
    from_: str = Field(alias="from", min_length=1, description="A res:// ref or text.")
    to: str = Field(min_length=1, description="The remote path.")
    mode: str | int | None = Field(None, description='An octal mode such as "0644".')


class SftpDownload(_Part):
    path: str = Field(min_length=1, description="The remote file's path.")
    name: str | None = Field(None, description="The key in `files`; default the file name.")
    optional: bool | None = Field(None, description="A missing file is not a failure.")


class SshStep(_FanOutStep):
    """Runs `command` on the connection's host. Output: {exit_code, stdout_tail}."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_names_only("env"))

    type: Literal["ssh"]
    connection: str = Field(min_length=1, description="An ssh connection.")
    command: str = Field(min_length=1)
    env: (
        dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Any] | None
    ) = Field(None, description="Exported to the command, shell-quoted.")
    connect_timeout_seconds: Seconds | None = None
    keepalive_seconds: Seconds | None = Field(
        None, description="Transport keepalive; default the connection's (30)."
    )
    pty: bool | None = Field(
        None, description="Default false: the command runs like `ssh host 'cmd'`, without a pty."
    )
    upload: list[SftpUpload] | None = Field(None, description="Files copied before the command.")
    download: list[SftpDownload] | None = Field(
        None, description="Remote files kept as res:// resources after the command "
                          "(output `files: {name: ref}`)."
    )


class AgentBudget(_Part):
    cost_usd: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Reported usage.cost_usd beyond this fails the wait "
                          "(budget_exceeded).")
    tokens: Annotated[int, Field(gt=0)] | None = Field(
        None, description="Reported input_tokens + output_tokens beyond this fails the wait.")


class OnCancel(_Part):
    connection: Annotated[str, Field(min_length=1)] = Field(
        description="The ssh connection the command runs on.")
    command: Annotated[str, Field(min_length=1)] = Field(
        description="Run once when the wait ends without its callback (canceled, timed out, "
                    "missed heartbeat, over budget); exit code and output kept on the step.")


class WaitStep(_Step):
    """Waits for a POST to its callback URL (the body is the output), or `duration_seconds`.
    A remote agent handed the URL may heartbeat, post its log and upload artifacts beside it."""

    type: Literal["wait"]
    duration_seconds: Annotated[float, Field(ge=0)] | None = None
    on_timeout: Literal["fail", "continue"] | None = None
    heartbeat_timeout_seconds: Annotated[float, Field(gt=0)] | None = Field(
        None, description="No heartbeat, log or artifact for this long fails the wait "
                          "(heartbeat_timeout).")
    budget: AgentBudget | None = None
    on_cancel: OnCancel | None = None


class Assignees(_Part):
    groups: Names | None = None
    users: Names | None = None


class ApprovalStep(_Step):
    """Waits for a decision by one of `assignees`. Output: {decision, actor, comment,
    decided_at}."""

    type: Literal["approval"]
    assignees: Assignees | None = None
    instructions: str | None = None
    redo_to: StepKey | None = Field(None, description="Default: the previous step.")
    on_timeout: Literal["fail", "reject", "approve"] | None = None
    show: list[Reference] | None = Field(
        None, min_length=1,
        description="What the reviewer sees, each value labelled by its reference "
                    "(resolved when the approval is requested). Default: the outputs of the "
                    "steps this one needs.",
    )


class FlowStep(_FanOutStep):
    """A subflow: runs another flow's live release (pinned when the step starts) with `input`
    and waits for it. Output: the child run's output; the child's failure fails the step.
    With for_each: one child run per item (`input` rendered with {{ item }} and
    {{ item_index }}), at most max_parallel running at once; the output is the list of the
    children's outputs in item order."""

    type: Literal["flow"]
    timeout_seconds: None = Field(
        None, description="Not accepted: bound the child flow's steps instead.")
    flow: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=MAX_SLUG_LENGTH,
                      description="The slug of the flow to run; it must have a live release "
                                  "and must not call this flow back.")
    input: dict[str, Any] | None = Field(
        None, description="The child run's input; references allowed.",
        examples=[{"builds": "{{ steps.build.output }}"}])


Step = Annotated[
    PythonStep | HttpStep | SshStep | WaitStep | ApprovalStep | FlowStep,
    Field(discriminator="type"),
]


class NotifyRule(_Part):
    """Who hears about what: email addresses and/or a webhook (a Slack-compatible JSON POST
    signed with X-Signature like inbound webhooks). At least one target."""

    on: list[Literal["failed", "approval_requested", "completed", "promotion_requested"]] = Field(
        min_length=1, examples=[["failed", "approval_requested"]])
    email: list[Annotated[str, Field(json_schema_extra={"format": "email"})]] | None = None
    webhook: str | None = Field(None, pattern=r"^https?://", description="An http(s) URL.")


class Promotion(_Part):
    """The two-person rule: with `requires_approval`, promoting a release creates a request that
    someone other than the requester must approve (one of `approvers`; the reviewers group when
    it names nobody) before the release goes live."""

    requires_approval: bool = False
    approvers: Assignees | None = None
    timeout_seconds: Annotated[int, Field(ge=60, le=365 * 24 * 3600)] | None = Field(
        None, description="A request nobody decides expires after this. Default: 259200 (3 days)."
    )


class FlowDefinition(_Part):
    """A flow definition (YAML or JSON): CONTRACT.md "Flow definition"."""

    model_config = ConfigDict(
        extra="forbid", title="Flow definition", json_schema_extra=_names_only("input")
    )

    slug: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        max_length=MAX_SLUG_LENGTH,
        description="Lowercase letters, digits and hyphens; unique.",
    )
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    description: str | None = None
    input: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], InputDeclaration
    ] | None = Field(None, description="Declared inputs.")
    concurrency: Concurrency | None = None
    triggers: list[Trigger] | None = None
    steps: list[Step] = Field(min_length=1)
    notify: list[NotifyRule] | None = None
    promotion: Promotion | None = None
    retention_days: Annotated[int, Field(ge=0, le=36_500)] | None = Field(
        None, description="Days an ended run is kept (0: forever). Default: WF_RETENTION_DAYS."
    )


def flow_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a flow definition, as published."""
    schema = FlowDefinition.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
