"""The atlas's tests: three real result folders of one tiny model (``atlas_results``), and stores on
SQLite (a file per test) and on the PostgreSQL server at 127.0.0.1:5432 (a schema per test,
dropped after; the test is skipped only when no server answers there)."""

import uuid

import pytest

from atlas_results import make_results

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def results(tmp_path_factory):
    # session-scoped: made before the root conftest's per-test environment, so it sets its own
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROSCRIBE_AUTO_INDEX", "0")
        mp.setenv("NEUROSCRIBE_CACHE", str(tmp_path_factory.mktemp("atlas-results-cache")))
        return make_results(tmp_path_factory.mktemp("atlas-results"))


def _pg_admin():
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {e}")


@pytest.fixture
def pg_url():
    schema = f"atlas_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as c:
        c.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with _pg_admin() as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'atlas.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request):
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def engine(url):
    from neuroscribe.atlas.store import open_store

    e = open_store(url)
    yield e
    e.dispose()


@pytest.fixture
def indexed(engine, results):
    from neuroscribe.atlas.ingest import index_folder

    reports = {k: index_folder(engine, results[k]) for k in ("describe", "experts", "rank")}
    return engine, reports
