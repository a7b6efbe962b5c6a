"""Ledger tables (SQLAlchemy Core) and the statuses a passage and a file go through.

Why Core and not the ORM: the ledger moves up to a million rows per annual run in
set-based statements and bulk loads; there is no object graph to manage. The
migrations in ``migrations/versions`` create exactly these tables; a test compares
them, so change both together.

A passage row is the *current* state of one idTechnique. While a run holds it
(status ``BUILT``) the ``claim_*`` columns say which run and which data; ``prev_*``
keep the settled state from before the claim, so that a claim which never became a
staged file can be put back exactly. ``ledger_sending`` is the history: one row each
time a passage went into a file, with the data hash sent and the CDC's outcome; the
file row carries the staging and deposit times.

Why so few indexes: an annual run writes each of up to a million passage rows three
times (claim, file, staged). Passages are only ever looked up by idTechnique (the
primary key), by natural key (unique constraint) or through ``ledger_sending``
(primary key ``id_flux, technical_id``); with no other index, and free space left
in each page on PostgreSQL (fillfactor), status updates are heap-only (HOT) writes.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class Status(StrEnum):
    """Status of a passage (and of one sending of it)."""

    BUILT = "BUILT"  # claimed by a run, being written into a file, not in the outbox yet
    PENDING = "PENDING"  # sendings only: in a file, no CDC outcome yet
    STAGED = "STAGED"  # in a file in the outbox, awaiting manual deposit
    DEPOSITED = "DEPOSITED"  # the operator deposited the file on the CDC portal
    ACCEPTED = "ACCEPTED"  # the CDC stored it: never send it again (XSD 1.1.2)
    REJECTED = "REJECTED"  # the CDC refused it (reason kept); send again once corrected
    FILE_REJECTED = "FILE_REJECTED"  # the CDC refused the whole file (XSD errors)
    ABORTED = "ABORTED"  # sendings only: the file never reached the outbox
    EXPIRED = "EXPIRED"  # sendings only: purged from the outbox before any deposit


class FileStatus(StrEnum):
    BUILT = "BUILT"  # recorded with its passages; not (known to be) in the outbox yet
    STAGED = "STAGED"
    DEPOSITED = "DEPOSITED"
    PROCESSED = "PROCESSED"  # a receipt was applied
    FILE_REJECTED = "FILE_REJECTED"
    ABORTED = "ABORTED"  # a crashed run's file that could not be found again
    EXPIRED = "EXPIRED"  # purged (retention) while still awaiting deposit


class RunState(StrEnum):
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    ABANDONED = "ABANDONED"  # found dead by the recovery step of a later run


class Action(StrEnum):
    """XSD 1.1.5 ``action``; 1.1.2 only creates."""

    CREATION = "CREATION"
    SUPPRESSION = "SUPPRESSION"


PENDING = (Status.STAGED, Status.DEPOSITED)
RESENDABLE = (Status.REJECTED, Status.FILE_REJECTED)

ID_LEN = 255
HASH_LEN = 32  # data hashes (hex); file sha256 columns are 64
FLUX_LEN = 50

metadata = MetaData()


class UTCDateTime(TypeDecorator):
    """Aware datetimes stored in UTC, read back aware: SQLite would drop the offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger stores aware datetimes only")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


ts = UTCDateTime()

ledger_meta = Table(
    "ledger_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

ledger_run = Table(
    "ledger_run",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("bound_to_process", Boolean, nullable=False),
    Column("params", Text),  # JSON: source, window, dry-run... (never personal data)
    Column("started_at", ts, nullable=False),
    Column("heartbeat_at", ts, nullable=False),
    Column("finished_at", ts),
)

ledger_file = Table(
    "ledger_file",
    metadata,
    Column("id_flux", String(FLUX_LEN), primary_key=True),
    Column("file_name", String(255), nullable=False, unique=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("passages", Integer, nullable=False),
    Column("certifications", Text, nullable=False),  # JSON {code: count}
    Column("horodatage", String(32), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("status", String(16), nullable=False),
    Column("work_path", Text),  # where the run wrote it, for recovery
    Column("outbox", Text),  # where it was staged (path or URL)
    Column("reason", Text),
    Column("built_at", ts, nullable=False),
    Column("staged_at", ts),
    Column("deposited_at", ts),
    Column("deposited_by", String(255)),
    Column("processed_at", ts),
    Column("updated_at", ts, nullable=False),
    Index("ix_ledger_file_status", "status"),
)

ledger_passage = Table(
    "ledger_passage",
    metadata,
    Column("technical_id", String(ID_LEN), primary_key=True),
    Column("source_system", String(32), nullable=False),
    Column("source_record_key", String(255), nullable=False),
    Column("certification_type", String(255), nullable=False),
    Column("certification_code", String(100), nullable=False),
    Column("action", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("sent_hash", String(HASH_LEN)),  # data of the last file it went into
    Column("id_flux", String(FLUX_LEN)),  # that file
    Column("reason", Text),  # last rejection reason
    Column("claim_run", String(250)),
    Column("claim_hash", String(HASH_LEN)),
    Column("claimed_at", ts),
    Column("prev_status", String(16)),  # settled state before the claim (NULL: never sent)
    Column("prev_hash", String(HASH_LEN)),
    Column("prev_flux", String(FLUX_LEN)),
    Column("prev_reason", Text),
    Column("seen_hash", String(HASH_LEN)),  # data seen after acceptance, when it differs
    Column("seen_at", ts),
    Column("created_at", ts, nullable=False),
    Column("updated_at", ts, nullable=False),
    UniqueConstraint(
        "source_system",
        "source_record_key",
        "certification_type",
        "certification_code",
        name="uq_ledger_passage_natural_key",
    ),
)
PASSAGE_FILLFACTOR = 60  # PostgreSQL only, set by the migration

ledger_sending = Table(
    "ledger_sending",
    metadata,
    Column("id_flux", String(FLUX_LEN), primary_key=True),
    Column("technical_id", String(ID_LEN), primary_key=True),
    Column("data_hash", String(HASH_LEN), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("built_at", ts, nullable=False),
    Column("decided_at", ts),
)
