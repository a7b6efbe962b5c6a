"""Which candidate passages a run sends, claimed in the ledger so no other run sends them.

XSD 1.1.2 cannot update a passage: an accepted one sent again is answered "existe
déjà en base", a rejected one is not stored. So a run sends a passage never sent,
a REJECTED one whose data changed since (corrected at the source), and the passages
of a file the CDC refused as a whole; never an ACCEPTED one. Accepted passages whose
data changed are listed for the operator (a correction needs XSD 1.1.5 deletion or
the CDC's help).

Claims are what make overlapping runs safe: a passage is sent by the run whose
``INSERT ... ON CONFLICT DO NOTHING`` (new) or ``UPDATE ... WHERE status IN
(REJECTED, FILE_REJECTED)`` (resend) changed the row; any other run sees it BUILT.
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

from sqlalchemy import and_, column, literal, or_, select, table, update

from cpf_deposit.ledger.bulk import load_temp
from cpf_deposit.ledger.engine import Ledger
from cpf_deposit.ledger.ids import data_hash
from cpf_deposit.ledger.runs import heartbeat
from cpf_deposit.ledger.schema import Action, Status, ledger_passage
from cpf_deposit.ledger.status import utcnow
from cpf_deposit.model import Passage

log = logging.getLogger(__name__)
P = ledger_passage.c
CHUNK = 5_000


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
    }
)
SENT = frozenset({Reason.SENT_NEW, Reason.SENT_CORRECTED, Reason.SENT_FILE_REJECTED})


@dataclass
class DeltaSelection:
    """An iterator of the passages to send, claimed for ``run_id`` as they are yielded.

    Consume it once (e.g. feed it to ``write_flux``); ``counts`` then tells, by reason,
    how many were sent and skipped, and ``listed`` names the skipped passages an
    operator must look at (idTechnique, or the source key when there is none).
    """

    ledger: Ledger = field(repr=False)
    passages: Iterable[Passage] = field(repr=False)
    run_id: str
    claim: bool = True
    chunk: int = CHUNK
    now: dt.datetime | None = None
    counts: Counter = field(default_factory=Counter)
    listed: dict[str, list[str]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Passage]:
        it = iter(self.passages)
        while batch := list(islice(it, self.chunk)):
            yield from self._select(batch)
        log.info("delta for run %s: %s", self.run_id, dict(self.counts))

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

    def _select(self, batch: list[Passage]) -> list[Passage]:
        key = self.ledger.id_key
        now = self.now or utcnow()
        rows: dict[str, tuple] = {}
        order: list[Passage] = []
        for p in batch:
            if not p.source_system or not p.source_record_key or not p.technical_id:
                self._note(Reason.NO_PROVENANCE, p.technical_id)
                continue
            if p.technical_id in rows:
                self._note(Reason.DUPLICATE, p.technical_id)
                continue
            rows[p.technical_id] = (
                p.technical_id,
                data_hash(key, p),
                p.source_system,
                p.source_record_key,
                p.certification_type,
                p.certification_code,
            )
            order.append(p)
        if not order:
            return []
        with self.ledger.begin() as conn:
            if self.claim:
                heartbeat(conn, self.run_id, now)
            chosen = self._claim(conn, rows, now)
        return [p for p in order if p.technical_id in chosen]

    def _claim(self, conn, rows: dict[str, tuple], now: dt.datetime) -> set[str]:
        cols = (
            "technical_id",
            "data_hash",
            "source_system",
            "source_record_key",
            "certification_type",
            "certification_code",
        )
        load_temp(
            conn,
            "tmp_delta",
            [(c, "VARCHAR(255)" + (" PRIMARY KEY" if c == "technical_id" else "")) for c in cols],
            list(rows.values()),
        )
        d = table("tmp_delta", *(column(c) for c in cols))
        known = {
            r.technical_id: r
            for r in conn.execute(
                select(
                    P.technical_id,
                    P.status,
                    P.sent_hash,
                    P.claim_run,
                    P.source_system,
                    P.source_record_key,
                    P.certification_type,
                    P.certification_code,
                ).where(P.technical_id.in_(select(d.c.technical_id)))
            )
        }
        new: list[str] = []
        resend: dict[str, str] = {}
        changed_accepted: list[str] = []
        for tid, (_, h, *natural) in rows.items():
            r = known.get(tid)
            if r is None:
                new.append(tid)
            elif tuple(natural) != (
                r.source_system,
                r.source_record_key,
                r.certification_type,
                r.certification_code,
            ):
                self._note(Reason.ID_COLLISION, tid)
            elif r.status == Status.BUILT:
                self._note(
                    Reason.DUPLICATE if r.claim_run == self.run_id else Reason.CLAIMED_ELSEWHERE,
                    tid,
                )
            elif r.status == Status.ACCEPTED:
                if h == r.sent_hash:
                    self._note(Reason.ACCEPTED, tid)
                else:
                    self._note(Reason.CHANGED_AFTER_ACCEPTANCE, tid)
                    changed_accepted.append(tid)
            elif r.status in (Status.STAGED, Status.DEPOSITED):
                self._note(
                    Reason.PENDING if h == r.sent_hash else Reason.CHANGED_WHILE_PENDING, tid
                )
            elif r.status == Status.FILE_REJECTED:
                resend[tid] = Reason.SENT_FILE_REJECTED
            elif r.status == Status.REJECTED:
                if h == r.sent_hash:
                    self._note(Reason.REJECTED_UNCHANGED, tid)
                else:
                    resend[tid] = Reason.SENT_CORRECTED
        if changed_accepted and self.claim:
            h_new = select(d.c.data_hash).where(d.c.technical_id == P.technical_id)
            conn.execute(
                update(ledger_passage)
                .where(P.technical_id.in_(changed_accepted), P.status == Status.ACCEPTED)
                .values(seen_hash=h_new.scalar_subquery(), seen_at=now)
            )
        if not self.claim:  # dry run: report what would be sent, claim nothing
            for tid in new:
                self._note(Reason.SENT_NEW, tid)
            for tid, why in resend.items():
                self._note(why, tid)
            return set(new) | set(resend)
        chosen = self._insert_new(conn, d, new, now) if new else set()
        for tid in new:
            if tid in chosen:
                self._note(Reason.SENT_NEW, tid)
        lost = [t for t in new if t not in chosen]
        if lost:
            taken = set(
                conn.execute(select(P.technical_id).where(P.technical_id.in_(lost))).scalars()
            )
            for tid in lost:
                self._note(Reason.CLAIMED_ELSEWHERE if tid in taken else Reason.ID_MISMATCH, tid)
        if resend:
            got = self._claim_resends(conn, d, list(resend), now)
            for tid, why in resend.items():
                self._note(why if tid in got else Reason.CLAIMED_ELSEWHERE, tid)
            chosen |= got
        return chosen

    def _insert_new(self, conn, d, new: list[str], now: dt.datetime) -> set[str]:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        src = select(
            d.c.technical_id,
            d.c.source_system,
            d.c.source_record_key,
            d.c.certification_type,
            d.c.certification_code,
            literal(Action.CREATION.value, P.action.type),
            literal(Status.BUILT.value, P.status.type),
            literal(self.run_id, P.claim_run.type),
            d.c.data_hash,
            literal(now, P.claimed_at.type),
            literal(now, P.created_at.type),
            literal(now, P.updated_at.type),
        ).where(d.c.technical_id.in_(new))
        stmt = (
            insert(ledger_passage)
            .from_select(
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
                    "claimed_at",
                    "created_at",
                    "updated_at",
                ],
                src,
            )
            .on_conflict_do_nothing()
            .returning(ledger_passage.c.technical_id)
        )
        return set(conn.execute(stmt).scalars())

    def _claim_resends(self, conn, d, ids: list[str], now: dt.datetime) -> set[str]:
        h_new = select(d.c.data_hash).where(d.c.technical_id == P.technical_id).scalar_subquery()
        stmt = (
            update(ledger_passage)
            .where(
                P.technical_id.in_(ids),
                or_(
                    P.status == Status.FILE_REJECTED,
                    and_(P.status == Status.REJECTED, P.sent_hash != h_new),
                ),
            )
            .values(
                status=Status.BUILT,
                prev_status=P.status,
                prev_hash=P.sent_hash,
                prev_flux=P.id_flux,
                prev_reason=P.reason,
                claim_run=self.run_id,
                claim_hash=h_new,
                claimed_at=now,
                updated_at=now,
            )
            .returning(P.technical_id)
        )
        return set(conn.execute(stmt).scalars())


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
