"""build_notifiers, the `slack:` config section and how secrets are resolved."""

from __future__ import annotations

from pathlib import Path

from tests import REPO


def test_a_one_shot_process_posts_its_queued_message_before_exiting(tmp_path: Path, fake_slack) -> None:
    """`forescale tick` / `override set` exit right after notifying: atexit flushes the background queue."""
    import os
    import subprocess
    import sys

    script = tmp_path / "oneshot.py"
    script.write_text(
        "from datetime import UTC, datetime\n"
        "from autoscaler.core.report import Event\n"
        "from autoscaler.wiring import build_notifiers\n"
        "from autoscaler.config import Config\n"
        "pool = {'name': 'ocr', 'query': 'q', 'nomad': {'job': 'ml-ocr', 'group': 'w'}, "
        "'capacity_per_node': 1, 'max': 3}\n"
        f"slack = {{'channel': 'C0123OPS', 'base_url': '{fake_slack.base_url}'}}\n"
        "cfg = Config.model_validate({'pools': [pool], 'slack': slack})\n"
        "console, slack = build_notifiers(cfg)\n"
        "slack.announce(Event('override_set', 'ocr', 'pinned to 4 by test', datetime.now(UTC)))\n",
        encoding="utf-8",
    )
    env = {**os.environ, "SLACK_BOT_TOKEN": fake_slack.token, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (posted,) = fake_slack.posted
    assert posted["text"] == "forescale: pinned to 4 by test"
