"""Kraken's REST API: signed transport, nonces, rate limits, retries, parsing, and the client."""
