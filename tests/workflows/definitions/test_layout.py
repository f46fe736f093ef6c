"""The layered layout of a flow graph: layers by longest path, fewer crossings, every edge
pointing right, and a size that stays readable for 30 steps with fan-out and fan-in."""

from workflows.definitions import parse_definition, validate_definition
from workflows.definitions.layout import NODE_HEIGHT, NODE_WIDTH, graph_layout


def step(key, needs=None):
    entry = {"key": key, "type": "python", "action": "core.echo"}
    if needs is not None:
        entry["needs"] = needs
    return entry


def wide_definition(fan: int = 8) -> dict:
    """30 steps: a start, a fan-out of `fan` branches of three steps each, a fan-in, a small
    fan-out and fan-in again, and an edge from the start to the end."""
    steps = [step("start")]
    for b in range(fan):
        steps += [step(f"b{b}_fetch", ["start"]), step(f"b{b}_build", [f"b{b}_fetch"]),
                  step(f"b{b}_test", [f"b{b}_build"])]
    steps.append(step("join", [f"b{b}_test" for b in range(fan)]))
    steps += [step("publish", ["join"]), step("archive", ["join"]),
              step("notify", ["publish", "archive", "start"]), step("cleanup", ["notify"])]
    return validate_definition({"slug": "wide", "name": "Wide", "steps": steps})


def by_key(layout):
    return {n.key: n for n in layout.nodes}


def test_layers_are_the_longest_path_and_every_edge_points_right():
    definition = validate_definition(parse_definition("""
slug: d
name: D
steps:
  - {key: a, type: python, action: core.echo}
  - {key: b, type: python, action: core.echo}
  - {key: c, type: python, action: core.echo, needs: [a]}
  - {key: d, type: python, action: core.echo, needs: [a, c]}
"""))
    layout = graph_layout(definition)
    nodes = by_key(layout)
    assert {k: n.layer for k, n in nodes.items()} == {"a": 0, "b": 1, "c": 1, "d": 2}
    for edge in layout.edges:
        xs = [x for x, _y in edge.points]
        assert xs == sorted(xs) and xs[0] < xs[-1]
    # a → d spans two layers: it passes through a point between the layers.
    long = next(e for e in layout.edges if (e.source, e.target) == ("a", "d"))
    assert len(long.points) == 3 and long.path.count("C") == 2


def test_thirty_steps_with_fan_out_and_fan_in_lay_out_without_overlaps():
    definition = wide_definition()
    assert len(definition["steps"]) == 30
    layout = graph_layout(definition)
    assert len(layout.nodes) == 30 and layout.layers == 8
    assert layout.crossings == 0
    boxes = [(n.x, n.y) for n in layout.nodes]
    for i, (x1, y1) in enumerate(boxes):
        for x2, y2 in boxes[i + 1:]:
            assert abs(x1 - x2) >= NODE_WIDTH or abs(y1 - y2) >= NODE_HEIGHT
    # As tall as the fan plus the long edge's lane (9 rows), one column per layer.
    assert layout.height <= 9 * (NODE_HEIGHT + 16) + 24
    assert layout.width <= 8 * (NODE_WIDTH + 64) + 24


def test_barycenter_ordering_removes_crossings_the_definition_order_has():
    steps = [step("x"), step("y", []), step("p", ["y"]), step("q", ["x"])]
    layout = graph_layout(validate_definition({"slug": "c", "name": "C", "steps": steps}))
    nodes = by_key(layout)
    assert layout.crossings == 0
    assert (nodes["x"].order < nodes["y"].order) == (nodes["q"].order < nodes["p"].order)


def test_a_draft_with_a_cycle_still_lays_out():
    steps = [step("a", ["b"]), step("b", ["a"])]
    layout = graph_layout({"steps": steps})
    assert len(layout.nodes) == 2 and len(layout.edges) == 2
