"""Scaling targets (``ports.Target``): Nomad task groups and the simulated cluster of demo and backtest."""
