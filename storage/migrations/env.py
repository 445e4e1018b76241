"""Alembic environment: runs migrations on the connection the catalog hands in, or on the URL."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from vocalmine.storage.catalog import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    """Migrate on the caller's connection when given, else connect to sqlalchemy.url."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
