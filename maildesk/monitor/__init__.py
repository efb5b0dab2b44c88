"""Watching the daemon: the Prometheus metrics (metrics.py, queues.py), `/healthz` (health.py),
the loopback HTTP endpoint that serves both (endpoint.py) and one-JSON-object-per-line logs
(logs.py). Below every layer that counts something, above the database it reads queues from."""
