"""Writes deploy/grafana/dashboards/agora.json: `python3 deploy/grafana/dashboard.py` from the repository root
when the panels change. Every query reads the recording rules of deploy/prometheus/rules.yml or
the metrics of docs/metrics.md; scripts/e2e-prometheus.sh runs each against a real Prometheus."""
import json

panels, y = [], 0
def row(title):
    global y
    panels.append({"type": "row", "title": title, "collapsed": False, "id": len(panels) + 1,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1
def chart(title, unit, targets, x, w=12):
    panels.append({"type": "timeseries", "title": title, "id": len(panels) + 1,
                   "datasource": {"type": "prometheus", "uid": "${datasource}"},
                   "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                   "options": {"legend": {"displayMode": "table", "placement": "right", "showLegend": True},
                               "tooltip": {"mode": "multi", "sort": "desc"}},
                   "gridPos": {"h": 8, "w": w, "x": x, "y": y},
                   "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": l,
                                "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                               for i, (e, l) in enumerate(targets)]})
def next_line():
    global y
    y += 8

m = '{rpc_service=~"$rpc_service"}'
row("gRPC servers: per service and method")
chart("Calls per second", "reqps", [(f"rpc_service_method:rpc_server_calls:rate1m{m}", "{{rpc_service}}/{{rpc_method}}")], 0)
chart("Error ratio (server's fault)", "percentunit", [(f"rpc_service_method:rpc_server_errors:ratio_rate1m{m}", "{{rpc_service}}/{{rpc_method}}")], 12)
next_line()
chart("p50 latency", "s", [(f"rpc_service_method:rpc_server_call_duration_seconds:p50_1m{m}", "{{rpc_service}}/{{rpc_method}}")], 0)
chart("p99 latency", "s", [(f"rpc_service_method:rpc_server_call_duration_seconds:p99_1m{m}", "{{rpc_service}}/{{rpc_method}}")], 12)
next_line()
row("Edge: per route")
chart("Requests per second", "reqps", [("http_route:http_server_requests:rate1m", "{{http_request_method}} {{http_route}}")], 0)
chart("5xx ratio", "percentunit", [("http_route:http_server_errors:ratio_rate1m", "{{http_request_method}} {{http_route}}")], 12)
next_line()
chart("p50 latency", "s", [("http_route:http_server_request_duration_seconds:p50_1m", "{{http_request_method}} {{http_route}}")], 0)
chart("p99 latency", "s", [("http_route:http_server_request_duration_seconds:p99_1m", "{{http_request_method}} {{http_route}}")], 12)
next_line()
row("Event bus")
chart("Outbox backlog (events not yet published)", "short", [("sum by (messaging_destination_name) (agora_outbox_backlog)", "{{messaging_destination_name}}")], 0, 8)
chart("Outbox lag (oldest unpublished event)", "s", [("messaging_destination_name:agora_outbox_lag_seconds:max", "{{messaging_destination_name}}")], 8, 8)
chart("Consumer lag", "short", [("messaging_destination_consumer_group:agora_consumer_lag:sum", "{{messaging_consumer_group_name}} on {{messaging_destination_name}}")], 16, 8)
next_line()
chart("Dead-lettered events (per 5 min)", "short", [("sum by (messaging_destination_name, messaging_consumer_group_name) (increase(agora_events_dead_lettered_total[5m]))", "{{messaging_consumer_group_name}} on {{messaging_destination_name}}")], 0)
chart("Reservations expired by the sweeper (per 5 min)", "short", [("sum(increase(agora_inventory_reservations_expired_total[5m]))", "expired")], 12)
next_line()
row("Orders")
chart("Orders per minute", "short", [("60 * agora_order_outcome:agora_orders:rate1m", "{{agora_order_outcome}}")], 0, 8)
chart("Saga p99 by outcome", "s", [("histogram_quantile(0.99, sum by (agora_order_outcome, le) (rate(agora_order_saga_duration_seconds_bucket[5m])))", "{{agora_order_outcome}}")], 8, 8)
chart("Compensations and recoveries (per 5 min)", "short", [("sum(increase(agora_order_compensations_total[5m]))", "compensations"), ("sum(increase(agora_order_recoveries_total[5m]))", "recoveries")], 16, 8)
next_line()
row("Clients and process")
chart("Circuit breakers (0 closed, 1 half-open, 2 open)", "short", [("max by (service, rpc_service) (agora_client_breaker_state)", "{{service}} -> {{rpc_service}}")], 0, 8)
chart("Retries per second", "short", [("sum by (rpc_service, agora_retry_outcome) (rate(agora_client_retries_total[1m]))", "{{rpc_service}} {{agora_retry_outcome}}")], 8, 8)
chart("Shed and rate-limited per second", "short", [("sum by (rpc_service) (rate(agora_server_shed_total[1m]))", "shed {{rpc_service}}"), ("sum by (agora_rate_limit_policy) (rate(agora_edge_rate_limited_total[1m]))", "rate-limited {{agora_rate_limit_policy}}")], 16, 8)
next_line()
chart("CPU (cores)", "short", [("sum by (service) (rate(process_cpu_time_seconds_total[1m]))", "{{service}}")], 0, 8)
chart("Memory", "bytes", [("sum by (service) (process_memory_usage_bytes)", "{{service}}")], 8, 8)
chart("Tokio workers busy", "percentunit", [("avg by (service) (agora_runtime_workers_busy)", "{{service}}")], 16, 8)

dashboard = {
    "uid": "agora-golden", "title": "Agora: golden signals", "tags": ["agora"], "timezone": "browser",
    "schemaVersion": 39, "version": 1, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
    "editable": False, "graphTooltip": 1,
    "templating": {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {"text": "Prometheus", "value": "prometheus"}},
        {"name": "rpc_service", "label": "gRPC service", "type": "query", "includeAll": True, "multi": True,
         "allValue": ".*", "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": {"query": "label_values(rpc_server_call_duration_seconds_count, rpc_service)", "refId": "rpc_service"},
         "refresh": 2, "current": {"text": "All", "value": "$__all"}},
    ]},
    "annotations": {"list": []},
    "panels": panels,
}
with open("deploy/grafana/dashboards/agora.json", "w") as f:
    json.dump(dashboard, f, indent=2)
    f.write("\n")
