"""The Prometheus collector: every figure is read from the database when /metrics is scraped
(ops.selectors), never kept in one process's memory, so all web processes report the same."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from ops import selectors


class WorkflowsCollector(Collector):
    def collect(self) -> Iterator:
        runs = GaugeMetricFamily("wf_runs", "Runs by flow and status.",
                                 labels=["flow", "status"])
        for flow, status, count in selectors.runs_by_flow_and_status():
            runs.add_metric([flow, status], count)
        yield runs

        durations = HistogramMetricFamily(
            "wf_step_duration_seconds", "Durations of finished step attempts.",
            labels=["flow", "step_type"])
        for row in selectors.step_duration_histograms():
            buckets = [(_le(bound), count) for bound, count in row["buckets"]]
            buckets.append(("+Inf", row["count"]))
            durations.add_metric([row["flow"], row["step_type"]], buckets,
                                 sum_value=row["sum_seconds"])
        yield durations

        depth, age = selectors.queue_depth()
        yield GaugeMetricFamily("wf_queue_depth", "Queued step runs that are due.", value=depth)
        yield GaugeMetricFamily(
            "wf_oldest_queued_step_age_seconds",
            "How long the longest-waiting due queued step has waited (0 when none).", value=age)

        repairs = CounterMetricFamily("wf_sweeper_repairs", "Crash repairs made by the sweeper.",
                                      labels=["kind"])
        for kind, count in selectors.sweeper_repairs().items():
            repairs.add_metric([kind], count)
        yield repairs

        refusals = CounterMetricFamily(
            "wf_inbound_refusals", "Refused webhook deliveries and callback POSTs.",
            labels=["endpoint", "code"])
        for endpoint, code, count in selectors.inbound_refusals():
            refusals.add_metric([endpoint, code], count)
        yield refusals

        drops = CounterMetricFamily(
            "wf_trace_spans_dropped", "Trace spans dropped (export queue full, collector down).",
            labels=["reason"])
        for reason, count in selectors.trace_drops():
            drops.add_metric([reason], count)
        yield drops

        cost = CounterMetricFamily(
            "workflows_agent_cost_usd", "Cost reported by remote agents (usage.cost_usd).",
            labels=["flow"])
        for flow, total in selectors.agent_cost_by_flow():
            cost.add_metric([flow], total)
        yield cost

        missed = CounterMetricFamily(
            "workflows_heartbeat_timeouts", "Waits failed because their agent missed its "
            "heartbeat.", labels=["flow"])
        for flow, count in selectors.heartbeat_timeouts_by_flow():
            missed.add_metric([flow], count)
        yield missed

        yield CounterMetricFamily(
            "wf_notification_failures", "Notifications that could not be delivered.",
            value=selectors.notification_failures())


def _le(bound: float) -> str:
    return str(float(bound))


def metrics_text() -> bytes:
    """The exposition text of a fresh registry holding only our collector (no per-process
    default collectors, which would differ between processes)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkflowsCollector())
    return generate_latest(registry)
