"""Nomad jobs for GPU pools: render (Jinja2 templates), checks (kill_timeout, GPU memory) and deploy."""
