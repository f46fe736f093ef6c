"""The flow page's "Start a run": a form built from the definition's declared inputs.

Each declared input gets a widget that fits its type (text; integers and numbers as text
fields with a numeric keyboard, so a wrong value reaches the server and is named; a choice for
booleans and `enum`s; a JSON textarea for objects and arrays), with its required mark, default
and description. The widgets' text is turned into values here, and the values are judged by
`validate_run_input`, the same function `run_start` (and so the API) uses, storage rule
included (NUL, unpaired surrogates, non-finite numbers, depth, size): its problems at
`input.NAME` become that field's errors. JSON is parsed as the API parses a body
(`json_loads_strict`). A text that is not a number stays text, so the
message is the API's ("must be an integer, got string").

Three tabs, each a plain link (no script): the live release's form, the draft rehearsal's form
(the draft's own inputs), and JSON (the former textarea). The start view is
`flow_page.flow_start_view`; this module builds what it and the page render.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django import forms
from django.http import HttpRequest

from resources.payloads import json_loads_strict
from workflows.definitions import validate_run_input
from workflows.definitions.base import promotion_approval
from workflows.errors import InputInvalid
from workflows.models import Flow, FlowVersion

MODES = ("form", "draft", "json")
# ASCII digits, as JSON writes numbers (`\d` would take "٣", which int() reads as 3).
INTEGER = re.compile(r"[-+]?[0-9]+")
NUMBER = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")


def json_value(text: str) -> tuple[Any, str | None]:
    """(value, None) for JSON text, or (None, the error): parsed as the API parses a body
    (`json_loads_strict`: no NaN, Infinity or `1e400`), nesting past the recursion limit and
    integers past Python's digit limit are errors too, never a 500."""
    try:
        return json_loads_strict(text), None
    except ValueError as exc:
        return None, f"not valid JSON: {exc}"
    except RecursionError:
        return None, "not valid JSON: nested too deeply"


def _initial(spec: dict[str, Any]) -> str:
    default = spec.get("default")
    if default is None:
        return ""
    if spec.get("type") in ("object", "array"):
        return json.dumps(default, indent=2)
    if spec.get("type") == "boolean" or "enum" in spec:
        return json.dumps(default)
    return str(default)


def _field(name: str, spec: dict[str, Any]) -> forms.Field:
    input_type = spec.get("type")
    required = bool(spec.get("required"))
    attrs: dict[str, Any] = {"data-input": name, "data-type": input_type or ""}
    if "enum" in spec or input_type == "boolean":
        values = spec["enum"] if "enum" in spec else [True, False]
        choices = [(json.dumps(v), v if isinstance(v, str) else json.dumps(v)) for v in values]
        if not required or spec.get("default") is None:
            choices.insert(0, ("", "(not set)" if not required else "choose…"))
        widget: forms.Widget = forms.Select(attrs=attrs, choices=choices)
    elif input_type in ("object", "array"):
        widget = forms.Textarea(attrs={**attrs, "rows": 4, "spellcheck": "false",
                                       "class": "wf-code"})
    elif input_type in ("integer", "number"):
        widget = forms.TextInput(attrs={
            **attrs, "inputmode": "numeric" if input_type == "integer" else "decimal"})
    else:
        widget = forms.TextInput(attrs=attrs)
    help_text = spec.get("description") or ""
    return forms.CharField(label=name, required=False, strip=input_type != "string",
                           widget=widget, help_text=help_text, initial=_initial(spec))


class RunInputForm(forms.Form):
    """One field per declared input; `run_input()` is the input to start a run with, or None
    with the problems added as field errors."""

    def __init__(self, declared: dict[str, dict[str, Any]], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, prefix="in", **kwargs)
        self.declared = declared
        for name, spec in declared.items():
            self.fields[name] = _field(name, spec)
            self.fields[name].wf_required = bool(spec.get("required"))
            self.fields[name].wf_type = spec.get("type") or ""
            self.fields[name].wf_default = (
                json.dumps(spec["default"]) if spec.get("default") is not None else "")

    def _value(self, name: str, text: str) -> tuple[Any, str | None]:
        """The value a widget's text stands for (None: not given), or a parse error."""
        spec = self.declared[name]
        input_type = spec.get("type")
        if text == "" or (input_type != "string" and not text.strip()):
            return None, None
        if "enum" in spec or input_type == "boolean":
            try:
                return json_loads_strict(text), None
            except (ValueError, RecursionError):
                return text, None
        if input_type == "integer" and INTEGER.fullmatch(text):
            try:
                return int(text), None
            except ValueError:  # past Python's 4,300-digit conversion limit
                return None, "must be an integer of at most 4300 digits"
        if input_type == "number" and NUMBER.fullmatch(text):
            number = float(text)
            if not math.isfinite(number):
                return None, "must be a finite number"
            return (int(number) if number.is_integer() and INTEGER.fullmatch(text)
                    else number), None
        if input_type in ("object", "array"):
            return json_value(text)
        return text, None

    def run_input(self, definition: dict[str, Any]) -> dict[str, Any] | None:
        if not self.is_valid():
            return None
        given: dict[str, Any] = {}
        for name in self.declared:
            value, error = self._value(name, self.cleaned_data.get(name) or "")
            if error:
                self.add_error(name, error)
            elif value is not None:
                given[name] = value
        if self.errors:
            return None
        try:
            return validate_run_input(definition, given)
        except InputInvalid as exc:
            for item in exc.problems:
                inner = item["path"].removeprefix("input.")
                name = re.split(r"[.\[]", inner, maxsplit=1)[0]
                if name not in self.fields:
                    self.add_error(None, f"{inner}: {item['message']}")
                    continue
                within = inner[len(name):].lstrip(".")  # where inside the value, if deeper
                self.add_error(name, f"{within}: {item['message']}" if within
                               else item["message"])
            return None


def start_context(request: HttpRequest, flow: Flow, *, live: FlowVersion | None,
                  draft: FlowVersion | None, bound: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """What the "Start a run" popover renders: the tabs, the chosen mode's form and whether it
    opens on load. `bound` is a refused start: its mode and its form with the errors (form
    modes) or its text and error (json)."""
    # A flow under the two-person rule runs no rehearsal (run_start refuses it): no draft tab,
    # no rehearsal checkbox.
    rehearsals = not any(promotion_approval(v.definition) for v in (live, draft) if v is not None)
    if not rehearsals:
        draft = None
    if bound is not None:
        mode, open_now = bound["mode"], True
    else:
        mode = request.GET.get("start", "")
        open_now = mode in MODES
    if mode not in MODES or (mode == "form" and live is None):
        mode = "form" if live is not None else "draft"
    if mode == "draft" and draft is None:
        mode = "json"
    version = live if mode == "form" else draft
    definition = version.definition if version is not None else {}
    declared = definition.get("input") or {}
    form = None
    if mode != "json":
        form = bound["form"] if bound and bound.get("form") else RunInputForm(declared)
    defaults = {name: spec.get("default") for name, spec in declared.items()
                if spec.get("default") is not None or spec.get("required")}
    return {
        "start": {
            "mode": mode, "open": open_now, "form": form, "has_live": live is not None,
            "has_draft": draft is not None,
            "json_text": (bound or {}).get("json_text") or json.dumps(
                defaults if live is not None or draft is not None else {}, indent=2),
            "json_draft": rehearsals and (bound or {}).get("json_draft", live is None),
            "rehearsals": rehearsals,
            "errors": (bound or {}).get("errors", []),
            "label": f"v{live.number}" if mode == "form" and live is not None else "the draft",
        },
    }
