"""Status transitions of files and passages, each one transaction, each one guarded.

Every update names the state it expects (``WHERE status = ...``) and checks how many
rows moved: a transition that finds the rows elsewhere (another run, a receipt
applied twice) refuses or reports rather than overwrite. Only idTechniques, counts
and file names go to the logs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import (
    Connection,
    and_,
    column,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.exc import IntegrityError

from cpf_deposit.ledger.bulk import load_temp
from cpf_deposit.ledger.engine import LOCK_KEY, Ledger, LedgerError
from cpf_deposit.ledger.schema import (
    FileStatus,
    Status,
    ledger_file,
    ledger_passage,
    ledger_sending,
)

log = logging.getLogger(__name__)

P, F, S = ledger_passage.c, ledger_file.c, ledger_sending.c

# Statuses in the operator's log lines (French; the ledger keeps the English values).
_STATUS_FR = {
    "BUILT": "construit",
    "STAGED": "dans la boîte d'envoi",
    "ABORTED": "annulé",
    "EXPIRED": "expiré",
    "ACCEPTED": "accepté(s)",
    "REJECTED": "rejeté(s)",
    "FILE_REJECTED": "rejeté(s) avec le fichier",
}


def _fr(status) -> str:
    value = getattr(status, "value", status)
    return _STATUS_FR.get(value, value)


class ClaimLost(LedgerError):
    """A run's claim on passages was released (it was taken for dead): it must not stage.

    Terminal: a retry of the same task would find the claims gone all the same; the
    next run claims the passages again."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ids_table(conn: Connection, name: str, ids: Iterable[str]):
    """A temp table of (distinct) idTechniques, to be joined whole: no index, statistics."""
    load_temp(conn, name, [("technical_id", "VARCHAR(255)")], [(i,) for i in ids], analyze=True)
    return table(name, column("technical_id"))


# --------------------------------------------------------------------------------------
# Putting claims back
# --------------------------------------------------------------------------------------


def _pending_in(id_flux: str):
    """idTechniques of a file still awaiting the CDC (sendings' primary key)."""
    return select(S.technical_id).where(S.id_flux == id_flux, S.status == Status.PENDING)


def _revert_passages(conn: Connection, where, now: dt.datetime) -> int:
    """Give claimed passages back their settled status; never-sent ones go.

    The claim left ``sent_hash``, ``id_flux`` and ``reason`` alone, so the status is
    all there is to restore.
    """
    gone = conn.execute(delete(ledger_passage).where(where, P.prev_status.is_(None))).rowcount
    back = conn.execute(
        update(ledger_passage)
        .where(where)
        .values(
            status=P.prev_status,
            prev_status=None,
            claim_run=None,
            claim_hash=None,
            claimed_at=None,
            updated_at=now,
        )
    ).rowcount
    return gone + back


def release_claims(conn: Connection, run_id: str, now: dt.datetime) -> int:
    """Release a run's claims that are in none of its recorded files."""
    in_a_file = exists().where(S.technical_id == P.technical_id, S.status == Status.PENDING)
    where = and_(P.claim_run == run_id, P.status == Status.CLAIMED, ~in_a_file)
    n = _revert_passages(conn, where, now)
    if n:
        log.info("run %s : %d passage(s) réservé(s) rendu(s) au registre", run_id, n)
    return n


def revert_file(
    conn: Connection,
    id_flux: str,
    to: FileStatus,
    now: dt.datetime,
    reason: str,
    *,
    expected: FileStatus,
) -> int | None:
    """A file that will never be deposited (ABORTED, EXPIRED): its passages go back.

    Only from the status the caller saw (``expected``, BUILT or STAGED), checked in
    this transaction: a file deposited since must keep its passages, or they would
    be sent twice. None, and nothing changed, when the file is no longer there.
    """
    if to not in (FileStatus.ABORTED, FileStatus.EXPIRED):
        raise ValueError(to)
    if expected not in (FileStatus.BUILT, FileStatus.STAGED):
        raise ValueError(expected)
    run_id = conn.execute(
        update(ledger_file)
        .where(F.id_flux == id_flux, F.status == expected)
        .values(status=to, reason=reason, updated_at=now)
        .returning(F.run_id)
    ).scalar_one_or_none()
    if run_id is None:
        log.info("fichier %s : plus %s, donc pas %s", id_flux, _fr(expected), _fr(to))
        return None
    where = and_(
        P.status == Status.CLAIMED,
        P.claim_run == run_id,
        P.technical_id.in_(_pending_in(id_flux)),
    )
    n = _revert_passages(conn, where, now)
    conn.execute(
        update(ledger_sending)
        .where(S.id_flux == id_flux, S.status == Status.PENDING)
        .values(status=Status(to.value), decided_at=now)
    )
    log.info("fichier %s %s : %d passage(s) rendu(s) pour un prochain run", id_flux, _fr(to), n)
    return n


# --------------------------------------------------------------------------------------
# Build and stage
# --------------------------------------------------------------------------------------


def record_file(
    conn: Connection,
    run_id: str,
    written,
    technical_ids: Iterable[str],
    *,
    work_path: str,
    now: dt.datetime,
) -> None:
    """Record a complete file (BUILT) and a pending sending per passage, in one transaction.

    The passages must all be claimed by this run. A shared advisory lock (PostgreSQL;
    SQLite transactions are serial) keeps the recovery, which alone releases other
    runs' claims, out until commit. Raises :class:`ClaimLost` otherwise: the caller's
    transaction rolls back.
    """
    ids = list(technical_ids)
    if len(ids) != written.passages or len(set(ids)) != len(ids):
        raise LedgerError(
            f"file {written.path.name}: {written.passages} passages written but "
            f"{len(set(ids))} distinct idTechnique given"
        )
    conn.execute(
        insert(ledger_file).values(
            id_flux=written.id_flux,
            file_name=written.path.name,
            sha256=written.sha256,
            size=written.size,
            passages=written.passages,
            certifications=json.dumps(written.certifications, sort_keys=True),
            horodatage=written.horodatage,
            run_id=run_id,
            status=FileStatus.BUILT,
            work_path=work_path,
            built_at=now,
            updated_at=now,
        )
    )
    if conn.dialect.name == "postgresql":
        # keeps the recovery out (see above); then sorts 200 000 ids in memory
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock_shared({LOCK_KEY})")
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    in_file = _ids_table(conn, "tmp_file_ids", ids)
    try:
        held = conn.execute(
            insert(ledger_sending).from_select(
                ["id_flux", "technical_id", "data_hash", "status", "built_at"],
                select(
                    literal(written.id_flux, S.id_flux.type),
                    P.technical_id,
                    P.claim_hash,
                    literal(Status.PENDING.value, S.status.type),
                    literal(now, S.built_at.type),
                )
                .select_from(in_file.join(ledger_passage, P.technical_id == in_file.c.technical_id))
                .where(P.status == Status.CLAIMED, P.claim_run == run_id)
                # in key order: each index page is written once, not once per row
                .order_by(P.technical_id),
            )
        ).rowcount
    except IntegrityError as exc:  # uq_ledger_sending_pending: already in another file
        raise LedgerError(
            f"run {run_id}: some passages of {written.path.name} are already in another "
            "file awaiting the CDC; the file is not recorded"
        ) from exc
    if held != len(ids):
        raise ClaimLost(
            f"run {run_id}: {len(ids) - held} passage(s) of {written.path.name} are no longer "
            "claimed by this run (released by a recovery); the file is not staged"
        )


def mark_file_staged(
    conn: Connection, id_flux: str, outbox: str, now: dt.datetime, run_id: str | None = None
) -> bool:
    """A BUILT file becomes STAGED, and so its passages; False when it is not BUILT (any more).

    Only the file row changes (see :mod:`cpf_deposit.ledger.schema`). Raises
    :class:`ClaimLost` when fewer of its sendings await the CDC than it holds passages:
    some claims were released meanwhile (roll back, then abort the file).
    """
    cond = [F.id_flux == id_flux, F.status == FileStatus.BUILT]
    if run_id is not None:
        cond.append(F.run_id == run_id)
    row = conn.execute(select(F.run_id, F.passages).where(*cond)).first()
    if row is None:
        return False
    conn.execute(
        update(ledger_file)
        .where(F.id_flux == id_flux)
        .values(status=FileStatus.STAGED, staged_at=now, outbox=outbox, updated_at=now)
    )
    # A pending sending always has its passage claimed by the file's run: every step
    # that releases a claim (recovery, revert, receipt) ends the sending with it.
    held = conn.execute(
        select(func.count())
        .select_from(ledger_sending)
        .where(S.id_flux == id_flux, S.status == Status.PENDING)
    ).scalar_one()
    if held != row.passages:
        raise ClaimLost(f"file {id_flux}: {row.passages - held} passage(s) no longer claimed")
    return True


# --------------------------------------------------------------------------------------
# Deposit and receipts
# --------------------------------------------------------------------------------------


@dataclass
class FileRecord:
    """A ledger file row (no personal data)."""

    id_flux: str
    file_name: str
    sha256: str
    size: int
    passages: int
    certifications: dict[str, int]
    horodatage: str
    run_id: str
    status: str
    work_path: str | None
    outbox: str | None
    reason: str | None
    deposited_by: str | None
    deposited_at: dt.datetime | None
    built_at: dt.datetime
    staged_at: dt.datetime | None


def _file_from_row(row) -> FileRecord:
    m = row._mapping
    return FileRecord(
        id_flux=m["id_flux"],
        file_name=m["file_name"],
        sha256=m["sha256"],
        size=m["size"],
        passages=m["passages"],
        certifications=json.loads(m["certifications"]),
        horodatage=m["horodatage"],
        run_id=m["run_id"],
        status=m["status"],
        work_path=m["work_path"],
        outbox=m["outbox"],
        reason=m["reason"],
        deposited_by=m["deposited_by"],
        deposited_at=m["deposited_at"],
        built_at=m["built_at"],
        staged_at=m["staged_at"],
    )


def find_file(conn: Connection, name_or_id: str) -> FileRecord | None:
    """A file by idFlux, file name, or manifest name."""
    name = name_or_id.removesuffix(".manifest.json")
    row = conn.execute(
        select(ledger_file).where(or_(F.id_flux == name, F.file_name == name))
    ).first()
    return _file_from_row(row) if row is not None else None


def files_with_status(conn: Connection, *statuses: str) -> list[FileRecord]:
    rows = conn.execute(select(ledger_file).where(F.status.in_(statuses)).order_by(F.built_at))
    return [_file_from_row(r) for r in rows]


def mark_deposited(
    ledger: Ledger, id_flux: str, by: str, at: dt.datetime | None = None
) -> FileRecord:
    """The operator deposited a STAGED file on the CDC portal; idempotent for the same file."""
    at = at or utcnow()
    if not by or not by.strip():
        raise LedgerError("a deposit must name who made it")
    with ledger.begin() as conn:
        rec = find_file(conn, id_flux)
        if rec is None:
            raise LedgerError(f"unknown file or idFlux: {id_flux}")
        if rec.status == FileStatus.DEPOSITED:
            return rec
        if rec.status != FileStatus.STAGED:
            raise LedgerError(f"file {rec.file_name} is {rec.status}, not STAGED: not recorded")
        _deposit(conn, rec.id_flux, by, at)
        return find_file(conn, rec.id_flux)  # type: ignore[return-value]


def _deposit(conn: Connection, id_flux: str, by: str, at: dt.datetime) -> None:
    conn.execute(
        update(ledger_file)
        .where(F.id_flux == id_flux, F.status == FileStatus.STAGED)
        .values(status=FileStatus.DEPOSITED, deposited_by=by, deposited_at=at, updated_at=at)
    )


@dataclass
class Outcome:
    """What a receipt transition did, by idTechnique counts (and the odd ones listed)."""

    id_flux: str
    applied: int = 0
    already: int = 0  # already in that final state for that file
    unknown: list[str] = field(default_factory=list)  # not a passage of that file
    superseded: list[str] = field(default_factory=list)  # since sent again in a newer file


def _receipt_file(conn: Connection, id_flux: str, at: dt.datetime) -> FileRecord:
    rec = find_file(conn, id_flux)
    if rec is None:
        raise LedgerError(f"unknown idFlux: {id_flux}")
    if rec.status in (FileStatus.BUILT, FileStatus.ABORTED, FileStatus.EXPIRED):
        raise LedgerError(f"file {rec.file_name} is {rec.status}: it was never deposited")
    if rec.status == FileStatus.STAGED:  # a receipt proves the deposit
        _deposit(conn, rec.id_flux, "accusé de traitement", at)
    return rec


def _decide(
    ledger: Ledger,
    id_flux: str,
    decisions: Mapping[str, str | None],
    to: Status,
    at: dt.datetime | None,
) -> Outcome:
    at = at or utcnow()
    with ledger.begin() as conn:
        _receipt_file(conn, id_flux, at)
        out = _decide_in(conn, id_flux, decisions, to, at)
    log.info(
        "accusé de %s : %d %s, %d déjà enregistré(s), %d inconnu(s), %d remplacé(s)",
        id_flux,
        out.applied,
        _fr(to),
        out.already,
        len(out.unknown),
        len(out.superseded),
    )
    return out


def _decide_in(
    conn: Connection,
    id_flux: str,
    decisions: Mapping[str, str | None],
    to: Status,
    at: dt.datetime,
) -> Outcome:
    out = Outcome(id_flux)
    tmp = "tmp_decisions"
    load_temp(
        conn,
        tmp,
        [("technical_id", "VARCHAR(255) PRIMARY KEY"), ("reason", "TEXT")],
        list(decisions.items()),
    )
    t = table(tmp, column("technical_id"), column("reason"))
    sent = dict(
        conn.execute(
            select(S.technical_id, S.status).where(
                S.id_flux == id_flux, S.technical_id.in_(select(t.c.technical_id))
            )
        ).all()
    )
    out.unknown = sorted(set(decisions) - set(sent))
    out.already = sum(1 for s in sent.values() if s == to)
    decided = select(t.c.technical_id)
    # The passages first: their pending sending in this file is what marks them.
    preason = select(t.c.reason).where(t.c.technical_id == P.technical_id).scalar_subquery()
    out.applied = conn.execute(
        update(ledger_passage)
        .where(
            P.status == Status.CLAIMED,
            P.technical_id.in_(_pending_in(id_flux).where(S.technical_id.in_(decided))),
        )
        .values(
            status=to,
            reason=preason,
            id_flux=id_flux,
            sent_hash=P.claim_hash,
            prev_status=None,
            claim_run=None,
            claim_hash=None,
            claimed_at=None,
            seen_hash=None,
            seen_at=None,
            updated_at=at,
        )
    ).rowcount
    reason = select(t.c.reason).where(t.c.technical_id == S.technical_id).scalar_subquery()
    conn.execute(
        update(ledger_sending)
        .where(S.id_flux == id_flux, S.technical_id.in_(decided), S.status == Status.PENDING)
        .values(status=to, reason=reason, decided_at=at)
    )
    # Sent again since (claimed for a newer file, or decided in one): superseded.
    newer = conn.execute(
        select(P.technical_id).where(
            P.technical_id.in_(decided),
            or_(P.status == Status.CLAIMED, P.id_flux != id_flux),
        )
    ).scalars()
    out.superseded = sorted(set(newer) & set(sent))
    _maybe_processed(conn, id_flux, at)
    return out


def _maybe_processed(conn: Connection, id_flux: str, at: dt.datetime) -> None:
    left = conn.execute(
        select(func.count())
        .select_from(ledger_sending)
        .where(S.id_flux == id_flux, S.status == Status.PENDING)
    ).scalar_one()
    if left == 0:
        conn.execute(
            update(ledger_file)
            .where(F.id_flux == id_flux, F.status == FileStatus.DEPOSITED)
            .values(status=FileStatus.PROCESSED, processed_at=at, updated_at=at)
        )


def mark_accepted(
    ledger: Ledger, id_flux: str, technical_ids: Iterable[str], at: dt.datetime | None = None
) -> Outcome:
    """The CDC stored these passages of file ``id_flux`` (also "existe déjà en base")."""
    return _decide(ledger, id_flux, dict.fromkeys(technical_ids), Status.ACCEPTED, at)


def mark_rejected(
    ledger: Ledger,
    id_flux: str,
    reasons: Mapping[str, str] | Iterable[tuple[str, str]],
    at: dt.datetime | None = None,
) -> Outcome:
    """The CDC refused these passages (idTechnique -> messageErreur): sent again once changed."""
    return _decide(ledger, id_flux, dict(reasons), Status.REJECTED, at)


def mark_file_rejected(
    ledger: Ledger, id_flux: str, reason: str, at: dt.datetime | None = None
) -> Outcome:
    """The CDC refused the whole file (XSD errors): all its pending passages go again."""
    at = at or utcnow()
    with ledger.begin() as conn:
        out = apply_file_rejection(conn, id_flux, reason, at)
    return out


def apply_file_rejection(conn: Connection, id_flux: str, reason: str, at: dt.datetime) -> Outcome:
    """:func:`mark_file_rejected` inside the caller's transaction."""
    rec = _receipt_file(conn, id_flux, at)
    ids = conn.execute(
        select(S.technical_id).where(S.id_flux == id_flux, S.status == Status.PENDING)
    ).scalars()
    out = _decide_in(conn, id_flux, dict.fromkeys(ids, reason), Status.FILE_REJECTED, at)
    conn.execute(
        update(ledger_file)
        .where(F.id_flux == id_flux)
        .values(status=FileStatus.FILE_REJECTED, reason=reason, updated_at=at)
    )
    log.info("fichier %s rejeté par la CDC : %d passage(s)", rec.file_name, out.applied)
    return out


def apply_receipt_results(
    conn: Connection,
    id_flux: str,
    accepted: Mapping[str, str | None],
    rejected: Mapping[str, str],
    at: dt.datetime,
) -> tuple[Outcome, Outcome]:
    """A per-passage receipt, both sections, inside the caller's (single) transaction.

    ``accepted`` maps idTechnique to a reason kept on the sending (None, or the
    "existe déjà en base" message); ``rejected`` to the rejection reason.
    """
    _receipt_file(conn, id_flux, at)
    ok = _decide_in(conn, id_flux, accepted, Status.ACCEPTED, at)
    ko = _decide_in(conn, id_flux, rejected, Status.REJECTED, at)
    return ok, ko


# --------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------


def passage_counts(ledger: Ledger) -> dict[str, int]:
    """Passages by the status an operator sees (a claimed one as its file is).

    The same counts as grouping :func:`passage_state`, without joining every passage
    to its sending (seconds a page load at a million): a staged file's passages all
    await the deposit, and only deposited files are counted sending by sending.
    """
    with ledger.engine.connect() as conn:
        counts = dict(conn.execute(select(P.status, func.count()).group_by(P.status)).all())
        claimed = counts.pop(Status.CLAIMED, 0)
        staged = conn.execute(
            select(func.coalesce(func.sum(F.passages), 0)).where(F.status == FileStatus.STAGED)
        ).scalar_one()
        deposited = conn.execute(
            select(func.count())
            .select_from(ledger_sending.join(ledger_file, F.id_flux == S.id_flux))
            .where(F.status == FileStatus.DEPOSITED, S.status == Status.PENDING)
        ).scalar_one()
    built = claimed - staged - deposited
    counts |= {Status.BUILT: built, Status.STAGED: staged, Status.DEPOSITED: deposited}
    return {s: n for s, n in counts.items() if n}


def changed_after_acceptance(ledger: Ledger) -> list[str]:
    """idTechniques accepted by the CDC whose source data changed since (operator list)."""
    with ledger.engine.connect() as conn:
        return list(
            conn.execute(
                select(P.technical_id)
                .where(P.status == Status.ACCEPTED, P.seen_hash.is_not(None))
                .order_by(P.technical_id)
            ).scalars()
        )
