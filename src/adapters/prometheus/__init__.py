"""Prometheus metrics (prometheus-client): delivery counts and latencies, HTTP requests, sockets."""
