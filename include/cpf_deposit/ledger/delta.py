"""Which candidate passages a run sends, claimed in the ledger so no other run sends them.

XSD 1.1.2 cannot update a passage: an accepted one sent again is answered "existe
déjà en base", a rejected one is not stored. So a run sends a passage never sent,
a REJECTED one whose data changed since (corrected at the source), and the passages
of a file the CDC refused as a whole; never an ACCEPTED one. Accepted passages whose
data changed are listed for the operator (a correction needs XSD 1.1.5 deletion or
the CDC's help).

One person entered twice in a source (two person ids) has two idTechniques for one
award. So a passage is not sent either while its holder key (keyed hash of the civil
identity and the certification, :func:`~cpf_deposit.ledger.ids.holder_keys`) is
ACCEPTED or in flight (CLAIMED) under another idTechnique of another source record;
it is listed with that idTechnique. A copy the CDC rejected does not hold the other
back: the other may be the right one. Within a chunk the first copy of a holder is
the one considered (the identity gate quarantines such twins before the delta).

Claims are what make overlapping runs safe: a passage is sent by the run whose
``INSERT ... ON CONFLICT DO NOTHING`` (new) or ``UPDATE ... WHERE status IN
(REJECTED, FILE_REJECTED)`` (resend) changed the row; any other run sees it CLAIMED.
The stream is processed in chunks, one short transaction each, so memory stays flat
and other runs are never blocked for long.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from sqlalchemy import and_, column, exists, func, literal, or_, select, table, update
from sqlalchemy.exc import IntegrityError

from cpf_deposit.ledger.bulk import load_temp
from cpf_deposit.ledger.engine import Ledger
from cpf_deposit.ledger.ids import data_hash, holder_keys
from cpf_deposit.ledger.runs import heartbeat
from cpf_deposit.ledger.schema import (
    RESENDABLE,
    Action,
    FileStatus,
    Status,
    ledger_file,
    ledger_passage,
    ledger_sending,
)
from cpf_deposit.ledger.status import utcnow
from cpf_deposit.model import Passage

log = logging.getLogger(__name__)
P = ledger_passage.c
CHUNK = 20_000
ANALYZE_AFTER = 10_000  # new passages claimed by one run: statistics are stale


class Reason:
    """Why a passage is sent (``SENT_*``) or skipped; the values appear in reports."""

    SENT_NEW = "new"
    SENT_CORRECTED = "corrected_after_rejection"
    SENT_FILE_REJECTED = "file_rejected_by_cdc"
    ACCEPTED = "already_accepted"
    CHANGED_AFTER_ACCEPTANCE = "changed_after_acceptance"
    PENDING = "awaiting_deposit_or_receipt"
    CHANGED_WHILE_PENDING = "changed_while_awaiting_receipt"
    REJECTED_UNCHANGED = "rejected_unchanged"
    CLAIMED_ELSEWHERE = "claimed_by_another_run"
    DUPLICATE = "duplicate_in_stream"
    NO_PROVENANCE = "no_source_provenance"
    ID_COLLISION = "technical_id_of_another_passage"
    ID_MISMATCH = "passage_known_under_another_technical_id"
    SAME_HOLDER_OTHER_ID = "same_holder_under_another_technical_id"


# Why a passage is sent, in French (the skip reasons are in cpf_deposit.summaries).
SENT_FR = {
    Reason.SENT_NEW: "nouveaux",
    Reason.SENT_CORRECTED: "corrigés après rejet",
    Reason.SENT_FILE_REJECTED: "d'un fichier rejeté par la CDC",
}


def _counts_fr(counts: Counter) -> str:
    """``{'new': 667, 'already_accepted': 3}`` → ``667 nouveaux, 3 déjà acceptés``."""
    from cpf_deposit.progress import count_fr
    from cpf_deposit.summaries import SKIP_REASONS

    words = {**SKIP_REASONS, **SENT_FR}
    parts = [
        f"{count_fr(n)} {words.get(k, k)}"
        for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if n
    ]
    return ", ".join(parts) or "aucun passage"


# Skips worth naming one by one to the operator (the rest are counted only).
LISTED = frozenset(
    {
        Reason.CHANGED_AFTER_ACCEPTANCE,
        Reason.CHANGED_WHILE_PENDING,
        Reason.REJECTED_UNCHANGED,
        Reason.NO_PROVENANCE,
        Reason.ID_COLLISION,
        Reason.ID_MISMATCH,
        Reason.DUPLICATE,
        Reason.SAME_HOLDER_OTHER_ID,
    }
)
SENT = frozenset({Reason.SENT_NEW, Reason.SENT_CORRECTED, Reason.SENT_FILE_REJECTED})


@dataclass
class DeltaSelection:
    """An iterator of the passages to send, claimed for ``run_id`` as they are yielded.

    Consume it once (e.g. feed it to ``write_flux``); ``counts`` then tells, by reason,
    how many were sent and skipped, and ``listed`` names the skipped passages an
    operator must look at (idTechnique, or the source key when there is none);
    ``same_holder`` gives, for each passage skipped as the same holder under another
    idTechnique, that other idTechnique.
    """

    ledger: Ledger = field(repr=False)
    passages: Iterable[Passage] = field(repr=False)
    run_id: str
    claim: bool = True
    chunk: int = CHUNK
    now: dt.datetime | None = None
    counts: Counter = field(default_factory=Counter)
    listed: dict[str, list[str]] = field(default_factory=dict)
    same_holder: dict[str, str] = field(default_factory=dict)
    _names: dict[str, str] = field(default_factory=dict, repr=False)  # folded, for holder keys

    def __iter__(self) -> Iterator[Passage]:
        it = iter(self.passages)
        while batch := list(islice(it, self.chunk)):
            yield from self._select(batch)
        log.info("sélection du run %s : %s", self.run_id, _counts_fr(self.counts))
        if self.same_holder:
            pairs = [f"{t} (titulaire déjà sous {o})" for t, o in self.same_holder.items()]
            more = len(pairs) - SHOWN
            log.warning(
                "%d passage(s) non envoyé(s) : même titulaire et même certification déjà "
                "acceptés par la CDC ou en cours d'envoi sous un autre idTechnique (personne "
                "en double dans la source ?) : %s%s",
                len(pairs),
                ", ".join(pairs[:SHOWN]),
                f" et {more} autre(s)" if more > 0 else "",
            )
        if self.claim and self.counts[Reason.SENT_NEW] >= ANALYZE_AFTER:
            self.ledger.analyze(ledger_passage.name)

    @property
    def sent(self) -> int:
        return sum(n for r, n in self.counts.items() if r in SENT)

    @property
    def skipped(self) -> dict[str, int]:
        return {r: n for r, n in self.counts.items() if r not in SENT}

    def _note(self, reason: str, who: str | None) -> None:
        self.counts[reason] += 1
        if reason in LISTED:
            self.listed.setdefault(reason, []).append(who or "(sans identifiant)")

    def _note_same_holder(self, tid: str, other: str) -> None:
        self._note(Reason.SAME_HOLDER_OTHER_ID, tid)
        self.same_holder[tid] = other

    def _select(self, batch: list[Passage]) -> list[Passage]:
        key = self.ledger.id_key
        now = self.now or utcnow()
        order: list[Passage] = []
        ids: set[str] = set()
        for p in batch:
            if not p.source_system or not p.source_record_key or not p.technical_id:
                self._note(Reason.NO_PROVENANCE, p.technical_id)
                continue
            if p.technical_id in ids:
                self._note(Reason.DUPLICATE, p.technical_id)
                continue
            ids.add(p.technical_id)
            order.append(p)
        if not order:
            return []
        # A second source record of a holder in this chunk is held back (never claimed
        # here): ``held`` maps its idTechnique to the first one's.
        rows: dict[str, tuple] = {}
        held: dict[str, str] = {}
        first_of: dict[str, Passage] = {}
        if len(self._names) > NAMES_KEPT:
            self._names.clear()
        for p, holder in zip(order, holder_keys(key, order, self._names), strict=True):
            hold = None
            if holder is not None:
                first = first_of.setdefault(holder, p)
                if first is not p and (first.source_system, first.source_record_key) != (
                    p.source_system,
                    p.source_record_key,
                ):
                    held[p.technical_id] = first.technical_id
                    hold = "1"
            rows[p.technical_id] = (
                p.technical_id,
                data_hash(key, p),
                p.source_system,
                p.source_record_key,
                p.certification_type,
                p.certification_code,
                holder,
                hold,
            )
        with self.ledger.begin() as conn:
            if self.claim:
                heartbeat(conn, self.run_id, now)
            chosen = self._claim(conn, rows, held, now)
        return [p for p in order if p.technical_id in chosen]

    def _claim(
        self, conn, rows: dict[str, tuple], held: dict[str, str], now: dt.datetime
    ) -> set[str]:
        """Decide on one chunk; claim what is sent (unless a dry run). The ids chosen.

        New passages are inserted first, in one statement that skips the known ones
        and those whose holder is taken under another idTechnique: when all are
        inserted (a first run over a window) nothing else is read.
        """
        load_temp(conn, "tmp_delta", TMP_COLUMNS, list(rows.values()))
        if held and self.claim:  # an older twin may be in this chunk without its key yet
            conn.execute(_fill_holder_keys())
        inserted = self._insert_new(conn, now) if self.claim else set()
        if inserted:
            self.counts[Reason.SENT_NEW] += len(inserted)
        if len(inserted) == len(rows):
            return inserted
        known = conn.execute(_known_query(self.run_id)).tuples().all()
        resend: dict[str, str] = {}
        changed_accepted = False
        keyless = False  # a passage recorded before holder keys, read again unchanged
        for tid, status, same_key, same_sent, same_claim, mine, file_status, no_key in known:
            if tid in inserted:
                continue
            if not same_key:
                self._note(Reason.ID_COLLISION, tid)
                continue
            if no_key and (
                (status == Status.ACCEPTED and same_sent)
                or (status == Status.CLAIMED and same_claim)
            ):
                keyless = True
            if status == Status.CLAIMED:
                # In a file in the outbox or deposited, whoever staged it (an Airflow
                # retry keeps its run id); else claimed by a running run, maybe this one.
                if file_status in (FileStatus.STAGED, FileStatus.DEPOSITED):
                    self._note(Reason.PENDING if same_claim else Reason.CHANGED_WHILE_PENDING, tid)
                elif mine:
                    self._note(Reason.DUPLICATE, tid)
                else:
                    self._note(Reason.CLAIMED_ELSEWHERE, tid)
            elif status == Status.ACCEPTED:
                if same_sent:
                    self._note(Reason.ACCEPTED, tid)
                else:
                    self._note(Reason.CHANGED_AFTER_ACCEPTANCE, tid)
                    changed_accepted = True
            elif status == Status.FILE_REJECTED:
                resend[tid] = Reason.SENT_FILE_REJECTED
            elif status == Status.REJECTED:
                if same_sent:
                    self._note(Reason.REJECTED_UNCHANGED, tid)
                else:
                    resend[tid] = Reason.SENT_CORRECTED
        seen = {row[0] for row in known}
        new = [tid for tid in rows if tid not in inserted and tid not in seen]
        if not self.claim:  # dry run: report what would be sent, claim nothing
            taken = _holders_taken(conn, held, [*new, *resend])
            for tid in new:
                if tid in taken:
                    self._note_same_holder(tid, taken[tid])
                else:
                    self._note(Reason.SENT_NEW, tid)
            for tid, why in resend.items():
                if tid in taken:
                    self._note_same_holder(tid, taken[tid])
                else:
                    self._note(why, tid)
            return (set(new) | set(resend)) - set(taken)
        if changed_accepted:
            conn.execute(_see_changes_after_acceptance(now))
        if keyless:
            conn.execute(_fill_holder_keys())
        chosen = inserted
        got: set[str] = set()
        if resend:
            got = set(conn.execute(self._claim_resends(now)).scalars())
            chosen |= got & set(resend)
        missed = [tid for tid in resend if tid not in got]
        taken = _holders_taken(conn, held, [*new, *missed])
        # Not inserted yet unknown: its holder is taken under another idTechnique, or
        # its natural key is in the ledger under another id.
        for tid in new:
            if tid in taken:
                self._note_same_holder(tid, taken[tid])
            else:
                self._note(Reason.ID_MISMATCH, tid)
        for tid, why in resend.items():
            if tid in got:
                self._note(why, tid)
            elif tid in taken:
                self._note_same_holder(tid, taken[tid])
            else:
                self._note(Reason.CLAIMED_ELSEWHERE, tid)
        return chosen

    def _insert_new(self, conn, now: dt.datetime) -> set[str]:
        """Claim the chunk's new passages; a row another run inserted first is skipped.

        Why two tries: a plain INSERT is about twice as fast as ``ON CONFLICT DO
        NOTHING`` on PostgreSQL, and a conflict needs another run claiming the same
        new passages in the same instant. That rare case rolls back to a savepoint
        and takes the slow, conflict-proof statement.
        """
        try:
            with conn.begin_nested():
                return set(conn.execute(self._new_rows(conn, now, on_conflict=False)).scalars())
        except IntegrityError:
            return set(conn.execute(self._new_rows(conn, now, on_conflict=True)).scalars())

    def _new_rows(self, conn, now: dt.datetime, *, on_conflict: bool):
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        src = select(
            D.technical_id,
            D.source_system,
            D.source_record_key,
            D.certification_type,
            D.certification_code,
            literal(Action.CREATION.value, P.action.type),
            literal(Status.CLAIMED.value, P.status.type),
            literal(self.run_id, P.claim_run.type),
            D.data_hash,
            D.holder_key,
            literal(now, P.claimed_at.type),
            literal(now, P.created_at.type),
            literal(now, P.updated_at.type),
        ).where(
            ~exists().where(P.technical_id == D.technical_id),
            D.hold.is_(None),
            ~_holder_taken(),
        )
        stmt = insert(ledger_passage).from_select(
            [
                "technical_id",
                "source_system",
                "source_record_key",
                "certification_type",
                "certification_code",
                "action",
                "status",
                "claim_run",
                "claim_hash",
                "holder_key",
                "claimed_at",
                "created_at",
                "updated_at",
            ],
            src,
        )
        if on_conflict:
            stmt = stmt.on_conflict_do_nothing()
        return stmt.returning(P.technical_id)

    def _claim_resends(self, now: dt.datetime):
        """Claim the chunk's rejected passages whose data changed, and those of refused files.

        The conditions are the delta's rules again, so a passage that a receipt or
        another run changed since it was read is left alone. The holder key becomes
        that of the data claimed (a correction may have changed the identity).
        """
        return (
            update(ledger_passage)
            .where(
                D.technical_id == P.technical_id,
                D.source_system == P.source_system,
                D.source_record_key == P.source_record_key,
                D.certification_type == P.certification_type,
                D.certification_code == P.certification_code,
                P.status.in_(RESENDABLE),
                or_(P.status == Status.FILE_REJECTED, D.data_hash != P.sent_hash),
                D.hold.is_(None),
                ~_holder_taken(),
            )
            .values(
                status=Status.CLAIMED,
                prev_status=P.status,
                claim_run=self.run_id,
                claim_hash=D.data_hash,
                holder_key=D.holder_key,
                claimed_at=now,
                updated_at=now,
            )
            .returning(P.technical_id)
        )


TMP_COLUMNS = [  # no index: the statements below all drive their joins from it
    (c, "VARCHAR(255)")
    for c in (
        "technical_id",
        "data_hash",
        "source_system",
        "source_record_key",
        "certification_type",
        "certification_code",
        "holder_key",
        "hold",  # '1': a later copy of a holder in this chunk, never claimed here
    )
]
TMP_DELTA = table("tmp_delta", *(column(c) for c, _ in TMP_COLUMNS))
D = TMP_DELTA.c
SHOWN = 50  # idTechniques named in the log line of same-holder skips
NAMES_KEPT = 200_000  # folded names a run keeps from one chunk to the next
OTHER = ledger_passage.alias("other")
T = OTHER.c  # the twin: another passage of the same holder
HOLDING = (Status.ACCEPTED.value, Status.CLAIMED.value)  # a REJECTED copy holds nothing back


def _holder_taken_where():
    """Another source record of the candidate's holder is ACCEPTED or in flight.

    Same natural key under another idTechnique is not a twin but an id mismatch
    (reported as such). The holder-key index makes this one probe per candidate.
    """
    return and_(
        D.holder_key.is_not(None),
        T.holder_key == D.holder_key,
        T.technical_id != D.technical_id,
        or_(T.source_system != D.source_system, T.source_record_key != D.source_record_key),
        T.status.in_(HOLDING),
    )


def _holder_taken():
    return exists().where(_holder_taken_where()).correlate_except(OTHER)


def _holders_taken(conn, held: dict[str, str], tids: list[str]) -> dict[str, str]:
    """Of ``tids``, those whose holder is taken: the idTechnique that holds it.

    A copy held back in this chunk names the first copy; the others are looked up
    in the ledger in one statement for the whole chunk (only when there is one to
    explain, so a chunk all sent or all known reads nothing more).
    """
    taken = {t: held[t] for t in tids if t in held}
    rest = [t for t in tids if t not in taken]
    if rest:
        found = dict(
            conn.execute(
                select(D.technical_id, func.min(T.technical_id))
                .select_from(TMP_DELTA.join(OTHER, _holder_taken_where()))
                .group_by(D.technical_id)
            ).all()
        )
        taken.update((t, found[t]) for t in rest if t in found)
    return taken


def _fill_holder_keys():
    """Give passages recorded before holder keys theirs, read again with unchanged data.

    Only ACCEPTED ones (with the data accepted) and claimed ones (with the data
    claimed): they are the ones that hold another copy back. Receipts never change
    the column, so this is the only write of it besides claims.
    """
    return (
        update(ledger_passage)
        .where(
            D.technical_id == P.technical_id,
            P.holder_key.is_(None),
            D.holder_key.is_not(None),
            D.source_system == P.source_system,
            D.source_record_key == P.source_record_key,
            D.certification_type == P.certification_type,
            D.certification_code == P.certification_code,
            or_(
                and_(P.status == Status.ACCEPTED, D.data_hash == P.sent_hash),
                and_(P.status == Status.CLAIMED, D.data_hash == P.claim_hash),
            ),
        )
        .values(holder_key=D.holder_key)
    )


def _known_query(run_id: str):
    """The chunk's passages already in the ledger, compared in the database.

    One row each: idTechnique, stored status, then whether the natural key is the
    same, whether the data is what was last decided on (``sent_hash``) and what is
    being sent now (``claim_hash``), whether this run holds the claim, the step of
    the file a claimed passage is in, and whether the row lacks the holder key the
    candidate has (recorded before holder keys). Comparing there, not in Python,
    keeps an annual run over a year already sent as fast as one over new passages.
    """
    pending = ledger_sending.alias("pending")
    in_file = ledger_file.alias("in_file")
    same_key = and_(
        D.source_system == P.source_system,
        D.source_record_key == P.source_record_key,
        D.certification_type == P.certification_type,
        D.certification_code == P.certification_code,
    )
    return select(
        P.technical_id,
        P.status,
        same_key,
        D.data_hash == P.sent_hash,
        D.data_hash == P.claim_hash,
        P.claim_run == run_id,
        in_file.c.status,
        and_(P.holder_key.is_(None), D.holder_key.is_not(None)),
    ).select_from(
        ledger_passage.join(TMP_DELTA, D.technical_id == P.technical_id)
        .outerjoin(
            pending,
            and_(
                P.status == Status.CLAIMED.value,
                pending.c.technical_id == P.technical_id,
                pending.c.status == Status.PENDING.value,
            ),
        )
        .outerjoin(in_file, in_file.c.id_flux == pending.c.id_flux)
    )


def _see_changes_after_acceptance(now: dt.datetime):
    """Note on accepted passages that the source now says something else (operator list)."""
    return (
        update(ledger_passage)
        .where(
            D.technical_id == P.technical_id,
            P.status == Status.ACCEPTED,
            D.data_hash != P.sent_hash,
        )
        .values(seen_hash=D.data_hash, seen_at=now)
    )


def select_delta(
    ledger: Ledger,
    passages: Iterable[Passage],
    run_id: str,
    *,
    dry_run: bool = False,
    chunk: int = CHUNK,
    now: dt.datetime | None = None,
) -> DeltaSelection:
    """The passages of ``passages`` this run must send, claimed lazily as they are read.

    ``dry_run`` claims nothing and changes nothing: it only counts what would be sent.
    """
    return DeltaSelection(ledger, passages, run_id, claim=not dry_run, chunk=chunk, now=now)
