"""The webhook delivery log's other half: how a delivery's body becomes an object and a run's
input, whether `events` / `when` let it through, and redelivery from a stored delivery (an
operator's command). `services.webhooks.webhook_receive` calls the first three on every
delivery; the API's and the flow page's redeliver call `delivery_redeliver`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from resources.payloads import (
    is_descriptor,
    json_loads_strict,
    json_storage_problems,
    keep_json,
    value_load,
)
from workflows import engine
from workflows.conditions import (
    ConditionFailed,
    ConditionInvalid,
    condition_compile,
    condition_evaluate,
)
from workflows.errors import Conflict, InputInvalid, NotFound, WorkflowError
from workflows.models import Flow, Run, TriggerKind, WebhookDelivery
from workflows.permissions import OPERATE_RUN, require_permission
from workflows.references import ReferenceUnresolved, resolve
from workflows.services.runs import run_start
from workflows.states import DeliveryOutcome
from workflows.webhook_presets import CREDENTIAL_HEADERS, Preset

FORM = "application/x-www-form-urlencoded"


class WebhookPayloadInvalid(WorkflowError):
    """The body is not a JSON object or a usable form (or the delivery id is unusable)."""

    code = "bad_request"
    http_status = 400


def webhook_trigger(*, flow: Flow) -> tuple[int, dict[str, Any]] | None:
    """(index, trigger) of the live release's webhook trigger, or None. The release is read
    from the process's cache of released versions (no query once read)."""
    if flow.live_version_id is None:
        return None
    triggers = (engine.version_get(flow.live_version_id).definition or {}).get("triggers") or []
    for index, trigger in enumerate(triggers):
        if isinstance(trigger, dict) and trigger.get("type") == "webhook":
            return index, trigger
    return None


def _json_object(text: str | bytes, where: str) -> dict[str, Any]:
    try:
        payload = json_loads_strict(text)
    except (ValueError, RecursionError) as exc:
        raise WebhookPayloadInvalid(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WebhookPayloadInvalid(f"{where} must be a JSON object")
    return payload


def webhook_payload(*, preset: Preset, body: bytes, content_type: str) -> dict[str, Any]:
    """The body as an object: JSON, or a form. In a form, the preset's `form_field` (GitHub's
    and Slack's `payload`) holds the JSON; otherwise the fields become an object (a field sent
    several times, a list). Raises WebhookPayloadInvalid (400) naming what is wrong."""
    if content_type.split(";")[0].strip().lower() == FORM:
        try:
            text = body.decode("utf-8")
            fields = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                               max_num_fields=10_000)
        except (UnicodeDecodeError, ValueError) as exc:
            raise WebhookPayloadInvalid(f"the form body is malformed: {exc}") from None
        form: dict[str, Any] = {}
        for name, value in fields:
            if name in form:
                form[name] = [*form[name], value] if isinstance(form[name], list) \
                    else [form[name], value]
            else:
                form[name] = value
        field = preset.form_field
        if field and isinstance(form.get(field), str):
            return _json_object(form[field], f"the form field {field!r}")
        if field and preset.form_field_required:
            raise WebhookPayloadInvalid(
                f"a form body must hold the JSON in its {field!r} field "
                f"(or send Content-Type: application/json)")
        return form
    if not body.strip():
        return {}
    return _json_object(body, "the body")


def visible_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers a condition, a mapping and the log see: no credentials, and none a
    database could not store (NUL)."""
    return {name: value for name, value in headers.items()
            if name not in CREDENTIAL_HEADERS and "\x00" not in name + value}


def webhook_input(*, trigger: dict[str, Any], definition: dict[str, Any],
                  payload: dict[str, Any], headers: Mapping[str, str], event: str,
                  delivery_id: str) -> dict[str, Any]:
    """The run's input from a delivery: the trigger's `input:` mapping resolved over
    `webhook.body`, `webhook.headers`, `webhook.event`, `webhook.delivery_id`; without one,
    the body's `input` object, else the body's top-level fields the flow declares. Raises
    InputInvalid naming each path that cannot be resolved or stored."""
    mapping = trigger.get("input")
    if isinstance(mapping, dict):
        context = {"webhook": {"body": payload, "headers": visible_headers(headers),
                               "event": event, "delivery_id": delivery_id}}
        run_input: dict[str, Any] = {}
        problems = []
        for name, template in mapping.items():
            try:
                run_input[name] = resolve(template, context, follow_resources=False)
            except ReferenceUnresolved as exc:
                problems.append({"path": f"input.{name}", "message": str(exc)})
        if problems:
            raise InputInvalid(problems)
    elif "input" in payload:
        run_input = payload["input"] if payload["input"] is not None else {}
        if not isinstance(run_input, dict):
            raise InputInvalid([{"path": "input", "message": "must be a JSON object"}])
    else:
        declared = definition.get("input") or {}
        run_input = {name: value for name, value in payload.items() if name in declared}
    problems = json_storage_problems(run_input, "input")
    if problems:
        raise InputInvalid(problems)
    return run_input


def filter_reason(*, preset: Preset, trigger: dict[str, Any], payload: dict[str, Any],
                   headers: Mapping[str, str], event: str) -> str:
    """Why `events` / `when` leave this delivery out, or "" when it starts a run."""
    events = trigger.get("events")
    if events:
        if event not in events:
            return f"event {event or '(none)'!r} is not in events {list(events)}"
    elif event in preset.unlisted_ignored:
        return f"{event!r} events are ignored unless events lists them"
    when = trigger.get("when")
    if when:
        try:
            keep = condition_evaluate(condition_compile(when), {
                "body": payload, "headers": visible_headers(headers), "event": event})
        except ConditionInvalid as exc:  # released before the check existed
            return f"when is not a valid condition: {exc}"
        except ConditionFailed as exc:
            return f"when could not be evaluated: {exc}"
        if not keep:
            return "when is false"
    return ""



def delivery_redeliver(*, flow: Flow, delivery: WebhookDelivery, actor) -> Run:
    """Start a new run of the live release from a stored delivery, as an operator: its body
    and headers through the live trigger's input mapping (not its filters: the operator asks
    for the run). The run's `trigger_delivery` names the delivery. Raises Conflict when the
    delivery keeps no body (rejected, duplicate) or the live release has no webhook trigger;
    InputInvalid as a start does."""
    require_permission(actor, OPERATE_RUN)
    stored = delivery.payload
    if stored is None and delivery.outcome == DeliveryOutcome.STARTED and delivery.run_id:
        stored = Run.objects.filter(pk=delivery.run_id).values_list(
            "trigger_payload", flat=True).first()  # a started delivery's body is its run's
    if stored is None:
        raise Conflict(f"delivery {delivery.pk} is {delivery.outcome}: it keeps no body to "
                       "start a run from")
    found = webhook_trigger(flow=flow)
    if found is None:
        raise Conflict(f"flow {flow.slug} has no webhook trigger in its live release")
    try:
        # Only the resource this delivery kept is loaded: a body that merely looks like a
        # descriptor is data, never a handle on another run's resource.
        own = delivery.payload_resource_id is not None and is_descriptor(stored) \
            and stored["$resource"] == f"res://{delivery.payload_resource_id}"
        payload = value_load(stored) if own else stored
    except NotFound:
        raise Conflict(f"the body of delivery {delivery.pk} is no longer kept") from None
    definition = engine.version_get(flow.live_version_id).definition
    run_input = webhook_input(trigger=found[1], definition=definition, payload=payload,
                              headers=delivery.headers or {}, event=delivery.event,
                              delivery_id=delivery.delivery_id)
    kept = keep_json(payload, name=f"{flow.slug}-webhook.json")
    try:
        run, _created = run_start(flow=flow, input=run_input, actor=actor,
                                  trigger_kind=TriggerKind.WEBHOOK, trigger_payload=kept.value,
                                  trigger_delivery=delivery)
    except BaseException:
        kept.discard()
        raise
    kept.attach(run=run)
    return run


