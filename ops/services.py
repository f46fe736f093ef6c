"""The one write of the ops app: counting a refused inbound delivery."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ops.models import InboundRefusal


def refusal_record(*, endpoint: str, code: str) -> None:
    """Add one to the refusals of `endpoint` ("webhook" or "callback") with error `code`.

    An UPDATE … SET count = count + 1, so concurrent processes never lose an increment; the
    first refusal of a kind creates the row (a lost race to create it retries the update).
    Runs in its own transaction (savepoint when nested)."""
    now = timezone.now()
    rows = InboundRefusal.objects.filter(endpoint=endpoint, code=code)
    if rows.update(count=F("count") + 1, last_at=now):
        return
    try:
        with transaction.atomic():
            InboundRefusal.objects.create(endpoint=endpoint, code=code, count=1, last_at=now)
    except IntegrityError:
        rows.update(count=F("count") + 1, last_at=now)
