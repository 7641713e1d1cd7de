"""Database plumbing every persistent part shares: named migrations recorded as applied."""

from sekisho.db.migrations import Migration, MigrationError, Migrations

__all__ = ["Migration", "MigrationError", "Migrations"]
