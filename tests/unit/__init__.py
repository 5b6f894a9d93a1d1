"""Pure logic: no database, no network, no processes. The whole tier runs in seconds."""
