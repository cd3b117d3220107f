"""Metrics sources (``ports.MetricsSource``): Prometheus and trace files."""
