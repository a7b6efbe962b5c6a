"""Passages carry a holder key: one person under two source ids is sent once.

Why: a student entered twice in the source (two person ids) gets two idTechniques
for one award, and the CDC would store the award twice. ``holder_key`` is a keyed
hash of the civil identity as the CDC compares it and of the certification (never
the identity itself); the delta looks it up before claiming, hence the index.

Passages recorded before this revision keep NULL: the ledger holds no identity to
compute it from. The delta fills it when a run reads such a passage again unchanged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger_passage", sa.Column("holder_key", sa.String(32)))
    op.create_index("ix_ledger_passage_holder_key", "ledger_passage", ["holder_key"])


def downgrade() -> None:
    op.drop_index("ix_ledger_passage_holder_key", table_name="ledger_passage")
    with op.batch_alter_table("ledger_passage") as batch:
        batch.drop_column("holder_key")
