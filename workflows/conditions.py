"""Conditions in CEL (the Common Expression Language): compile once, evaluate over given values.

Used by webhook triggers (`when:` over `body`, `headers`, `event`) and meant for step
`when:`/`until:` too, so it sits below the engine and knows nothing of either: a caller names
the variables. The library is `common-expression-language` (the Rust `cel` interpreter with
Python bindings): an expression reads only the values it is given: no attribute access on
Python objects, no I/O, no eval.

Bounds. CEL has no loops or recursion; its only iteration is the comprehension macros (`all`,
`exists`, `exists_one`, `map`, `filter`) over a list or map, and the library has no cost limit
of its own. So a condition is bounded here, statically and per evaluation:
- at most MAX_LENGTH characters and MAX_ADDITIONS `+` operators (concatenating a large string
  or list again and again is the other way to make work grow);
- comprehensions nested at most MAX_NESTING deep;
- a nested comprehension (depth ≥ 2) is evaluated only when the largest list or map among the
  values, raised to that depth, stays within MAX_ITERATIONS; otherwise the evaluation fails
  with a reason that says so. One level costs at most the size of the values times the
  expression.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import cel

__all__ = [
    "MAX_ADDITIONS",
    "MAX_ITERATIONS",
    "MAX_LENGTH",
    "MAX_NESTING",
    "Condition",
    "ConditionFailed",
    "ConditionInvalid",
    "condition_compile",
    "condition_evaluate",
]

MAX_LENGTH = 1000
MAX_ADDITIONS = 20
MAX_NESTING = 2
MAX_ITERATIONS = 1_000_000
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})


class ConditionInvalid(ValueError):
    """The text is not a condition this module accepts (syntax, length, nesting); the message
    says why, for a definition problem at the condition's path."""


class ConditionFailed(Exception):
    """Evaluating a valid condition failed (a missing key, a type mismatch, a result that is
    not a boolean, too much work for these values); the message is the reason."""


@dataclass(frozen=True)
class Condition:
    source: str
    program: Any
    nesting: int


def _scan(source: str) -> tuple[int, int]:
    """(deepest comprehension nesting, number of `+` operators) outside string literals."""
    stack: list[bool] = []  # True: the parenthesis of a comprehension macro
    deepest = additions = 0
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char in "'\"":
            raw = i > 0 and source[i - 1] in "rR" and (i < 2 or not (source[i - 2].isalnum()
                                                                    or source[i - 2] == "_"))
            quote = source[i:i + 3] if source[i:i + 3] in ("'''", '"""') else char
            i += len(quote)
            while i < n and not source.startswith(quote, i):
                i += 2 if source[i] == "\\" and not raw else 1
            i += len(quote)
            continue
        if char == "+":
            additions += 1
        elif char in "([{":
            macro = False
            if char == "(":
                j = i
                while j > 0 and source[j - 1] == " ":
                    j -= 1
                k = j
                while k > 0 and (source[k - 1].isalnum() or source[k - 1] == "_"):
                    k -= 1
                word = source[k:j]
                before = k - 1
                while before >= 0 and source[before] == " ":
                    before -= 1
                macro = word in MACROS and before >= 0 and source[before] == "."
            stack.append(macro)
            if macro:
                deepest = max(deepest, sum(stack))
        elif char in ")]}" and stack:
            stack.pop()
        i += 1
    return deepest, additions


def condition_compile(source: Any) -> Condition:
    """Compile a condition (cached per process: definitions are immutable once released).
    Raises ConditionInvalid naming what is wrong."""
    if not isinstance(source, str) or not source.strip():
        raise ConditionInvalid("must be a CEL expression such as 'body.action == \"opened\"'")
    return _compile(source)


@functools.lru_cache(maxsize=512)
def _compile(source: str) -> Condition:
    if len(source) > MAX_LENGTH:
        raise ConditionInvalid(f"is {len(source)} characters long; at most {MAX_LENGTH}")
    nesting, additions = _scan(source)
    if nesting > MAX_NESTING:
        raise ConditionInvalid(
            f"nests comprehensions (all, exists, exists_one, map, filter) {nesting} deep; "
            f"at most {MAX_NESTING}")
    if additions > MAX_ADDITIONS:
        raise ConditionInvalid(f"has {additions} '+' operators; at most {MAX_ADDITIONS}")
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        message = " ".join(str(exc).split())
        raise ConditionInvalid(f"is not valid CEL: {message[:300]}") from None
    return Condition(source=source, program=program, nesting=nesting)


def _largest_collection(value: Any) -> int:
    largest = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            largest = max(largest, len(item))
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            largest = max(largest, len(item))
            stack.extend(v for v in item if isinstance(v, dict | list))
    return largest


def condition_evaluate(condition: Condition, variables: dict[str, Any]) -> bool:
    """True or False for these variables. Raises ConditionFailed with the reason when the
    evaluation fails, would iterate more than MAX_ITERATIONS times, or does not give a
    boolean. Never raises anything else for data."""
    if condition.nesting >= 2:
        largest = _largest_collection(variables)
        if largest ** condition.nesting > MAX_ITERATIONS:
            raise ConditionFailed(
                f"the condition nests {condition.nesting} comprehensions over a list or map of "
                f"{largest} items: more than {MAX_ITERATIONS} iterations")
    try:
        result = condition.program.execute(variables)
    except Exception as exc:  # noqa: BLE001 - the library raises many kinds; all are data errors
        message = " ".join(str(exc).split())[:300]
        raise ConditionFailed(f"{type(exc).__name__}: {message}") from None
    if not isinstance(result, bool):
        raise ConditionFailed(f"the condition gave {type(result).__name__} {result!r:.80}, "
                              "not true or false")
    return result
