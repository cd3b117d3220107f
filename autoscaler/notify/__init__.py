"""Notifiers (``ports.Notifier``) and records: console, Slack, failure alerts, the audit log, their metrics."""
