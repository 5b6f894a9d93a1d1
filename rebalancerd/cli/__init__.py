"""The command line: argument parsing, and the client commands that talk to a running daemon."""
