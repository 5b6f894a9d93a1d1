"""Real parts in one process: PostgreSQL, the fake Kraken over HTTP, the aiohttp app."""
