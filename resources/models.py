import uuid

from django.db import models


class ResourceKind(models.TextChoices):
    ARTIFACT = "artifact", "artifact"  # made by a step on purpose (ctx.resource, downloads)
    VALUE = "value", "value"  # a value too big or too odd to live inline (resources.payloads)
    LOG = "log", "log"  # the whole log of one attempt (resources.logs)


class Resource(models.Model):
    """A stored artifact referenced as res://<id>; bytes live in Django storage, not the row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    file = models.FileField(upload_to="resources/%Y/%m/%d/")
    name = models.CharField(max_length=255, blank=True)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=200, default="application/octet-stream")
    run = models.ForeignKey(
        "workflows.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="resources"
    )
    step_run = models.ForeignKey(
        "workflows.StepRun", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="resources",
    )
    attempt = models.ForeignKey(
        "workflows.Attempt", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="resources",
    )
    kind = models.CharField(max_length=16, choices=ResourceKind.choices,
                            default=ResourceKind.ARTIFACT)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["step_run", "kind"], name="resource_step_kind"),
                   models.Index(fields=["created_at"], name="resource_created")]

    def __str__(self) -> str:
        return self.uri

    @property
    def uri(self) -> str:
        return f"res://{self.id}"
