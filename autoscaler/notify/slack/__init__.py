"""Slack: messages (Block Kit), transport (slack-sdk bot or webhook, bounded retries) and the notifier."""
