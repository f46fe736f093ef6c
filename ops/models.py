"""Durable counters for what is not otherwise recorded in our tables."""

from django.db import models


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
