"""PostgreSQL: the only code that runs SQL (the repository and its queries.sql), migrations, the
embedded server.
"""
