"""Durable counters for what is not otherwise recorded in our tables."""

from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone


class InboundRefusal(models.Model):
    """How many webhook deliveries or callback POSTs were refused, by endpoint and error code.

    Refused requests start nothing and leave no Event (there may be no run to hang one on), so
    this counter is the only record; one row per (endpoint, code), incremented in place, so
    every web process adds to the same number and /metrics reads it from any of them."""

    endpoint = models.CharField(max_length=16)
    code = models.CharField(max_length=40)
    count = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "code"], name="inboundrefusal_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.code}: {self.count}"


class TraceDrop(models.Model):
    """How many trace spans were dropped, by reason (`queue_full`: the export queue was full;
    `export_failed`: the collector was down, slow or refused them). Spans are dropped in the
    worker processes that export them (ops.tracing); one row per reason, incremented in place,
    so /metrics reads one figure from any process."""

    reason = models.CharField(max_length=32, unique=True)
    count = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.reason}: {self.count}"

    @classmethod
    def add(cls, counts: dict[str, int]) -> None:
        """Add `counts` ({reason: n}): UPDATE … SET count = count + n, creating a reason's row
        the first time (a lost race to create it retries the update)."""
        now = timezone.now()
        for reason, count in counts.items():
            rows = cls.objects.filter(reason=reason)
            if rows.update(count=F("count") + count, last_at=now):
                continue
            try:
                with transaction.atomic():
                    cls.objects.create(reason=reason, count=count, last_at=now)
            except IntegrityError:
                rows.update(count=F("count") + count, last_at=now)
