"""Ledger tables (SQLAlchemy Core) and the statuses a passage and a file go through.

Why Core and not the ORM: the ledger moves up to a million rows per annual run in
set-based statements and bulk loads; there is no object graph to manage. The
migrations in ``migrations/versions`` create exactly these tables; a test compares
them, so change both together.

A passage row is the *settled* state of one idTechnique (never sent, ACCEPTED,
REJECTED, FILE_REJECTED: ``sent_hash``, ``id_flux`` and ``reason`` tell of the last
decided sending) plus, while a run sends it, its claim: status ``CLAIMED``, the
run, the data being sent and ``prev_status`` to put it back exactly if the file
never reaches the CDC. ``ledger_sending`` is the history: one row each time a
passage went into a file, with the data hash sent and the CDC's outcome; a passage
has at most one sending still ``PENDING`` (a partial unique index says so).

Why a claimed passage does not follow its file through STAGED and DEPOSITED: the
CDC takes files, not passages, so those steps happen to whole files. Recording them
once on the file row, not on up to 200 000 passage rows each, keeps an annual run
to two writes per passage (the claim and the sending). :func:`passage_state` gives
the status an operator sees: a claimed passage is BUILT, STAGED or DEPOSITED as
its file is.

Why so few indexes: passages are only ever looked up by idTechnique (the primary
key), by natural key (unique constraint), through ``ledger_sending`` (primary key
``id_flux, technical_id``, and the pending index), and by holder key. With no other
index, and free space left in each page on PostgreSQL (fillfactor), the receipts'
status updates are heap-only (HOT) writes.

Why the holder-key index: one person entered twice in a source under two person ids
gets two idTechniques for one award. The delta's claims skip a candidate whose
holder key (keyed hash of the civil identity and the certification,
:func:`~cpf_deposit.ledger.ids.holder_keys`) is ACCEPTED or in flight under another
idTechnique, which needs an index probe per candidate, not a scan of the ledger.
It is a plain index, not a unique one: a copy the CDC rejected keeps its key
beside the copy sent after it, and passages recorded before migration 0003 or
without a full identity have none (NULL). Receipts never change the column, so
their status updates stay HOT.
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
    and_,
    case,
    literal,
    select,
    text,
)


class Status(StrEnum):
    """Status of a passage (and of one sending of it)."""

    CLAIMED = "CLAIMED"  # stored only: a run is sending it; its file tells how far it got
    BUILT = "BUILT"  # seen: claimed, its file not in the outbox yet
    PENDING = "PENDING"  # sendings only: in a file, no CDC outcome yet
    STAGED = "STAGED"  # seen: in a file in the outbox, awaiting manual deposit
    DEPOSITED = "DEPOSITED"  # seen: the operator deposited the file on the CDC portal
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
    Column("prev_status", String(16)),  # settled status before the claim (NULL: never sent)
    Column("seen_hash", String(HASH_LEN)),  # data seen after acceptance, when it differs
    Column("seen_at", ts),
    Column("created_at", ts, nullable=False),
    Column("updated_at", ts, nullable=False),
    # Keyed hash of (civil identity, certification) of the data claimed last (NULL:
    # recorded before migration 0003, or no full identity). Never the identity itself.
    Column("holder_key", String(HASH_LEN)),
    UniqueConstraint(
        "source_system",
        "source_record_key",
        "certification_type",
        "certification_code",
        name="uq_ledger_passage_natural_key",
    ),
    Index("ix_ledger_passage_holder_key", "holder_key"),
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
    Index(
        "uq_ledger_sending_pending",
        "technical_id",
        unique=True,
        postgresql_where=text("status = 'PENDING'"),
        sqlite_where=text("status = 'PENDING'"),
    ),
)


def passage_state():
    """Each passage as an operator sees it (a subquery): why the stored status is not enough.

    Columns: ``technical_id``; ``status``, where a claimed passage takes its file's
    step (BUILT until the file is staged, then STAGED, DEPOSITED); ``id_flux``, the
    file it is in now, else the last decided one.
    """
    p = ledger_passage.c
    pending = ledger_sending.alias("pending")
    in_file = ledger_file.alias("in_file")
    claimed = p.status == Status.CLAIMED.value
    on_file_step = in_file.c.status.in_((FileStatus.STAGED.value, FileStatus.DEPOSITED.value))
    status = case(
        (and_(claimed, on_file_step), in_file.c.status),
        (claimed, literal(Status.BUILT.value)),
        else_=p.status,
    )
    return (
        select(
            p.technical_id,
            status.label("status"),
            case((claimed, pending.c.id_flux), else_=p.id_flux).label("id_flux"),
        )
        .select_from(
            ledger_passage.outerjoin(
                pending,
                and_(
                    pending.c.technical_id == p.technical_id,
                    pending.c.status == Status.PENDING.value,
                ),
            ).outerjoin(in_file, in_file.c.id_flux == pending.c.id_flux)
        )
        .subquery("passage_state")
    )
