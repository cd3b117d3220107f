"""pytest fixtures for the docker tests (loaded by tests/conftest.py)."""
