"""Commands on flows and their versions: create, edit the draft, release, promote."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from workflows.definitions import (
    content_hash,
    parse_definition,
    validate_definition,
)
from workflows.errors import DefinitionInvalid, NotFound
from workflows.models import Flow, FlowVersion
from workflows.permissions import (
    EDIT_DRAFT,
    PROMOTE_FLOW,
    RELEASE_FLOW,
    require_permission,
)
from workflows.services.schedules import schedules_sync


def _normalized(definition: dict | str | bytes) -> dict[str, Any]:
    return validate_definition(parse_definition(definition))


def flow_create(*, definition: dict | str | bytes, actor=None) -> Flow:
    """Create a flow and its draft from a definition. Raises DefinitionInvalid (nothing written)."""
    require_permission(actor, EDIT_DRAFT)
    normalized = _normalized(definition)
    try:
        with transaction.atomic():
            flow = Flow.objects.create(
                slug=normalized["slug"], name=normalized["name"],
                description=normalized.get("description", ""), created_by=actor,
            )
            FlowVersion.objects.create(
                flow=flow, number=None, definition=normalized,
                content_hash=content_hash(normalized), created_by=actor,
            )
    except IntegrityError as exc:
        raise DefinitionInvalid(
            [{"path": "slug", "message": f"a flow with slug {normalized['slug']!r} exists"}]
        ) from exc
    schedules_sync(flow=flow)
    return flow


def flow_draft(*, flow: Flow) -> FlowVersion:
    return FlowVersion.objects.get(flow=flow, number__isnull=True)


def flow_update_draft(*, flow: Flow, definition: dict | str | bytes, actor=None) -> FlowVersion:
    """Replace the draft. The slug cannot change. Raises DefinitionInvalid (nothing written)."""
    require_permission(actor, EDIT_DRAFT)
    normalized = _normalized(definition)
    if normalized["slug"] != flow.slug:
        raise DefinitionInvalid(
            [{"path": "slug", "message": f"the slug of flow {flow.slug!r} cannot change"}]
        )
    with transaction.atomic():
        draft, _ = FlowVersion.objects.select_for_update().get_or_create(
            flow=flow, number=None,
            defaults={"definition": normalized, "content_hash": content_hash(normalized)},
        )
        draft.definition = normalized
        draft.content_hash = content_hash(normalized)
        draft.created_by = draft.created_by or actor
        draft.save(update_fields=["definition", "content_hash", "created_by", "updated_at"])
        Flow.objects.filter(pk=flow.pk).update(
            name=normalized["name"], description=normalized.get("description", ""),
            updated_at=timezone.now(),
        )
    return draft


def flow_release(*, flow: Flow, actor=None, notes: str = "") -> FlowVersion:
    """Release the draft as the next immutable version, after the configuration checks
    (types, parameters, references, connections exist, schedules parse).

    Raises DefinitionInvalid listing every problem; nothing is written then.
    """
    require_permission(actor, RELEASE_FLOW)
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(pk=flow.pk)
        draft = flow_draft(flow=locked)
        normalized = validate_definition(draft.definition, check_connections=True)
        number = (FlowVersion.objects.filter(flow=locked).aggregate(n=Max("number"))["n"] or 0) + 1
        return FlowVersion.objects.create(
            flow=locked, number=number, definition=normalized,
            content_hash=content_hash(normalized), notes=notes, created_by=actor,
            released_at=timezone.now(),
        )


def flow_promote(*, flow: Flow, number: int, actor=None) -> FlowVersion:
    """Make release `number` live. Checks run again (a connection may have gone since)."""
    require_permission(actor, PROMOTE_FLOW)
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(pk=flow.pk)
        try:
            version = FlowVersion.objects.get(flow=locked, number=number)
        except FlowVersion.DoesNotExist as exc:
            raise NotFound(f"flow {flow.slug} has no release {number}") from exc
        validate_definition(version.definition, check_connections=True)
        locked.live_version = version
        locked.save(update_fields=["live_version", "updated_at"])
    flow.live_version = version
    schedules_sync(flow=flow)
    return version
