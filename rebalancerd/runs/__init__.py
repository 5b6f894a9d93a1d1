"""A run's life: the loop that claims due portfolios, the lease and finish of a run, the trade
itself.
"""
