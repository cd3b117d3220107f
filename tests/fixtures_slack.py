"""pytest fixtures for the slack tests (loaded by tests/conftest.py)."""
