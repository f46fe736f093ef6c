"""/flows: create and edit flows, release and promote, diff, start runs, list runs, the matrix."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router, Status

from approvals.selectors import approvals_queryset
from workflows.api.documents import (
    approval_document,
    flow_document,
    history_document,
    release_document,
    run_document,
)
from workflows.api.errors import invalid
from workflows.api.lookups import can_view_flows, can_view_runs, get_flow, get_flow_row
from workflows.api.openapi import errors
from workflows.api.pagination import clamp_limit, keyset_page
from workflows.api.params import Cursor, FlowSlug, Limit, ReleaseNumber, VersionLabel
from workflows.api.rendering import rendered
from workflows.api.schemas import (
    DefinitionIn,
    DiffOut,
    FlowOut,
    FlowPage,
    HistoryPage,
    MatrixOut,
    NotificationSecretOut,
    PromoteIn,
    PromotionRequestOut,
    ReleaseIn,
    ReleaseOut,
    ReleasePage,
    RunOut,
    RunPage,
    RunStartIn,
    WebhookSecretIn,
    WebhookSecretOut,
    WebhookSecretSetOut,
)
from workflows.definitions import definition_diff
from workflows.document_selectors import (
    flow_history_entries,
    flow_releases,
    flows_queryset,
    runs_queryset,
)
from workflows.errors import NotFound
from workflows.models import Flow, FlowVersion
from workflows.selectors import MATRIX_MAX_RUNS, flow_version_by_label, run_matrix
from workflows.services.flows import flow_create, flow_promote, flow_release, flow_update_draft
from workflows.services.notifications import SIGNATURE_HEADER, notification_secret_rotate
from workflows.services.runs import run_start
from workflows.services.webhooks import webhook_secret_rotate, webhook_secret_set, webhook_url
from workflows.states import RunStatus

router = Router(tags=["flows"])

@router.get("", response={200: FlowPage, **errors()}, summary="List flows, newest first",
            operation_id="flows_list")
def flows_list(request: HttpRequest, cursor: Cursor = None, limit: Limit = 50):
    can_view_flows(request.auth)
    flows, next_cursor = keyset_page(flows_queryset(), cursor=cursor, limit=limit)
    return {"items": [flow_document(f) for f in flows], "next_cursor": next_cursor}


@router.post("", response={201: FlowOut, **errors(409)}, summary="Create a flow and its draft",
             operation_id="flows_create")
def flows_create(request: HttpRequest, payload: DefinitionIn):
    flow = flow_create(definition=payload.definition, actor=request.auth)
    return Status(201, flow_document(get_flow(flow.slug)))


@router.get("/{slug}", response={200: FlowOut, **errors()}, summary="Get a flow",
            operation_id="flows_get")
def flows_get(request: HttpRequest, slug: FlowSlug):
    can_view_flows(request.auth)
    return flow_document(get_flow(slug))


@router.put("/{slug}/draft", response={200: FlowOut, **errors(409)},
            summary="Replace the draft (422 lists every problem)",
            operation_id="flows_update_draft")
def flows_update_draft(request: HttpRequest, slug: FlowSlug, payload: DefinitionIn):
    flow = get_flow(slug)
    flow_update_draft(flow=flow, definition=payload.definition, actor=request.auth)
    return flow_document(get_flow(slug))


@router.post("/{slug}/releases", response={201: ReleaseOut, **errors(409)},
             summary="Release the draft as the next immutable version (checks first)",
             operation_id="releases_create")
def releases_create(request: HttpRequest, slug: FlowSlug, payload: ReleaseIn | None = None):
    flow = get_flow(slug)
    version = flow_release(flow=flow, actor=request.auth,
                           notes=payload.notes if payload else "")
    return Status(201, release_document(version, live_id=flow.live_version_id))


@router.get("/{slug}/releases", response={200: ReleasePage, **errors()},
            summary="List releases, newest first", operation_id="releases_list")
def releases_list(request: HttpRequest, slug: FlowSlug, cursor: Cursor = None,
                  limit: Limit = 50):
    can_view_flows(request.auth)
    flow = get_flow(slug)
    versions, next_cursor = keyset_page(
        flow_releases(flow),
        cursor=cursor, limit=limit, key="number",
    )
    return {"items": [release_document(v, live_id=flow.live_version_id) for v in versions],
            "next_cursor": next_cursor}


@router.post("/{slug}/releases/{version}/promote",
             response={200: FlowOut, 202: PromotionRequestOut, **errors(409)},
             summary="Make a release live (202 with a promotion request when the flow's "
                     "promotion requires approval)", operation_id="releases_promote")
def releases_promote(request: HttpRequest, slug: FlowSlug, version: ReleaseNumber,
                     payload: PromoteIn | None = None):
    flow = get_flow(slug)
    if not 0 < version < 2**31:
        raise NotFound(f"flow {slug} has no release {version}")
    result = flow_promote(flow=flow, number=version, actor=request.auth,
                          comment=payload.comment if payload else "")
    if isinstance(result, FlowVersion):
        return flow_document(get_flow(slug))
    return Status(202, {"request": approval_document(approvals_queryset().get(pk=result.pk))})


@router.get("/{slug}/history", response={200: HistoryPage, **errors()},
            summary="The flow's history (releases, draft edits, promotions, rollbacks, webhook "
                    "secret rotations, promotion requests), newest first",
            operation_id="flows_history")
def flows_history(request: HttpRequest, slug: FlowSlug, cursor: Cursor = None,
                  limit: Limit = 50):
    can_view_flows(request.auth)
    flow = get_flow(slug)
    entries, next_cursor = keyset_page(flow_history_entries(flow), cursor=cursor,
                                       limit=limit)
    return {"items": [history_document(e) for e in entries], "next_cursor": next_cursor}


def _version(flow: Flow, label: str, param: str) -> FlowVersion:
    """The version `label` names (selectors.flow_version_by_label); a label that is no release
    number, `live` or `draft` is a 422 on `param`, one naming no version a 404."""
    text = (label or "").strip().lower()
    digits = text.removeprefix("v")
    if text not in ("draft", "live") and not (
            digits.isascii() and digits.isdigit() and len(digits) <= 9):
        raise invalid(f"query.{param}", "must be a release number (3 or v3), live or draft")
    version = flow_version_by_label(flow=flow, label=label)
    if version is None:
        raise NotFound(f"flow {flow.slug} has no version {label!r}")
    return version


DIFF_FROM = Query(..., alias="from", max_length=20)
DIFF_TO = Query(..., max_length=20)


@router.get("/{slug}/diff", response={200: DiffOut, **errors()}, by_alias=True,
            summary="What changed between two versions (3, v3, live or draft)",
            operation_id="flows_diff")
def flows_diff(request: HttpRequest, slug: FlowSlug,
               from_: VersionLabel = DIFF_FROM, to: VersionLabel = DIFF_TO):
    can_view_flows(request.auth)
    flow = get_flow(slug)
    a, b = _version(flow, from_, "from"), _version(flow, to, "to")
    return {"flow": flow.slug, "from": a.label, "to": b.label,
            "changes": definition_diff(a.definition, b.definition)}


@router.post("/{slug}/runs", response={200: RunOut, 201: RunOut, **errors(409)},
             summary="Start a run (201; 200 with the same run for a repeated idempotency key)",
             operation_id="runs_start")
def runs_start(request: HttpRequest, slug: FlowSlug, payload: RunStartIn):
    flow = get_flow_row(slug)
    run, created = run_start(
        flow=flow, input=payload.input, actor=request.auth,
        idempotency_key=payload.idempotency_key, draft=payload.draft,
        traceparent=request.headers.get("traceparent"),
        tracestate=request.headers.get("tracestate"),
    )
    if created:  # the answer is what was just written, not read back
        run.ordered_steps = list(run.created_steps.values())
        return rendered(request, run_document(run), status=201)  # already RunOut's shape
    return Status(200, run_document(runs_queryset().get(pk=run.pk)))



@router.get("/{slug}/runs", response={200: RunPage, **errors()},
            summary="The flow's runs, newest first", operation_id="runs_list")
def runs_list(request: HttpRequest, slug: FlowSlug, status: RunStatus | None = None,
              cursor: Cursor = None, limit: Limit = 50):
    can_view_runs(request.auth)
    flow = get_flow(slug)
    runs = runs_queryset().filter(flow=flow)
    if status:
        runs = runs.filter(status=status)
    page, next_cursor = keyset_page(runs, cursor=cursor, limit=limit)
    return {"items": [run_document(r) for r in page], "next_cursor": next_cursor}


@router.get("/{slug}/matrix", response={200: MatrixOut, **errors()},
            summary="Steps x runs, newest runs first", operation_id="flows_matrix")
def flows_matrix(request: HttpRequest, slug: FlowSlug, limit: Limit = 50,
                 before: int | None = Query(None, ge=1, le=2**63 - 1),
                 status: RunStatus | None = None):
    can_view_runs(request.auth)
    flow = get_flow(slug)
    return run_matrix(flow=flow, limit=clamp_limit(limit, maximum=MATRIX_MAX_RUNS),
                      before=before, status=status)


@router.post("/{slug}/webhook-secret", response={200: WebhookSecretOut, **errors()},
             summary="Rotate the webhook secret and return it (shown only here)",
             operation_id="flows_rotate_webhook_secret")
def flows_rotate_webhook_secret(request: HttpRequest, slug: FlowSlug):
    flow = get_flow(slug)
    secret = webhook_secret_rotate(flow=flow, actor=request.auth)
    return {"webhook_secret": secret, "webhook_url": webhook_url(flow=flow)}


@router.post("/{slug}/notification-secret", response={200: NotificationSecretOut, **errors()},
             summary="Rotate the notification signing secret and return it (shown only here)",
             operation_id="flows_rotate_notification_secret")
def flows_rotate_notification_secret(request: HttpRequest, slug: FlowSlug):
    flow = get_flow(slug)
    secret = notification_secret_rotate(flow=flow, actor=request.auth)
    return {"notification_secret": secret, "signature_header": SIGNATURE_HEADER}


@router.put("/{slug}/webhook-secret", response={200: WebhookSecretSetOut, **errors()},
            summary="Set the secret the sender gave (never shown again)",
            operation_id="flows_set_webhook_secret")
def flows_set_webhook_secret(request: HttpRequest, slug: FlowSlug, body: WebhookSecretIn):
    flow = get_flow_row(slug)
    webhook_secret_set(flow=flow, secret=body.secret, actor=request.auth)
    return {"set": True, "webhook_url": webhook_url(flow=flow)}
