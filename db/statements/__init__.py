"""Every read and write of the product, written once for both backends (SQLite, PostgreSQL).

A statement is SQLAlchemy Core on the models' tables (``db.schema.models``), or text where SQL says it more plainly,
compiled once per dialect (``db.statements.sql``) and run by each backend's own driver: no engine, no ORM
session on a call's path. Where the dialects truly differ, a small named construct says so once.
"""
