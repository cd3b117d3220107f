"""`forescale run`: the scheduler loop, its /metrics and /healthz server, and its metrics."""
