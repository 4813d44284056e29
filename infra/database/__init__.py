"""Relational state: models, engine/session handling and Alembic migrations."""
