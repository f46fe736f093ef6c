from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    REDONE = "redone"  # sent back; a new approval is requested once the redo reaches this step
    EXPIRED = "expired"
    CANCELED = "canceled"


class ApprovalKind(models.TextChoices):
    STEP = "step"  # a run reached an approval step: run, step_run and attempt_number are set
    PROMOTION = "promotion"  # a promotion request (two-person rule): flow, version, requested_by


class Approval(models.Model):
    """A request for a human decision: made when a run reaches an approval step (kind `step`),
    or when someone promotes a release of a flow whose promotion requires approval (kind
    `promotion`; no run, step run or attempt)."""

    kind = models.CharField(max_length=16, choices=ApprovalKind.choices,
                            default=ApprovalKind.STEP)
    run = models.ForeignKey("workflows.Run", on_delete=models.CASCADE, related_name="approvals",
                            null=True, blank=True)
    step_run = models.ForeignKey(
        "workflows.StepRun", on_delete=models.CASCADE, related_name="approvals",
        null=True, blank=True,
    )
    attempt_number = models.PositiveIntegerField(null=True, blank=True)
    # The flow (both kinds; set for step approvals made since promotion requests exist) and, for
    # a promotion request, the release to make live and who asked.
    flow = models.ForeignKey("workflows.Flow", on_delete=models.CASCADE, null=True, blank=True,
                             related_name="+")
    version = models.ForeignKey("workflows.FlowVersion", on_delete=models.CASCADE, null=True,
                                blank=True, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    instructions = models.TextField(blank=True)
    # What the reviewer is asked to approve: the output of the step(s) before it.
    data = models.JSONField(null=True, blank=True)
    assignee_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    assignee_groups = models.ManyToManyField(Group, blank=True, related_name="+")
    # The names as the definition gave them (a name with no account yet is still shown).
    assignees = models.JSONField(default=dict, blank=True)
    # The definition named nobody: the reviewers group decides.
    for_reviewers = models.BooleanField(default=False)
    redo_to = models.CharField(max_length=100, blank=True)
    decision_actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    comment = models.TextField(blank=True)
    redo_step = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    timeout_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-id"], name="approval_status")]

    def __str__(self) -> str:
        return f"approval {self.pk} ({self.status})"


class DecisionLink(models.Model):
    """An approve/reject link mailed to one assignee of one approval (approvals/emails.py,
    approvals/decision_links.py). The token is HMAC-SHA256(SECRET_KEY, nonce); only the nonce
    and the token's SHA-256 are stored, and a link is looked up by that hash. Used once."""

    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    nonce = models.CharField(max_length=64)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    decision = models.CharField(max_length=16, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["approval", "user"],
                                               name="decision_link_one_per_assignee")]

    def __str__(self) -> str:
        return f"decision link {self.pk} (approval {self.approval_id}, user {self.user_id})"
