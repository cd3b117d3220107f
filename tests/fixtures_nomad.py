"""pytest fixtures for the nomad tests (loaded by tests/conftest.py)."""
