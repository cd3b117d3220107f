"""The kernel: types, errors, ports, clock, time, YAML loading and the config schema.

Imports nothing else of forescale (import-linter enforces it); everything else builds on it.
"""
