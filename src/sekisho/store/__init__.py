"""Persistent storage for the knowledge base: records, the Store protocol, the SQLite store."""

from sekisho.store.protocol import Store, StoreError
from sekisho.store.records import Chunk, Document, Hit, Location
from sekisho.store.sqlite import SQLiteStore, open_store

__all__ = ["Chunk", "Document", "Hit", "Location", "SQLiteStore", "Store", "StoreError", "open_store"]
