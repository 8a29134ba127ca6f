"""Forward-only SQL migrations of the SQLite store, applied in order by schema.py."""
