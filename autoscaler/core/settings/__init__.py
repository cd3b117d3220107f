"""The schema of forescale.yaml, one module per section (data only; ``autoscaler.config`` reads the file)."""
