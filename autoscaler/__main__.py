"""``python -m autoscaler`` runs the forescale CLI (used by tests that need a real process)."""

from autoscaler.cli.main import main

main()
