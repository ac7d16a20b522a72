"""The store's schema: the migrations create exactly the tables of ``atlas.schema``, opening again
runs nothing, and a database at a revision this version does not know is refused untouched."""

import pytest
from sqlalchemy import inspect, text

from neuroscribe.atlas import schema
from neuroscribe.atlas.store import AtlasSchemaError, current_revision, head_revision, open_store


def test_migrations_create_exactly_the_models_tables(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    # FTS5's shadow tables on SQLite are the search index, not a drift of the models
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name.startswith("atlas_search_fts"))
            and not (d[0] == "remove_table" and d[1].name == "atlas_alembic_version")
            and not (d[0] == "remove_index" and d[1].name == "ix_atlas_search_docs_tsv")]
    assert diff == []
    assert current_revision(engine) == head_revision()
    assert set(schema.metadata.tables) <= set(inspect(engine).get_table_names())


def test_opening_again_changes_nothing(engine, url):
    with engine.begin() as conn:
        conn.execute(schema.jobs.insert().values(key="k", kind="rank", result_dir="/x", indexed_at="now"))
    again = open_store(url)
    with again.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM atlas_jobs")).scalar() == 1
    again.dispose()


def test_a_newer_schema_is_refused_and_left_alone(engine, url):
    with engine.begin() as conn:
        conn.execute(text("UPDATE atlas_alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(AtlasSchemaError, match="9999_from_the_future.*does not know.*Nothing was run"):
        open_store(url)
    assert current_revision(engine) == "9999_from_the_future"  # nothing was run against it


def test_a_bad_url_names_the_setting():
    from neuroscribe.errors import InvalidInput

    with pytest.raises(InvalidInput, match="not a database URL: 'atlas.sqlite'"):
        open_store("atlas.sqlite")
