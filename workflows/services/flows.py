"""Commands on flows and their versions: create, edit the draft, release; promotion lives in
`workflows.services.promotions` (re-exported here as `flow_promote`). Each change writes its
`FlowHistory` entry in its own transaction."""

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
from workflows.errors import DefinitionInvalid
from workflows.models import Flow, FlowVersion
from workflows.permissions import EDIT_DRAFT, RELEASE_FLOW, require_permission
from workflows.services.history import flow_history_record
from workflows.services.promotions import flow_promote
from workflows.services.schedules import schedules_sync
from workflows.services.subflows import subflow_problems
from workflows.states import FlowHistoryKind

__all__ = ["flow_create", "flow_draft", "flow_promote", "flow_release", "flow_update_draft"]


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
            draft = FlowVersion.objects.create(
                flow=flow, number=None, definition=normalized,
                content_hash=content_hash(normalized), created_by=actor,
            )
            flow_history_record(flow=flow, kind=FlowHistoryKind.DRAFT_EDITED, actor=actor,
                                comment="flow created",
                                data={"content_hash": draft.content_hash, "created": True})
    except IntegrityError as exc:
        raise DefinitionInvalid(
            [{"path": "slug", "message": f"a flow with slug {normalized['slug']!r} exists"}]
        ) from exc
    schedules_sync(flow=flow)
    return flow


def flow_draft(*, flow: Flow) -> FlowVersion:
    return FlowVersion.objects.get(flow=flow, number__isnull=True)


def flow_update_draft(*, flow: Flow, definition: dict | str | bytes, actor=None) -> FlowVersion:
    """Replace the draft. The slug cannot change. Raises DefinitionInvalid (nothing written).
    A change of content is a `draft_edited` history entry (with the new content hash); saving
    the same content again records nothing."""
    require_permission(actor, EDIT_DRAFT)
    normalized = _normalized(definition)
    if normalized["slug"] != flow.slug:
        raise DefinitionInvalid(
            [{"path": "slug", "message": f"the slug of flow {flow.slug!r} cannot change"}]
        )
    with transaction.atomic():
        draft, created = FlowVersion.objects.select_for_update().get_or_create(
            flow=flow, number=None,
            defaults={"definition": normalized, "content_hash": content_hash(normalized)},
        )
        new_hash = content_hash(normalized)
        if created or draft.content_hash != new_hash:
            flow_history_record(flow=flow, kind=FlowHistoryKind.DRAFT_EDITED, actor=actor,
                                data={"content_hash": new_hash,
                                      "previous_hash": None if created else draft.content_hash})
        draft.definition = normalized
        draft.content_hash = new_hash
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
        loops = subflow_problems(slug=locked.slug, definition=normalized)
        if loops:
            raise DefinitionInvalid(loops)
        number = (FlowVersion.objects.filter(flow=locked).aggregate(n=Max("number"))["n"] or 0) + 1
        version = FlowVersion.objects.create(
            flow=locked, number=number, definition=normalized,
            content_hash=content_hash(normalized), notes=notes, created_by=actor,
            released_at=timezone.now(),
        )
        flow_history_record(flow=locked, kind=FlowHistoryKind.RELEASED, actor=actor,
                            to_version=number, comment=notes,
                            data={"content_hash": version.content_hash})
        return version
