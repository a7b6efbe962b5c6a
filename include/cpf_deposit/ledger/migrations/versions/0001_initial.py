"""Initial ledger: runs, files, passages, sendings, and the idTechnique key.

The key is drawn once, here, and kept in the ledger: idTechnique and data hashes are
keyed with it, so it must live exactly as long as the record of what was sent.

Revision ID: 0001
Revises:
Create Date: 2026-07-01
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    meta = op.create_table(
        "ledger_meta",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.bulk_insert(
        meta,
        [
            {"name": "id_key", "value": secrets.token_hex(32)},
            {"name": "id_scheme", "value": "T1"},
        ],
    )
    op.create_table(
        "ledger_run",
        sa.Column("run_id", sa.String(250), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("bound_to_process", sa.Boolean, nullable=False),
        sa.Column("params", sa.Text),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("finished_at", TS),
    )
    op.create_table(
        "ledger_file",
        sa.Column("id_flux", sa.String(50), primary_key=True),
        sa.Column("file_name", sa.String(255), nullable=False, unique=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("passages", sa.Integer, nullable=False),
        sa.Column("certifications", sa.Text, nullable=False),
        sa.Column("horodatage", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("work_path", sa.Text),
        sa.Column("outbox", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("built_at", TS, nullable=False),
        sa.Column("staged_at", TS),
        sa.Column("deposited_at", TS),
        sa.Column("deposited_by", sa.String(255)),
        sa.Column("processed_at", TS),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_ledger_file_status", "ledger_file", ["status"])
    op.create_table(
        "ledger_passage",
        sa.Column("technical_id", sa.String(255), primary_key=True),
        sa.Column("source_system", sa.String(32), nullable=False),
        sa.Column("source_record_key", sa.String(255), nullable=False),
        sa.Column("certification_type", sa.String(255), nullable=False),
        sa.Column("certification_code", sa.String(100), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sent_hash", sa.String(32)),
        sa.Column("id_flux", sa.String(50)),
        sa.Column("reason", sa.Text),
        sa.Column("claim_run", sa.String(250)),
        sa.Column("claim_hash", sa.String(32)),
        sa.Column("claimed_at", TS),
        sa.Column("prev_status", sa.String(16)),
        sa.Column("prev_hash", sa.String(32)),
        sa.Column("prev_flux", sa.String(50)),
        sa.Column("prev_reason", sa.Text),
        sa.Column("seen_hash", sa.String(32)),
        sa.Column("seen_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint(
            "source_system",
            "source_record_key",
            "certification_type",
            "certification_code",
            name="uq_ledger_passage_natural_key",
        ),
    )
    if op.get_context().dialect.name == "postgresql":
        # Room in each page for heap-only (HOT) status updates: see schema.py.
        op.execute("ALTER TABLE ledger_passage SET (fillfactor = 60)")
    op.create_table(
        "ledger_sending",
        sa.Column("id_flux", sa.String(50), primary_key=True),
        sa.Column("technical_id", sa.String(255), primary_key=True),
        sa.Column("data_hash", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("built_at", TS, nullable=False),
        sa.Column("decided_at", TS),
    )


def downgrade() -> None:
    for table in ("ledger_sending", "ledger_passage", "ledger_file", "ledger_run", "ledger_meta"):
        op.drop_table(table)
