"""Real `rebalancerd` processes driven over HTTP and the command line, killed and restarted."""
