"""The atlas's first schema: models, jobs, neurons and the findings jobs write about them.

Revision ID: 0001_atlas
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_atlas"
down_revision = None
branch_labels = None
depends_on = None


def _owned(name: str, *columns, indexes: tuple = ()) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("neuron", sa.Integer, sa.ForeignKey("atlas_neurons.id", ondelete="CASCADE"), nullable=False),
        sa.Column("job", sa.Integer, sa.ForeignKey("atlas_jobs.id", ondelete="CASCADE"), nullable=False),
        *columns)
    op.create_index(f"ix_{name}_neuron", name, ["neuron"])
    op.create_index(f"ix_{name}_job", name, ["job"])
    for cols in indexes:
        op.create_index(f"ix_{name}_{'_'.join(cols)}", name, list(cols))


def upgrade() -> None:
    op.create_table(
        "atlas_models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("model_id", sa.String(500), nullable=False),
        sa.Column("revision", sa.String(200)),
        sa.Column("weight_sha256", sa.String(64), nullable=False),
        sa.Column("model_type", sa.String(100)),
        sa.Column("random_init", sa.Boolean, nullable=False),
        sa.UniqueConstraint("model_id", "revision", "weight_sha256", name="uq_atlas_models_identity"))
    op.create_table(
        "atlas_jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(100), nullable=False, unique=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("result_dir", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40)),
        sa.Column("indexed_at", sa.String(40), nullable=False),
        sa.Column("parameters", sa.JSON),
        sa.Column("provenance", sa.JSON),
        sa.Column("summary", sa.Text))
    op.create_table(
        "atlas_neurons",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.Integer, sa.ForeignKey("atlas_models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("site", sa.String(40), nullable=False),
        sa.Column("layer", sa.Integer, nullable=False),
        sa.Column("unit", sa.Integer, nullable=False),
        sa.UniqueConstraint("model", "site", "layer", "unit", name="uq_atlas_neurons_key"))
    _owned("atlas_unit_stats",
           sa.Column("max_activation", sa.Float), sa.Column("mean_activation", sa.Float),
           sa.Column("firing_density", sa.Float), sa.Column("status", sa.String(40)),
           sa.Column("quantiles", sa.JSON), sa.Column("histogram", sa.JSON),
           sa.Column("top_descriptor", sa.String(500)), sa.Column("n_descriptors", sa.Integer, nullable=False),
           sa.Column("n_verified", sa.Integer, nullable=False), sa.Column("n_exemplars", sa.Integer),
           indexes=(("max_activation",), ("firing_density",), ("top_descriptor",)))
    op.create_table(
        "atlas_sentences",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job", sa.Integer, sa.ForeignKey("atlas_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("label", sa.String(200)),
        sa.Column("spans", sa.JSON),
        sa.UniqueConstraint("job", "row", name="uq_atlas_sentences_row"))
    _owned("atlas_exemplars",
           sa.Column("rows", sa.JSON, nullable=False), sa.Column("kinds", sa.JSON, nullable=False),
           sa.Column("activations", sa.JSON, nullable=False), sa.Column("lengths", sa.JSON),
           sa.Column("levels", sa.JSON), sa.Column("values", sa.LargeBinary))
    _owned("atlas_descriptors",
           sa.Column("position", sa.Integer, nullable=False), sa.Column("descriptor", sa.String(500), nullable=False),
           sa.Column("count", sa.Integer), sa.Column("f", sa.Float), sa.Column("base_rate", sa.Float),
           sa.Column("enrichment", sa.Float), sa.Column("p", sa.Float), sa.Column("q", sa.Float),
           sa.Column("auroc", sa.Float), sa.Column("verified", sa.Boolean),
           indexes=(("descriptor",),))
    _owned("atlas_explanations", sa.Column("text", sa.Text, nullable=False), sa.Column("scores", sa.JSON))
    _owned("atlas_concepts",
           sa.Column("concept", sa.String(200), nullable=False), sa.Column("ap", sa.Float, nullable=False),
           sa.Column("tau", sa.Float), sa.Column("expert", sa.Boolean, nullable=False),
           indexes=(("concept", "ap"),))
    _owned("atlas_ranks",
           sa.Column("method", sa.String(60), nullable=False), sa.Column("attribute", sa.String(200), nullable=False),
           sa.Column("position", sa.Integer, nullable=False), sa.Column("score", sa.Float),
           sa.Column("n_ranked", sa.Integer),
           indexes=(("method", "position"),))
    _owned("atlas_effects",
           sa.Column("kind", sa.String(40), nullable=False), sa.Column("label", sa.String(300), nullable=False),
           sa.Column("value", sa.Float), sa.Column("low", sa.Float), sa.Column("high", sa.Float),
           sa.Column("baseline", sa.Float), sa.Column("detail", sa.JSON))
    op.create_table(
        "atlas_search_docs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("embedding", sa.LargeBinary),
        sa.UniqueConstraint("kind", "text", name="uq_atlas_search_docs_text"))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE atlas_search_fts USING fts5(text, tokenize='porter unicode61')")
    else:
        op.execute("CREATE INDEX ix_atlas_search_docs_tsv ON atlas_search_docs "
                   "USING gin (to_tsvector('english', text))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE atlas_search_fts")
    for name in ("atlas_search_docs", "atlas_effects", "atlas_ranks", "atlas_concepts", "atlas_explanations",
                 "atlas_descriptors", "atlas_exemplars", "atlas_sentences", "atlas_unit_stats", "atlas_neurons",
                 "atlas_jobs", "atlas_models"):
        op.drop_table(name)
