"""SQLAlchemy 2 (async) adapters: PostgreSQL through psycopg 3 in production, a SQLite file (aiosqlite) embedded.

Mapping choice: SQLAlchemy Core tables and explicit row <-> entity functions, not the ORM. The
repository ports already say exactly what is written (``save_transition`` is a conditional
UPDATE, ``save_delivery`` touches only the delivery columns), so the ORM's change tracking would
only add a hidden flush and per-object bookkeeping on the hot path, and the domain classes stay
plain dataclasses that know nothing of SQLAlchemy.
"""
