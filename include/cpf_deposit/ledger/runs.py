"""Runs: who holds claims, and how a later run knows the holder is dead.

Why leases: a run spans several Airflow tasks (several processes, maybe several
hosts), so no database session or process id lives as long as the run. A run is
dead when it said so (FAILED), or its heartbeat is older than the lease, or — for a
run declared bound to one process (the CLI) — its process is gone on this host.
Being wrong about "dead" can only make the slow run fail at staging
(:class:`~cpf_deposit.ledger.status.ClaimLost`), never send a passage twice.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket

from sqlalchemy import Connection, insert, select, update

from cpf_deposit.ledger.engine import Ledger, LedgerError
from cpf_deposit.ledger.schema import RunState, ledger_run
from cpf_deposit.ledger.status import release_claims, utcnow

R = ledger_run.c
DEFAULT_LEASE = dt.timedelta(hours=6)


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def register_run(
    conn: Connection,
    run_id: str,
    *,
    kind: str,
    params: dict | None,
    bound_to_process: bool,
    now: dt.datetime,
) -> bool:
    """Insert or re-open the run row; True when the run already existed (a retry)."""
    if not run_id or len(run_id) > 250:
        raise LedgerError("a run id must hold 1 to 250 characters")
    values = dict(
        state=RunState.RUNNING,
        host=socket.gethostname(),
        pid=os.getpid(),
        bound_to_process=bound_to_process,
        heartbeat_at=now,
        finished_at=None,
    )
    existed = conn.execute(update(ledger_run).where(R.run_id == run_id).values(**values)).rowcount
    if not existed:
        conn.execute(
            insert(ledger_run).values(
                run_id=run_id,
                kind=kind,
                params=json.dumps(params or {}, sort_keys=True, default=str),
                started_at=now,
                **values,
            )
        )
    return bool(existed)


def heartbeat(conn: Connection, run_id: str, now: dt.datetime | None = None) -> None:
    """Keep the run's lease; fails when a recovery already declared the run dead."""
    n = conn.execute(
        update(ledger_run)
        .where(R.run_id == run_id, R.state == RunState.RUNNING)
        .values(heartbeat_at=now or utcnow(), host=socket.gethostname(), pid=os.getpid())
    ).rowcount
    if not n:
        from cpf_deposit.ledger.status import ClaimLost

        raise ClaimLost(f"run {run_id} is not running (unknown, finished or declared dead)")


def dead_runs(conn: Connection, now: dt.datetime, lease: dt.timedelta) -> list[str]:
    """Runs whose claims may be taken back: failed, lease expired, or bound process gone."""
    rows = conn.execute(
        select(R.run_id, R.state, R.host, R.pid, R.bound_to_process, R.heartbeat_at).where(
            R.state.in_((RunState.RUNNING, RunState.FAILED))
        )
    ).all()
    host = socket.gethostname()
    dead = []
    for r in rows:
        if (
            r.state == RunState.FAILED
            or _aware(r.heartbeat_at) < now - lease
            or (r.bound_to_process and r.host == host and not _pid_alive(r.pid))
        ):
            dead.append(r.run_id)
    return dead


def set_run_state(conn: Connection, run_id: str, state: RunState, now: dt.datetime) -> None:
    conn.execute(update(ledger_run).where(R.run_id == run_id).values(state=state, finished_at=now))


def finish_run(
    ledger: Ledger, run_id: str, *, failed: bool = False, now: dt.datetime | None = None
) -> int:
    """End a run; claims it did not stage (refused, invalid, dry run) go back. Count released."""
    now = now or utcnow()
    with ledger.begin() as conn:
        released = release_claims(conn, run_id, now)
        set_run_state(conn, run_id, RunState.FAILED if failed else RunState.DONE, now)
    return released
