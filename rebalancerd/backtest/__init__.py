"""Backtests: replay prices through the daemon's own planner and compare schedules and bands."""
