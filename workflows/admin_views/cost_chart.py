"""The flow page's chart of what remote agents cost per run (issue 20): geometry for an inline
SVG drawn by the template, from `selectors.flow_agent_costs`."""

from __future__ import annotations

from typing import Any


def agent_cost_chart(points: list[dict[str, Any]], *, width: int = 300,
                     height: int = 60) -> dict[str, Any] | None:
    """Cost per run over the last runs (remote agents' usage.cost_usd) as an inline SVG bar
    chart's geometry; None when no run reported a cost."""
    top = max((p["cost_usd"] for p in points), default=0)
    if not top:
        return None
    step = width / max(len(points), 1)
    bars = []
    for index, point in enumerate(points):
        bar_height = max(1.0, height * point["cost_usd"] / top) if point["cost_usd"] else 0
        bars.append({"x": round(index * step, 2), "y": round(height - bar_height, 2),
                     "w": round(max(step - 1, 1), 2), "h": round(bar_height, 2),
                     "run": point["run"], "cost": point["cost_usd"]})
    total = sum(p["cost_usd"] for p in points)
    return {"bars": bars, "width": width, "height": height, "max": top,
            "total": round(total, 4), "runs": len(points)}
