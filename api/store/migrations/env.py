"""Alembic environment: runs on the connection creditctl hands it (api.store.database.migrate)."""

from alembic import context

from api.store.tables import Base

connection = context.config.attributes.get("connection")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
