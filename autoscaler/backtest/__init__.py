"""Replaying traffic through the real tick: the backtest (with reference policies), the demo and the plot."""
