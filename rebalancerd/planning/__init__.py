"""Pieces of the pure planner: its value types and its checks. The entry point is planner."""
