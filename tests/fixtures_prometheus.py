"""pytest fixtures for the prometheus tests (loaded by tests/conftest.py)."""
