"""Database plumbing every persistent part shares: a handle over SQLite or PostgreSQL, and named
migrations recorded as applied."""

from sekisho.db.copy import copy_table
from sekisho.db.database import Connection, Database, DatabaseError, SQLiteDatabase, dialect_of, open_database
from sekisho.db.migrations import Migration, MigrationError, Migrations
from sekisho.db.postgres import advisory_key, redacted

__all__ = ["Connection", "Database", "DatabaseError", "Migration", "MigrationError", "Migrations", "SQLiteDatabase",
           "advisory_key", "copy_table", "dialect_of", "open_database", "redacted"]
