"""Checks of `notify`: who hears about what (email addresses and/or an http(s) webhook).

Each rule is `{on: [events], email: [addresses], webhook: URL}`. PyYAML reads YAML 1.1, where a
bare `on` key is the boolean true; a rule's key `True` is therefore read as `on` (a JSON
document, or YAML with `"on":` quoted, says `on` itself).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from connections.outbound import own_origin_problem, url_problem
from workflows.definitions.base import NOTIFY_KEYS, NotifyEvent, add, type_name
from workflows.steps.base import Problem

MAX_NOTIFY_RULES = 20
MAX_EMAILS_PER_RULE = 50


def yaml_on_read(definition: dict[str, Any]) -> dict[str, Any]:
    """`definition` with each notify rule's key `True` (YAML 1.1's reading of a bare `on`)
    renamed `on`: a shallow copy when there is one to rename, else `definition` itself."""
    rules = definition.get("notify")
    if not isinstance(rules, list) or not any(
        isinstance(rule, dict) and True in rule and "on" not in rule for rule in rules
    ):
        return definition
    renamed = [
        {("on" if key is True else key): value for key, value in rule.items()}
        if isinstance(rule, dict) and "on" not in rule else rule
        for rule in rules
    ]
    return {**definition, "notify": renamed}


def check_notify(problems: list[Problem], raw: Any) -> list[dict[str, Any]]:
    """The normalized rules ([] when absent): each `{on: [...], email: [...], webhook: URL or
    None}`. Problems name the rule and field, e.g. `notify[0].webhook`, `notify[1].on[0]`."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        add(problems, "notify", "must be a list of {on: [events], email: [...], webhook: URL}")
        return []
    if len(raw) > MAX_NOTIFY_RULES:
        add(problems, "notify", f"at most {MAX_NOTIFY_RULES} rules")
    rules = []
    for index, rule in enumerate(raw):
        path = f"notify[{index}]"
        if not isinstance(rule, dict):
            add(problems, path, "must be a mapping {on: [events], email: [...], webhook: URL}")
            continue
        for key in rule:
            if key not in NOTIFY_KEYS:
                add(problems, f"{path}.{key}",
                    f"unknown field; expected one of {', '.join(NOTIFY_KEYS)}")
        events = _check_events(problems, rule.get("on"), f"{path}.on")
        emails = _check_emails(problems, rule.get("email"), f"{path}.email")
        webhook = _check_webhook(problems, rule.get("webhook"), f"{path}.webhook")
        if "email" not in rule and "webhook" not in rule:
            add(problems, path, "needs a target: email addresses, a webhook URL or both")
        rules.append({"on": events, "email": emails, "webhook": webhook})
    return rules


def check_notify_targets(problems: list[Problem], rules: list[dict[str, Any]]) -> None:
    """The release check of each rule's webhook (issue 25 H2/H3): a URL the outbound policy
    refuses, or one that points at this platform itself, is a problem at `notify[i].webhook`.
    The same checks run again when a notification is sent (the name may resolve elsewhere by
    then)."""
    for index, rule in enumerate(rules):
        url = rule.get("webhook")
        if not url:
            continue
        reason = own_origin_problem(url, names=False)
        if reason is None:
            refused = url_problem(url, names=False)
            reason = f"refused by the outbound policy: {refused}" if refused else None
        if reason:
            add(problems, f"notify[{index}].webhook", reason)


def _check_events(problems: list[Problem], raw: Any, path: str) -> list[str]:
    choices = ", ".join(NotifyEvent.values)
    if raw is None:
        add(problems, path, f"required: a list of events ({choices})")
        return []
    if not isinstance(raw, list) or not raw:
        add(problems, path, f"must be a non-empty list of events ({choices})")
        return []
    events = []
    for index, event in enumerate(raw):
        if not isinstance(event, str) or event not in NotifyEvent.values:
            add(problems, f"{path}[{index}]", f"unknown event {event!r}; expected one of {choices}")
        elif event not in events:
            events.append(event)
    return events


def _check_emails(problems: list[Problem], raw: Any, path: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        add(problems, path, f"must be a list of email addresses, got {type_name(raw)}")
        return []
    if len(raw) > MAX_EMAILS_PER_RULE:
        add(problems, path, f"at most {MAX_EMAILS_PER_RULE} addresses")
    emails = []
    for index, address in enumerate(raw):
        if not is_email(address):
            add(problems, f"{path}[{index}]", f"{address!r} is not an email address")
        elif address not in emails:
            emails.append(address)
    return emails


def _check_webhook(problems: list[Problem], raw: Any, path: str) -> str | None:
    if raw is None:
        return None
    if not is_http_url(raw):
        add(problems, path, f"{raw!r} is not an http(s) URL" if isinstance(raw, str)
            else f"must be an http(s) URL, got {type_name(raw)}")
        return None
    return raw


def is_email(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 254:
        return False
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def is_http_url(value: Any) -> bool:
    """An absolute http or https URL with a host (and nothing a header could be split on)."""
    if not isinstance(value, str) or len(value) > 2000 or any(c in value for c in " \r\n\t"):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
