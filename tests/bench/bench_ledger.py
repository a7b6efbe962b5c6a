"""Bench: record N passages in the ledger on PostgreSQL (target: 1 000 000 in <= 60 s).

What is timed is the ledger's share of an annual run: the delta over N new
passages (data hashes, claims), recording them in files of 200 000 and marking the
files staged. Building the passages (extraction's work) is timed apart and left
out of the ledger figure. No XML is written. A throwaway database is created on
``$CPF_TEST_PG`` (default ``postgresql+psycopg2://postgres@127.0.0.1:5432``) and
dropped afterwards.

    python tests/bench/bench_ledger.py [N]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from cpf_deposit.flux.writer import WrittenFile
from cpf_deposit.ledger import Status, open_ledger, passage_counts, select_delta
from cpf_deposit.ledger.ids import make_technical_id
from cpf_deposit.ledger.runs import register_run
from cpf_deposit.ledger.status import mark_file_staged, record_file
from cpf_deposit.model import Passage

PG_SERVER = os.environ.get("CPF_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
PER_FILE = 200_000


def _passages(key: bytes, n: int, clock: list[float]):
    base = dt.date(2023, 7, 1)
    for i in range(n):
        t0 = time.perf_counter()
        record_key = f"{10_000_000 + i}-DIP-{i % 9}-2023"
        p = Passage(
            "RNCP",
            "RNCP24514",
            technical_id=make_technical_id(key, "APOGEE", record_key, "RNCP", "RNCP24514"),
            award_date=base,
            mention="MENTION_BIEN",
            birth_name=f"NOM{i}",
            first_name_1="Camille",
            birth_year=1990 + i % 20,
            birth_month=1 + i % 12,
            birth_day=1 + i % 28,
            sex="F",
            birth_insee_code="72181",
            source_system="APOGEE",
            source_record_key=record_key,
        )
        clock[0] += time.perf_counter() - t0
        yield p


def run(n: int) -> dict:
    """The benchmark on a throwaway PostgreSQL database (the ``make bench`` figure)."""
    name = f"cpf_ledger_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        ledger = open_ledger(url=f"{PG_SERVER}/{name}")
        try:
            return {"benchmark": "ledger", **measure(ledger, n)}
        finally:
            ledger.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure(ledger, n: int) -> dict:
    """Claim, record and stage ``n`` new passages, then run the same window again."""
    run_id = "bench"
    now = dt.datetime.now(dt.UTC)
    with ledger.begin() as conn:
        for rid in (run_id, "bench-again"):
            register_run(conn, rid, kind="bench", params={"n": n}, bound_to_process=True, now=now)
    gen = [0.0]
    t0 = time.perf_counter()
    delta = select_delta(ledger, _passages(ledger.id_key, n, gen), run_id)
    claimed: list[str] = [p.technical_id for p in delta]
    t_delta = time.perf_counter() - t0 - gen[0]

    t1 = time.perf_counter()
    files = []
    for k in range(0, len(claimed), PER_FILE):
        ids = claimed[k : k + PER_FILE]
        wf = WrittenFile(
            Path(f"CPF_BENCH_{k // PER_FILE:04d}.xml"),
            str(uuid.uuid4()),
            "2026-07-01T02:00:00+02:00",
            passages=len(ids),
            size=len(ids) * 1500,
            sha256=hashlib.sha256(str(k).encode()).hexdigest(),
            certifications={"RNCP24514": len(ids)},
        )
        with ledger.begin() as conn:
            record_file(conn, run_id, wf, ids, work_path="-", now=now)
        files.append(wf)
    t_record = time.perf_counter() - t1

    t2 = time.perf_counter()
    for wf in files:
        with ledger.begin() as conn:
            if not mark_file_staged(conn, wf.id_flux, "-", now, run_id):
                raise RuntimeError(f"file {wf.id_flux} was not staged")
    t_stage = time.perf_counter() - t2
    staged = passage_counts(ledger).get(Status.STAGED, 0)

    # The same window again (an annual run after the nightly ones): nothing to send.
    gen_again = [0.0]
    t3 = time.perf_counter()
    again = select_delta(ledger, _passages(ledger.id_key, n, gen_again), "bench-again")
    resent = sum(1 for _ in again)
    t_again = time.perf_counter() - t3 - gen_again[0]
    result = {
        "passages": n,
        "staged": staged,
        "files": len(files),
        "build_passages_s": round(gen[0], 2),
        "delta_claim_s": round(t_delta, 2),
        "record_files_s": round(t_record, 2),
        "mark_staged_s": round(t_stage, 2),
        "ledger_total_s": round(t_delta + t_record + t_stage, 2),
        "same_window_again_s": round(t_again, 2),
        "resent": resent,
    }
    result["passages_per_s"] = round(n / max(result["ledger_total_s"], 1e-9))
    return result


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    r = run(n)
    print(" ".join(f"{k}={v}" for k, v in r.items()))
    target = 60 * n / 1_000_000
    print(f"bench_ledger: {n} passages in {r['ledger_total_s']} s (target {target:.0f} s)")
