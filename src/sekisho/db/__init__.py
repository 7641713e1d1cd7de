"""Database plumbing every persistent part shares: a handle over SQLite or PostgreSQL, and named
migrations recorded as applied."""

from sekisho.db.database import Connection, Database, DatabaseError, SQLiteDatabase, open_database
from sekisho.db.migrations import Migration, MigrationError, Migrations

__all__ = ["Connection", "Database", "DatabaseError", "Migration", "MigrationError", "Migrations", "SQLiteDatabase",
           "open_database"]
