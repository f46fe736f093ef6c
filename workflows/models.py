"""The tables that hold the truth about flows and runs (DESIGN.md §4).

Statuses are changed only by `workflows.engine.transitions`; nothing else assigns them.
"""

import base64
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from connections.crypto import decrypt_text, encrypt_text
from workflows.states import (
    AttemptStatus,
    DeliveryOutcome,
    ErrorKind,
    FlowHistoryKind,
    NotificationChannel,
    NotificationStatus,
    RunStatus,
    StepStatus,
)
from workflows.stored_json import StoredJSONDecoder


def new_webhook_secret() -> str:
    """A fresh webhook signing secret (plain text: shown once, then only its ciphertext is
    kept)."""
    return secrets.token_urlsafe(32)


def _webhook_secret() -> str:
    """The column's default: a fresh secret, encrypted like connection secrets."""
    return encrypt_text(new_webhook_secret())


def new_notification_secret() -> str:
    """A fresh notification signing secret in the Standard Webhooks form (`whsec_` and 32
    random bytes in base64): plain text, shown once when rotated."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _notification_secret() -> str:
    return encrypt_text(new_notification_secret())


class Flow(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    live_version = models.ForeignKey(
        "FlowVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The HMAC key of webhook deliveries, encrypted with FIELD_ENCRYPTION_KEYS (MultiFernet);
    # webhook_signing_secret() opens it. Never shown except once, when rotated.
    webhook_secret = models.CharField(max_length=512, default=_webhook_secret, editable=False)
    # The HMAC key that signs the flow's outbound notifications (issue 25 H3), its own so a
    # notification is never a valid inbound delivery; encrypted like webhook_secret, shown once
    # when rotated (notification_secret_rotate).
    notification_secret = models.CharField(max_length=255, default=_notification_secret,
                                           editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        permissions = [
            ("edit_draft", "Can edit a flow's draft"),
            ("release_flow", "Can release a flow's draft"),
            ("promote_flow", "Can make a release live"),
            ("operate_run", "Can start, cancel, retry and replay runs"),
        ]

    def __str__(self) -> str:
        return self.slug

    def webhook_signing_secret(self) -> str:
        """The plain webhook secret (to verify a delivery's HMAC). Raises
        connections.errors.SecretDecryptionError when no configured key opens it."""
        return decrypt_text(self.webhook_secret)

    def notification_signing_secret(self) -> str:
        """The plain notification secret (`whsec_…`). Raises SecretDecryptionError like
        webhook_signing_secret."""
        return decrypt_text(self.notification_secret)


class FlowVersion(models.Model):
    """A flow definition: the one editable draft (number is null) or an immutable release."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(null=True, blank=True)
    definition = models.JSONField()
    content_hash = models.CharField(max_length=64)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["flow", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "number"], name="flowversion_unique_number",
                condition=Q(number__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["flow"], name="flowversion_one_draft", condition=Q(number__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flow.slug} {self.label}"

    @property
    def is_draft(self) -> bool:
        return self.number is None

    @property
    def label(self) -> str:
        return "draft" if self.is_draft else f"v{self.number}"


class FlowHistory(models.Model):
    """One entry of a flow's release history: releases, draft edits, promotions and rollbacks,
    webhook secret rotations and promotion requests with their outcome. Written by the service
    that makes the change, in the same transaction; append-only like `Event`.

    `actor_name` keeps the name as it was (the account may be renamed or deleted later); an
    empty name is the system. `from_version` / `to_version` are release numbers (None: no
    release, e.g. nothing was live before, or a draft edit)."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="history")
    kind = models.CharField(max_length=32, choices=FlowHistoryKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    at = models.DateTimeField(default=timezone.now)
    from_version = models.PositiveIntegerField(null=True, blank=True)
    to_version = models.PositiveIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "flow history"
        indexes = [models.Index(fields=["flow", "-id"], name="flowhistory_flow_newest")]

    def __str__(self) -> str:
        return f"{self.flow_id} {self.kind} {self.at:%Y-%m-%d %H:%M}"


class TriggerKind(models.TextChoices):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"
    RETRY = "retry"
    REPLAY = "replay"
    RERUN = "rerun"
    SUBFLOW = "subflow"  # started by a `flow` step of another run (Run.parent_step)


class ActorKind(models.TextChoices):
    USER = "user"
    SYSTEM = "system"
    WORKER = "worker"
    WEBHOOK = "webhook"
    SCHEDULE = "schedule"
    CALLBACK = "callback"


# A webhook delivery's `Idempotency-Key` is kept as the run's idempotency key with this prefix
# (so it never collides with a key an API caller chose); run search finds runs by it.
WEBHOOK_KEY_PREFIX = "webhook:"


class Run(models.Model):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(FlowVersion, on_delete=models.PROTECT, related_name="runs")
    is_rehearsal = models.BooleanField(default=False, help_text="Started on the draft.")
    # A rehearsal pins the draft as it was when the run started (the draft may change after).
    rehearsal_definition = models.JSONField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=32, choices=RunStatus.choices, default=RunStatus.CREATED)
    trigger_kind = models.CharField(max_length=16, choices=TriggerKind.choices)
    trigger_actor = models.CharField(max_length=150, blank=True)
    # Values from outside: read with StoredJSONDecoder, so no row makes a page fail.
    trigger_payload = models.JSONField(default=dict, blank=True, decoder=StoredJSONDecoder)
    input = models.JSONField(default=dict, blank=True, decoder=StoredJSONDecoder)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    # Set with status=failed (states.error_kind_of): rejected, timeout or error; else "".
    error_kind = models.CharField(max_length=32, choices=ErrorKind.choices, blank=True,
                                  default="")
    # NULL, not "", means "none": the unique constraint and the concurrency query rely on it.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    concurrency_key = models.CharField(max_length=300, null=True, blank=True)  # noqa: DJ001
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays"
    )
    # The same input started again on the flow's live version (services.runs.run_rerun).
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    # The webhook delivery this run was started from (by the delivery, or redelivered).
    trigger_delivery = models.ForeignKey(
        "WebhookDelivery", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A subflow: the `flow` step run that started this run (its run is the parent run).
    parent_step = models.ForeignKey(
        "StepRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="child_runs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # OpenTelemetry (ops.tracing): the run's trace and its own span, and the span of the caller
    # whose traceparent started it; blank when tracing was off. Every process that ends a span
    # of this run puts it in this trace. `trace_state`: the caller's W3C tracestate (validated,
    # at most 512 characters), sent on with the trace by http and ssh steps.
    trace_id = models.CharField(max_length=32, blank=True, default="")
    trace_span_id = models.CharField(max_length=16, blank=True, default="")
    trace_parent_id = models.CharField(max_length=16, blank=True, default="")
    trace_state = models.CharField(max_length=512, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["flow", "-id"], name="run_flow_newest"),
            models.Index(fields=["flow", "status", "-id"], name="run_flow_status"),
            models.Index(fields=["status", "-id"], name="run_status"),
            models.Index(fields=["flow", "concurrency_key", "status"], name="run_concurrency"),
            models.Index(fields=["error_kind", "-id"], name="run_error_kind"),
            models.Index(fields=["finished_at"], name="run_finished_at"),
            # Run search (`q`) matches an idempotency / webhook delivery key across flows.
            models.Index(fields=["idempotency_key"], name="run_idempotency_key"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "idempotency_key"], name="run_unique_idempotency_key",
                condition=Q(idempotency_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.flow_id}"

    @property
    def definition(self) -> dict:
        """The definition this run is pinned to: its release, or the draft as it was when a
        rehearsal started."""
        if self.rehearsal_definition is not None:
            return self.rehearsal_definition
        return self.version.definition

    @property
    def duration_ms(self) -> int | None:
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None


class StepRun(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="step_runs")
    key = models.CharField(max_length=100)
    type = models.CharField(max_length=32)
    position = models.PositiveIntegerField()
    needs = models.JSONField(default=list)
    status = models.CharField(
        max_length=32, choices=StepStatus.choices, default=StepStatus.NOT_STARTED
    )
    attempt_count = models.PositiveIntegerField(default=0)
    # Attempts made before the last redo do not count against the retry policy.
    retry_base = models.PositiveIntegerField(default=0)
    reused_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    # Engine bookkeeping.
    not_before = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    # Waits and approvals: when they give up (and, for timer waits, `not_before` is the wake-up).
    timeout_at = models.DateTimeField(null=True, blank=True)
    # Callback (wait steps): the token is HMAC(SECRET_KEY, nonce); only its hash is looked up.
    callback_nonce = models.CharField(max_length=64, blank=True)
    callback_token_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    callback_payload = models.JSONField(null=True, blank=True)
    callback_received_at = models.DateTimeField(null=True, blank=True)
    # When the current token was minted (run start, or a redo), and who posted it: the
    # sender's address and user agent, never the token or its URL.
    callback_issued_at = models.DateTimeField(null=True, blank=True)
    callback_remote_addr = models.CharField(max_length=64, blank=True)
    callback_user_agent = models.CharField(max_length=300, blank=True)
    # Remote agents (a wait's callback siblings, DESIGN.md §9): the liveness columns a heartbeat,
    # a log post or an artifact touches with one conditional UPDATE (never the run lock), the
    # heartbeat deadline the engine wakes up for, and the wait's `on_cancel` bookkeeping
    # (`on_cancel_state`: "" none, due, claimed, done — the claim is a conditional UPDATE, so
    # it runs once however many workers race).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    heartbeat_deadline = models.DateTimeField(null=True, blank=True)
    # The agent's last report, {message, progress: {done, total}, usage: {input_tokens,
    # output_tokens, cost_usd}}: one column, so a run's INSERT of its step runs stays one
    # statement on SQLite for 30 steps (its 999-parameter batches).
    agent_report = models.JSONField(null=True, blank=True)
    agent_artifacts = models.JSONField(null=True, blank=True)
    on_cancel_state = models.CharField(max_length=16, blank=True)
    on_cancel_result = models.JSONField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="steprun_unique_key"),
        ]
        indexes = [
            models.Index(fields=["status", "not_before"], name="steprun_status_due"),
            models.Index(fields=["status", "lease_until"], name="steprun_status_lease"),
            models.Index(fields=["status", "timeout_at"], name="steprun_status_timeout"),
            models.Index(fields=["status", "heartbeat_deadline"], name="steprun_status_heartbeat"),
            models.Index(fields=["on_cancel_state"], name="steprun_on_cancel"),
        ]

    def __str__(self) -> str:
        return f"{self.key} of run {self.run_id}"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None

    @property
    def is_reused(self) -> bool:
        return self.reused_from_id is not None

    @property
    def agent_message(self) -> str:
        return (self.agent_report or {}).get("message") or ""

    @property
    def agent_progress(self) -> dict | None:
        return (self.agent_report or {}).get("progress")

    @property
    def agent_usage(self) -> dict | None:
        return (self.agent_report or {}).get("usage")


class CurrentInstances(models.Manager):
    """The instances of a step's current fan-out. A redo through the step supersedes the
    earlier round's rows (engine/rewind.py): they stay, with their attempts, logs and events,
    in `StepInstance.history`, and nothing that counts, lists or settles instances sees them."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(superseded=False)


class StepInstance(models.Model):
    """One item of a `for_each` step run (engine/instances.py). Its status moves through the
    step's own transition table (queued, running, completed, failed, canceled; `not_started`
    until the `max_parallel` window reaches it), each move a conditional UPDATE with an Event,
    without the run's row lock."""

    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="instances")
    index = models.PositiveIntegerField()
    item = models.JSONField(null=True, blank=True)
    status = models.CharField(
        max_length=32, choices=StepStatus.choices, default=StepStatus.NOT_STARTED
    )
    attempt_count = models.PositiveIntegerField(default=0)
    # Set when a run retry copied this instance's outcome from the failed run's instance.
    reused = models.BooleanField(default=False)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # An instance of a fanned-out `flow` step: the child run that resolves it (a run retry's
    # reused instance keeps the child of the instance it reuses). engine/instance_pauses.py.
    child_run = models.ForeignKey("Run", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    # Set on every instance of the step when a redo goes back through it: a finished round,
    # kept as history (see CurrentInstances).
    superseded = models.BooleanField(default=False)

    history = models.Manager()
    objects = CurrentInstances()

    class Meta:
        ordering = ["step_run", "index"]
        default_manager_name = "objects"
        base_manager_name = "history"
        constraints = [
            models.UniqueConstraint(fields=["step_run", "index"], name="stepinstance_unique_index",
                                    condition=models.Q(superseded=False)),
        ]
        indexes = [
            models.Index(fields=["step_run", "status", "index"], name="stepinstance_status"),
            models.Index(fields=["status", "lease_until"], name="stepinstance_status_lease"),
            models.Index(fields=["status", "enqueued_at"], name="stepinstance_status_enqueued"),
        ]

    def __str__(self) -> str:
        return f"instance {self.index} of {self.step_run}"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None


class FanOut(models.Model):
    """The settings of a `for_each` step run's fan-out: `total`, `max_parallel`, `fail_fast`.
    Nothing updates this row while the instances run, so their batches never wait for each
    other on it (engine/instances.py): `left` is the instances still to end at the start (0
    once the step settled) and `next_index` the first index not queued at the start; whether
    the step is over is read from the instances themselves."""

    step_run = models.OneToOneField(StepRun, on_delete=models.CASCADE, primary_key=True,
                                    related_name="fan_out")
    total = models.PositiveIntegerField()
    left = models.IntegerField()
    next_index = models.PositiveIntegerField()
    max_parallel = models.PositiveIntegerField()
    fail_fast = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"fan-out of {self.step_run_id}"


class Attempt(models.Model):
    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="attempts")
    # An attempt of one instance of a for_each step (numbered per instance), else None.
    instance = models.ForeignKey(StepInstance, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="attempts")
    number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=AttemptStatus.choices, default=AttemptStatus.RUNNING
    )
    worker = models.CharField(max_length=200, blank=True)
    input = models.JSONField(null=True, blank=True, help_text="Parameters after resolution.")
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True, help_text="{type, message, traceback}")
    exit_code = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["step_run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["step_run", "number"], name="attempt_unique_number",
                                    condition=models.Q(instance__isnull=True)),
            models.UniqueConstraint(fields=["instance", "number"],
                                    name="attempt_unique_instance_number",
                                    condition=models.Q(instance__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.step_run}"


class LogChunk(models.Model):
    """Append-only output of an attempt; `seq` counts per step run so a page can tail it."""

    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="log_chunks")
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="log_chunks")
    # An instance's log lines are numbered per instance.
    instance = models.ForeignKey(StepInstance, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="log_chunks")
    seq = models.PositiveIntegerField()
    stream = models.CharField(max_length=16, default="stdout")
    text = models.TextField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step_run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["step_run", "seq"], name="logchunk_unique_seq",
                                    condition=models.Q(instance__isnull=True)),
            models.UniqueConstraint(fields=["instance", "seq"],
                                    name="logchunk_unique_instance_seq",
                                    condition=models.Q(instance__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"log {self.seq} of {self.step_run_id}"


class Event(models.Model):
    """Append-only record of every transition and repair. Nothing deletes events."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    step_run = models.ForeignKey(
        StepRun, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    instance = models.ForeignKey(
        "StepInstance", null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(max_length=40)
    from_status = models.CharField(max_length=32, blank=True)
    to_status = models.CharField(max_length=32, blank=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "id"]
        indexes = [models.Index(fields=["run", "id"], name="event_run_order")]

    def __str__(self) -> str:
        return f"{self.kind} {self.from_status}->{self.to_status}"


class ScheduleState(models.Model):
    """When each schedule trigger of a flow's live release last fired."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="schedule_states")
    trigger_index = models.PositiveIntegerField()
    cron = models.CharField(max_length=100)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    next_fire_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["flow", "trigger_index"], name="schedule_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.flow_id} schedule {self.trigger_index} ({self.cron})"


class WebhookDelivery(models.Model):
    """One delivery that reached a flow's webhook URL, whatever became of it (the delivery log,
    GET /flows/{slug}/deliveries). Written by services.webhooks.

    `delivery_id` is what the sender named it (X-GitHub-Delivery, Stripe's event id, webhook-id,
    X-Gitlab-Event-UUID, Idempotency-Key). `dedup_key` holds it only on the row that started a
    run: unique per flow, so two copies arriving at once cannot both start one (the second's
    INSERT waits for the first's commit, then fails and answers `duplicate`). `replay_digest`
    (SHA-256 of the signed timestamp and body) is set likewise, so a signed request captured
    and sent again inside its tolerance window is refused. `payload` is the body as parsed
    (the storage rule: inline, or a descriptor of `payload_resource`), with `headers` (lower
    case, credentials left out): what a redelivery starts from. A started delivery's body is
    its run's trigger payload (not written twice); a rejected delivery keeps neither body nor
    headers, only its reason; a duplicate keeps no body (its original has it)."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="deliveries")
    received_at = models.DateTimeField(default=timezone.now)
    verify = models.CharField(max_length=16, blank=True)
    event = models.CharField(max_length=200, blank=True)
    delivery_id = models.CharField(max_length=200, blank=True)
    dedup_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    replay_digest = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    outcome = models.CharField(max_length=16, choices=DeliveryOutcome.choices)
    reason = models.TextField(blank=True)
    run = models.ForeignKey("Run", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="+")
    payload = models.JSONField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    payload_resource = models.ForeignKey(
        "resources.Resource", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["flow", "-id"], name="delivery_flow_newest"),
            models.Index(fields=["flow", "outcome", "-id"], name="delivery_flow_outcome"),
            models.Index(fields=["received_at"], name="delivery_received_at"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["flow", "dedup_key"], name="delivery_unique_id",
                                    condition=Q(dedup_key__isnull=False)),
            models.UniqueConstraint(fields=["flow", "replay_digest"],
                                    name="delivery_unique_signature",
                                    condition=Q(replay_digest__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} to {self.flow_id} ({self.outcome})"


class ApiToken(models.Model):
    """A Bearer token for the HTTP API. Only the SHA-256 of the token is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, help_text="The first characters, to tell tokens apart.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class Notification(models.Model):
    """The outbox of notifications (workflows/services/notifications.py).

    A row is written in the transaction that makes the thing it tells about (a run ending, an
    approval requested), so a notification is never lost nor sent for a change that rolled
    back; the send is tried once that transaction commits and again by the periodic pass, with
    backoff, until it succeeds or `WF_NOTIFY_MAX_ATTEMPTS` tries have failed. `target` is the
    comma-separated addresses of an email or the URL of a webhook; `payload` is what is sent
    (an email's subject and body, or a webhook's JSON body).
    """

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="notifications")
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.CharField(max_length=40)
    channel = models.CharField(max_length=16, choices=NotificationChannel.choices)
    target = models.TextField()
    payload = models.JSONField(default=dict)
    status = models.CharField(
        max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_due"),
        ]

    def __str__(self) -> str:
        return f"notification {self.pk} ({self.channel} {self.event}, {self.status})"
