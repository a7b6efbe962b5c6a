"""Files carry the STAGED and DEPOSITED steps; a passage in flight is CLAIMED.

Why: staging and depositing happen to whole files, so recording them on up to
200 000 passage rows per file tripled the writes of an annual run. A claimed
passage now keeps its settled ``sent_hash``, ``id_flux`` and ``reason`` until the
CDC decides, which makes the ``prev_hash``, ``prev_flux`` and ``prev_reason`` copies
useless; a partial unique index keeps at most one pending sending per passage.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PENDING_ONLY = sa.text("status = 'PENDING'")
# The file of a passage's pending sending (at most one, the index below says so).
PENDING_FILE = (
    "(SELECT {col} FROM ledger_sending s JOIN ledger_file f ON f.id_flux = s.id_flux"
    " WHERE s.technical_id = ledger_passage.technical_id AND s.status = 'PENDING')"
)


# Two states version 0001 never writes; converting them would strand passages.
INCONSISTENT = {
    "passages awaiting the CDC in two files": (
        "SELECT count(*) FROM (SELECT technical_id FROM ledger_sending"
        " WHERE status = 'PENDING' GROUP BY technical_id HAVING count(*) > 1) twice"
    ),
    "staged or deposited passages in no file awaiting the CDC": (
        "SELECT count(*) FROM ledger_passage p WHERE p.status IN ('STAGED', 'DEPOSITED')"
        " AND NOT EXISTS (SELECT 1 FROM ledger_sending s"
        " WHERE s.technical_id = p.technical_id AND s.status = 'PENDING')"
    ),
}


def upgrade() -> None:
    conn = op.get_bind()
    for what, count in INCONSISTENT.items():
        n = conn.execute(sa.text(count)).scalar_one()
        if n:
            raise RuntimeError(
                f"ledger not migrated: {n} {what}; repair the ledger (or restore a backup) first"
            )
    op.create_index(
        "uq_ledger_sending_pending",
        "ledger_sending",
        ["technical_id"],
        unique=True,
        postgresql_where=PENDING_ONLY,
        sqlite_where=PENDING_ONLY,
    )
    # Claimed, not in the outbox yet: the settled columns were never touched.
    op.execute("UPDATE ledger_passage SET status = 'CLAIMED' WHERE status = 'BUILT'")
    # Staged or deposited: the claim moves back from the settled columns to claim_*.
    op.execute(
        "UPDATE ledger_passage SET status = 'CLAIMED',"
        f" claim_run = {PENDING_FILE.format(col='f.run_id')},"
        " claim_hash = sent_hash, claimed_at = updated_at,"
        " sent_hash = prev_hash, id_flux = prev_flux, reason = prev_reason"
        " WHERE status IN ('STAGED', 'DEPOSITED')"
    )
    with op.batch_alter_table("ledger_passage") as batch:
        for name in ("prev_hash", "prev_flux", "prev_reason"):
            batch.drop_column(name)


def downgrade() -> None:
    with op.batch_alter_table("ledger_passage") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(32)))
        batch.add_column(sa.Column("prev_flux", sa.String(50)))
        batch.add_column(sa.Column("prev_reason", sa.Text))
    file_status = PENDING_FILE.format(col="f.status")
    op.execute(
        "UPDATE ledger_passage SET status = "
        f"{PENDING_FILE.format(col='f.status')},"
        " prev_hash = sent_hash, prev_flux = id_flux, prev_reason = reason,"
        " sent_hash = claim_hash, reason = NULL,"
        f" id_flux = {PENDING_FILE.format(col='f.id_flux')},"
        " claim_run = NULL, claim_hash = NULL, claimed_at = NULL"
        f" WHERE status = 'CLAIMED' AND {file_status} IN ('STAGED', 'DEPOSITED')"
    )
    # Claimed, not in the outbox: 0001 kept copies of the settled columns to revert to.
    op.execute(
        "UPDATE ledger_passage SET status = 'BUILT',"
        " prev_hash = sent_hash, prev_flux = id_flux, prev_reason = reason"
        " WHERE status = 'CLAIMED'"
    )
    op.drop_index("uq_ledger_sending_pending", table_name="ledger_sending")
