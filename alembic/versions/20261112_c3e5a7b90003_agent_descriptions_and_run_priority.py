"""agent descriptions, update times and run priority

Revision ID: c3e5a7b90003
Revises: b2d4f6a80002
Create Date: 2026-11-12 10:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "c3e5a7b90003"
down_revision: str | tuple[str, ...] | None = "b2d4f6a80002"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def _agents_before() -> sa.Table:
    """The agents table as the previous revision left it, for SQLite's table rebuild.

    Handing it over (``copy_from``) spares batch mode the reflection that ``--sql`` cannot do.
    """
    return sa.Table(
        "agents",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner_email", sa.String(320), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_agents"),
        sa.UniqueConstraint("slug", name="uq_agents_slug"),
    )


def upgrade() -> None:
    description = sa.Column("description", sa.Text(), nullable=True)
    updated_at = sa.Column(
        "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )
    if op.get_context().dialect.name == "sqlite":
        # SQLite's ADD COLUMN refuses a non-constant default (CURRENT_TIMESTAMP) on a table
        # that has rows: rebuild the table instead, which fills the column from its default.
        with op.batch_alter_table("agents", recreate="always", copy_from=_agents_before()) as batch:
            batch.add_column(description)
            batch.add_column(updated_at)
    else:
        op.add_column("agents", description)
        op.add_column("agents", updated_at)
    op.create_index(op.f("ix_agents_owner_email"), "agents", ["owner_email"])
    op.add_column(
        "runs", sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.create_index("ix_runs_status_queued_at", "runs", ["status", "queued_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_status_queued_at", table_name="runs")
    op.drop_column("runs", "priority")
    op.drop_index(op.f("ix_agents_owner_email"), table_name="agents")
    op.drop_column("agents", "updated_at")
    op.drop_column("agents", "description")
