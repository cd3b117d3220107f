"""Request-rate forecasting, capacity maths and the backtest simulator."""
