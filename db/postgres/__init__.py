"""The PostgreSQL backend: the same tables, views and behaviour as SQLite's, for several worker hosts."""
