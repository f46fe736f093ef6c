"""The step graph of a definition: `needs` edges, ancestors, descendants, order and cycles.

The public functions read normalized definitions (every step has `needs` as a list);
`closure` and `find_cycles` also serve validation, which builds its graph as it goes.
"""

from __future__ import annotations

import heapq
from typing import Any

from workflows.errors import DefinitionInvalid
from workflows.steps.base import problem


def closure(graph: dict[str, list[str]], start: list[str]) -> set[str]:
    """Every node reachable from `start` (inclusive) through `graph`; safe on cycles."""
    seen: set[str] = set()
    pending = list(start)
    while pending:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        pending.extend(graph.get(node, ()))
    return seen


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Cycles through `needs`, each starting at its first node in `graph` order, without repeats."""
    order = {node: index for index, node in enumerate(graph)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []
    for root in graph:
        if root in state:
            continue
        path: list[str] = [root]
        iterators = [iter(graph[root])]
        state[root] = 1
        while iterators:
            child = next(iterators[-1], None)
            if child is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(child) == 1:
                cycle = path[path.index(child) :]
                first = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                cycle = cycle[first:] + cycle[:first]
                if cycle not in cycles:
                    cycles.append(cycle)
            elif child not in state and child in graph:
                state[child] = 1
                path.append(child)
                iterators.append(iter(graph[child]))
    return cycles


def _needs_graph(definition: dict[str, Any]) -> dict[str, list[str]]:
    return {step["key"]: list(step.get("needs") or []) for step in definition.get("steps") or []}


def step_ancestors(definition: dict[str, Any], key: str) -> set[str]:
    """Keys of every step `key` runs after (its needs, their needs, ...) in a normalized
    definition. Raises KeyError for an unknown key."""
    graph = _needs_graph(definition)
    if key not in graph:
        raise KeyError(key)
    return closure(graph, graph[key]) - {key}


def step_descendants(definition: dict[str, Any], key: str) -> set[str]:
    """Keys of every step that runs after `key` (directly or indirectly needs it) in a
    normalized definition. Raises KeyError for an unknown key."""
    graph = _needs_graph(definition)
    if key not in graph:
        raise KeyError(key)
    dependents: dict[str, list[str]] = {node: [] for node in graph}
    for node, needs in graph.items():
        for need in needs:
            dependents.setdefault(need, []).append(node)
    return closure(dependents, dependents[key]) - {key}


def topological_order(definition: dict[str, Any]) -> list[str]:
    """Step keys of a normalized definition so that every step comes after all it needs; among
    steps that are ready together, the one listed first in the definition comes first.
    Raises DefinitionInvalid when the needs form a cycle."""
    graph = _needs_graph(definition)
    position = {key: index for index, key in enumerate(graph)}
    waiting = {key: len(needs) for key, needs in graph.items()}
    dependents: dict[str, list[str]] = {key: [] for key in graph}
    for key, needs in graph.items():
        for need in needs:
            if need in dependents:
                dependents[need].append(key)
            else:  # a need outside the definition never completes
                waiting[key] += 1
    ready = [(position[key], key) for key, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _position, key = heapq.heappop(ready)
        order.append(key)
        for dependent in dependents[key]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, (position[dependent], dependent))
    if len(order) < len(graph):
        raise DefinitionInvalid(
            [
                problem("steps", "needs form a cycle: " + " -> ".join(cycle + cycle[:1]))
                for cycle in find_cycles(graph)
            ]
            or [problem("steps", "some steps need steps that are not in the definition")]
        )
    return order
