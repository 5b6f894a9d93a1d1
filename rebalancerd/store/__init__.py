"""PostgreSQL, the only code that runs SQL: Store (repository.py) is portfolios.py + runs.py +
history.py on database.py's pool and queries.sql; also migrations, the connection pool and
embedded server (embedded.py), and the paper accounts' ledger."""
