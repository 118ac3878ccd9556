"""add runs and run events

Revision ID: b2d4f6a80002
Revises: a1c3e5f70001
Create Date: 2026-11-05 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "b2d4f6a80002"
down_revision: str | tuple[str, ...] | None = "a1c3e5f70001"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

run_status = sa.Enum("queued", "running", "succeeded", "failed", "cancelled", name="run_status")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(36), nullable=False),
        sa.Column("agent_version_id", sa.Integer(), nullable=False),
        sa.Column("status", run_status, server_default="queued", nullable=False),
        sa.Column("input", sa.JSON(), nullable=True),
        sa.Column(
            "queued_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_version_id"],
            ["agent_versions.id"],
            ondelete="RESTRICT",
            name=op.f("fk_runs_agent_version_id_agent_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("public_id", name=op.f("uq_runs_public_id")),
    )
    op.create_index(op.f("ix_runs_agent_version_id"), "runs", ["agent_version_id"])
    op.create_table(
        "run_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], ondelete="CASCADE", name=op.f("fk_run_events_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_events")),
        sa.UniqueConstraint("run_id", "seq", name="uq_run_events_run_id_seq"),
    )


def downgrade() -> None:
    op.drop_table("run_events")
    # Dropping the table drops its indexes. Dropping ix_runs_agent_version_id first fails on
    # MySQL/MariaDB, where that index backs the foreign key on agent_version_id.
    op.drop_table("runs")
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TYPE IF EXISTS run_status")
