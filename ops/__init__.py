"""Operations: health and readiness probes, Prometheus metrics, structured logs and the durable
count of refused inbound deliveries. Edges (views, middleware) at the top, queries in
selectors, the one write in services; nothing here changes a run."""
