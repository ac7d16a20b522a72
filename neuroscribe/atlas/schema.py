"""The atlas's tables (SQLAlchemy 2 Core/ORM metadata); the migrations in ``atlas/migrations``
create exactly these (a test compares them). docs/atlas.md describes each table.

Portable types only (SQLite and PostgreSQL): JSON text columns, float16 token activations as
bytes (``LargeBinary``), no database-specific column types. Full-text search lives beside these
tables (``atlas/search_index.py``): an FTS5 table on SQLite, a ``tsvector`` expression index on
PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["metadata", "models", "jobs", "neurons", "unit_stats", "sentences", "exemplars", "descriptors",
           "explanations", "concepts", "ranks", "effects", "search_docs", "JOB_TABLES"]

metadata = MetaData()

models = Table(
    "atlas_models", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("model_id", String(500), nullable=False),
    Column("revision", String(200)),
    Column("weight_sha256", String(64), nullable=False),
    Column("model_type", String(100)),
    Column("random_init", Boolean, nullable=False, default=False),
    UniqueConstraint("model_id", "revision", "weight_sha256", name="uq_atlas_models_identity"),
)

jobs = Table(
    "atlas_jobs", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(100), nullable=False, unique=True),
    Column("kind", String(40), nullable=False),
    Column("result_dir", Text, nullable=False),
    Column("created_at", String(40)),
    Column("indexed_at", String(40), nullable=False),
    Column("parameters", JSON),
    Column("provenance", JSON),
    Column("summary", Text),
)

neurons = Table(
    "atlas_neurons", metadata,
    Column("id", Integer, primary_key=True),
    Column("model", Integer, ForeignKey("atlas_models.id", ondelete="CASCADE"), nullable=False),
    Column("site", String(40), nullable=False),
    Column("layer", Integer, nullable=False),
    Column("unit", Integer, nullable=False),
    UniqueConstraint("model", "site", "layer", "unit", name="uq_atlas_neurons_key"),
)


def _owned(name: str, *columns, extra_indexes: tuple = ()) -> Table:
    """A table of rows a job wrote about a neuron (deleted with the job, re-written on re-index)."""
    t = Table(name, metadata,
              Column("id", Integer, primary_key=True),
              Column("neuron", Integer, ForeignKey("atlas_neurons.id", ondelete="CASCADE"), nullable=False),
              Column("job", Integer, ForeignKey("atlas_jobs.id", ondelete="CASCADE"), nullable=False),
              *columns)
    Index(f"ix_{name}_neuron", t.c.neuron)
    Index(f"ix_{name}_job", t.c.job)
    for cols in extra_indexes:
        Index(f"ix_{name}_{'_'.join(cols)}", *(t.c[c] for c in cols))
    return t


unit_stats = _owned(
    "atlas_unit_stats",
    Column("max_activation", Float), Column("mean_activation", Float), Column("firing_density", Float),
    Column("status", String(40)), Column("quantiles", JSON), Column("histogram", JSON),
    Column("top_descriptor", String(500)), Column("n_descriptors", Integer, nullable=False, default=0),
    Column("n_verified", Integer, nullable=False, default=0), Column("n_exemplars", Integer),
    extra_indexes=(("max_activation",), ("firing_density",), ("top_descriptor",)),
)

sentences = Table(
    "atlas_sentences", metadata,
    Column("id", Integer, primary_key=True),
    Column("job", Integer, ForeignKey("atlas_jobs.id", ondelete="CASCADE"), nullable=False),
    Column("row", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("label", String(200)),
    Column("spans", JSON),
    UniqueConstraint("job", "row", name="uq_atlas_sentences_row"),
)

exemplars = _owned(
    "atlas_exemplars",
    Column("rows", JSON, nullable=False), Column("kinds", JSON, nullable=False),
    Column("activations", JSON, nullable=False), Column("lengths", JSON),
    Column("levels", JSON), Column("values", LargeBinary),
)

descriptors = _owned(
    "atlas_descriptors",
    Column("position", Integer, nullable=False), Column("descriptor", String(500), nullable=False),
    Column("count", Integer), Column("f", Float), Column("base_rate", Float), Column("enrichment", Float),
    Column("p", Float), Column("q", Float), Column("auroc", Float), Column("verified", Boolean),
    extra_indexes=(("descriptor",),),
)

explanations = _owned(
    "atlas_explanations",
    Column("text", Text, nullable=False), Column("scores", JSON),
)

concepts = _owned(
    "atlas_concepts",
    Column("concept", String(200), nullable=False), Column("ap", Float, nullable=False),
    Column("tau", Float), Column("expert", Boolean, nullable=False),
    extra_indexes=(("concept", "ap"),),
)

ranks = _owned(
    "atlas_ranks",
    Column("method", String(60), nullable=False), Column("attribute", String(200), nullable=False),
    Column("position", Integer, nullable=False), Column("score", Float), Column("n_ranked", Integer),
    extra_indexes=(("method", "position"),),
)

effects = _owned(
    "atlas_effects",
    Column("kind", String(40), nullable=False), Column("label", String(300), nullable=False),
    Column("value", Float), Column("low", Float), Column("high", Float), Column("baseline", Float),
    Column("detail", JSON),
)

search_docs = Table(
    "atlas_search_docs", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("text", Text, nullable=False),
    Column("embedding", LargeBinary),
    UniqueConstraint("kind", "text", name="uq_atlas_search_docs_text"),
)

# deleted in this order when a job is re-indexed (children first)
JOB_TABLES = (unit_stats, exemplars, descriptors, explanations, concepts, ranks, effects, sentences)
