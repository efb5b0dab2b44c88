"""Database: typed SQLAlchemy models, engine/session setup, shared queries."""
