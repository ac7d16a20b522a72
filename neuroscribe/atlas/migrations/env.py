"""Alembic environment of the atlas: always run by ``atlas.store`` on a connection it opened (no
alembic.ini, no URL here); the version table is ``atlas_alembic_version`` so the atlas can share a
database with other applications."""

from alembic import context

from neuroscribe.atlas.schema import metadata

VERSION_TABLE = "atlas_alembic_version"

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
