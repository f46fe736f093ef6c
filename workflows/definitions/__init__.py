"""Flow definitions: parse, validate, normalize, compare (CONTRACT.md "Flow definition", DESIGN.md §6).

`parse_definition` turns YAML or JSON text into a dict. `validate_definition` checks everything
that can be known before a run (fields, types, step parameters through each step type, needs and
cycles, references, schedules, and on request that named connections exist) and returns the
normalized definition that a FlowVersion stores; it raises DefinitionInvalid with every problem
found. The other functions read normalized definitions: run input, step graph, hash and diff.

    base.py       enums, limits and field lists, small value predicates
    parse.py      YAML/JSON text in, a fresh dict out; values JSON cannot hold (NUL, NaN, dates)
    graph.py      needs: ancestors, descendants, topological order, cycles
    inputs.py     a run's input against the declared inputs
    diff.py       content hash and definition diff
    check/        validate_definition, one module per part: metadata, inputs, triggers, steps,
                  references, connections
    schema.py     the definition format as pydantic models: the published JSON Schema

Nothing here touches the database except `validate_definition(..., check_connections=True)`,
which makes one query.
"""

from __future__ import annotations

from workflows.definitions.base import ConcurrencyPolicy, InputType, TriggerType
from workflows.definitions.check import validate_definition
from workflows.definitions.diff import content_hash, definition_diff, definition_value_changes
from workflows.definitions.graph import step_ancestors, step_descendants, topological_order
from workflows.definitions.inputs import validate_run_input
from workflows.definitions.parse import parse_definition

__all__ = [
    "ConcurrencyPolicy",
    "InputType",
    "TriggerType",
    "content_hash",
    "definition_diff",
    "definition_value_changes",
    "parse_definition",
    "step_ancestors",
    "step_descendants",
    "topological_order",
    "validate_definition",
    "validate_run_input",
]
