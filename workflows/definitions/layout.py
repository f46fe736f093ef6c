"""A layered (Sugiyama-style) drawing of a definition's steps and their `needs`.

Pure geometry, no Django: the admin renders the result as SVG (templatetags/wf_graph.py).
Steps flow left to right:

1. **Layers** by longest path: a step with no needs is in layer 0, any other one layer right
   of the furthest step it needs, so every edge points right.
2. **Dummy nodes** split an edge that spans several layers into one-layer hops, so long edges
   take part in the ordering and are routed between the steps instead of through them.
3. **Ordering** by barycenters: sweeps left to right (each layer ordered by the mean position
   of what it needs) and right to left (by the mean position of what needs it), keeping the
   order with the fewest crossings seen; ties keep definition order, so the drawing is stable.
4. **Coordinates**: columns per layer, rows per position, each layer centred vertically; edges
   are cubic curves through their dummies' points with horizontal tangents.

A definition that cannot be laid out (a cycle: an invalid draft) gets its cycle's back edges
dropped for the layering only; every edge is still drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NODE_WIDTH = 168
NODE_HEIGHT = 40
LAYER_GAP = 40  # room for an edge and its arrow; a five-step chain fits a laptop column (issue 24)
ROW_GAP = 16
PADDING = 12
SWEEPS = 12


@dataclass
class LayoutNode:
    key: str
    type: str
    layer: int
    order: int = 0
    x: float = 0
    y: float = 0
    dummy: bool = False


@dataclass
class LayoutEdge:
    source: str
    target: str
    points: list[tuple[float, float]] = field(default_factory=list)

    @property
    def path(self) -> str:
        """SVG path data: a smooth curve through `points` (horizontal tangents at each)."""
        (x0, y0), *rest = self.points
        parts = [f"M{x0:.1f},{y0:.1f}"]
        for x1, y1 in rest:
            mid = (x0 + x1) / 2
            parts.append(f"C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
            x0, y0 = x1, y1
        return " ".join(parts)


@dataclass
class Layout:
    nodes: list[LayoutNode]
    edges: list[LayoutEdge]
    width: float
    height: float
    layers: int
    crossings: int


def _steps(definition: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    steps = [s for s in definition.get("steps") or [] if isinstance(s, dict)
             and isinstance(s.get("key"), str)]
    keys = {s["key"] for s in steps}
    out = []
    for index, step in enumerate(steps):
        needs = step.get("needs")
        if needs is None:  # not normalized: the default is the previous step
            needs = [steps[index - 1]["key"]] if index else []
        needs = [n for n in needs if isinstance(n, str) and n in keys and n != step["key"]]
        out.append((step["key"], str(step.get("type", "")), list(dict.fromkeys(needs))))
    return out


def _layers(steps: list[tuple[str, str, list[str]]]) -> dict[str, int]:
    """Longest path from a step with no needs; back edges of a cycle are ignored."""
    needs = {key: deps for key, _t, deps in steps}
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(key: str) -> int:
        if key in layer:
            return layer[key]
        visiting.add(key)
        depth = 0
        for need in needs[key]:
            if need not in visiting:
                depth = max(depth, visit(need) + 1)
        visiting.discard(key)
        layer[key] = depth
        return depth

    for key, _t, _d in steps:
        visit(key)
    return layer


def _crossings(rows: list[list[str]], links: list[tuple[str, str]],
               position: dict[str, int], layer_of: dict[str, int]) -> int:
    by_layer: dict[int, list[tuple[int, int]]] = {}
    for a, b in links:
        by_layer.setdefault(layer_of[a], []).append((position[a], position[b]))
    total = 0
    for pairs in by_layer.values():
        for i, (a1, b1) in enumerate(pairs):
            for a2, b2 in pairs[i + 1:]:
                if (a1 - a2) * (b1 - b2) < 0:
                    total += 1
    return total


def graph_layout(definition: dict[str, Any]) -> Layout:
    """The positions of every step of `definition` and the curves of its `needs` edges."""
    steps = _steps(definition)
    layer_of = _layers(steps)
    nodes: dict[str, LayoutNode] = {
        key: LayoutNode(key=key, type=step_type, layer=layer_of[key])
        for key, step_type, _d in steps
    }
    # One-layer links, with dummies on long edges; chains remember each edge's hops.
    links: list[tuple[str, str]] = []
    chains: list[tuple[str, str, list[str]]] = []
    for key, _t, needs in steps:
        for need in needs:
            lo, hi = sorted((need, key), key=lambda k: layer_of[k])
            hops = [lo]
            for depth in range(layer_of[lo] + 1, layer_of[hi]):
                dummy = f"\x00{lo}\x00{hi}\x00{depth}"
                nodes[dummy] = LayoutNode(key=dummy, type="", layer=depth, dummy=True)
                layer_of[dummy] = depth
                hops.append(dummy)
            hops.append(hi)
            links += [(a, b) for a, b in zip(hops, hops[1:], strict=False) if a != b]
            chains.append((need, key, hops))
    count = max(layer_of.values(), default=-1) + 1
    rows: list[list[str]] = [[] for _ in range(count)]
    for key in nodes:  # definition order first, dummies after the steps they leave from
        rows[layer_of[key]].append(key)
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    succs: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in links:
        succs[a].append(b)
        preds[b].append(a)

    def positions() -> dict[str, int]:
        return {key: i for row in rows for i, key in enumerate(row)}

    def reorder(index: int, neighbours: dict[str, list[str]], position: dict[str, int]) -> None:
        row = rows[index]
        current = {key: i for i, key in enumerate(row)}

        def barycenter(key: str) -> float:
            around = neighbours[key]
            if not around:
                return current[key]
            return sum(position[n] for n in around) / len(around)

        rows[index] = sorted(row, key=lambda k: (barycenter(k), current[k]))

    best = [list(row) for row in rows]
    best_crossings = _crossings(rows, links, positions(), layer_of)
    for sweep in range(SWEEPS):
        if best_crossings == 0:
            break
        span = range(1, count) if sweep % 2 == 0 else range(count - 2, -1, -1)
        for index in span:
            reorder(index, preds if sweep % 2 == 0 else succs, positions())
        crossings = _crossings(rows, links, positions(), layer_of)
        if crossings < best_crossings:
            best, best_crossings = [list(row) for row in rows], crossings
    rows = best
    tallest = max((len(row) for row in rows), default=0)
    step_y = NODE_HEIGHT + ROW_GAP
    for index, row in enumerate(rows):
        offset = (tallest - len(row)) * step_y / 2
        for order, key in enumerate(row):
            node = nodes[key]
            node.order = order
            node.x = PADDING + index * (NODE_WIDTH + LAYER_GAP)
            node.y = PADDING + offset + order * step_y
    edges = []
    for need, key, hops in chains:
        points = []
        for hop in hops:
            node = nodes[hop]
            middle = node.y + NODE_HEIGHT / 2
            if node.dummy:
                points.append((node.x + NODE_WIDTH / 2, middle))
            elif hop == hops[0]:
                points.append((node.x + NODE_WIDTH, middle))
            else:
                points.append((node.x, middle))
        if hops[0] != need:  # a back edge of a cycle: drawn from the step that needs it
            points.reverse()
        edges.append(LayoutEdge(source=need, target=key, points=points))
    width = PADDING * 2 + count * NODE_WIDTH + max(count - 1, 0) * LAYER_GAP
    height = PADDING * 2 + tallest * step_y - (ROW_GAP if tallest else 0)
    return Layout(nodes=[n for n in nodes.values() if not n.dummy], edges=edges,
                  width=width, height=height, layers=count, crossings=best_crossings)
