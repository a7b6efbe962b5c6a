"""Bench: ingest one accusé de traitement of N passages (the CDC's 200 000 maximum).

The ledger state is built synthetically on a throwaway SQLite ledger (rows inserted
in bulk: one deposited file and its N pending passages), then a receipt is written
(5 % rejected, with the CDC's messages) and ingested: parse, one transaction,
archive. What is timed is the ingestion alone; peak RSS is the process's.

    python tests/bench/bench_receipts.py [N]
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml
from sqlalchemy import insert

from cpf_deposit.config import default_config_path, load_config
from cpf_deposit.ledger import open_ledger
from cpf_deposit.ledger.schema import (
    FileStatus,
    Status,
    ledger_file,
    ledger_passage,
    ledger_sending,
)
from cpf_deposit.receipts.ingest import ingest_inbox

MESSAGES = [
    "Aucun titulaire ne correspond aux critères obligatoires",
    "Aucun titulaire ne correspond aux critères obligatoires enrichis du jour et du mois de "
    "naissance",
    "Plusieurs titulaires ont été identifiés",
    "Aucun titulaire ne correspond aux critères de reconciliation",
]
FILE = "CPF_0720916E_01BJD364_20260701020000.xml"
FLUX = "5e0c3c1a-0000-4000-8000-000000000001"


def _state(ledger, n: int) -> None:
    now = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    with ledger.begin() as conn:
        conn.execute(
            insert(ledger_file).values(
                id_flux=FLUX,
                file_name=FILE,
                sha256="0" * 64,
                size=n * 1500,
                passages=n,
                certifications=json.dumps({"RNCP24514": n}),
                horodatage="2026-07-01T02:00:00+02:00",
                run_id="bench",
                status=FileStatus.DEPOSITED,
                built_at=now,
                staged_at=now,
                deposited_at=now,
                deposited_by="bench",
                updated_at=now,
            )
        )
        for k in range(0, n, 50_000):
            ids = range(k, min(n, k + 50_000))
            conn.execute(
                insert(ledger_passage),
                [
                    dict(
                        technical_id=f"T1-BENCH{i:012d}",
                        source_system="APOGEE",
                        source_record_key=f"{10_000_000 + i}-DIP-1",
                        certification_type="RNCP",
                        certification_code="RNCP24514",
                        action="CREATION",
                        status=Status.CLAIMED,  # in the deposited file
                        claim_run="bench",
                        claim_hash="h" * 32,
                        claimed_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                    for i in ids
                ],
            )
            conn.execute(
                insert(ledger_sending),
                [
                    dict(
                        id_flux=FLUX,
                        technical_id=f"T1-BENCH{i:012d}",
                        data_hash="h" * 32,
                        status=Status.PENDING,
                        built_at=now,
                    )
                    for i in ids
                ],
            )


def _receipt(path: Path, n: int) -> int:
    ko = [i for i in range(n) if i % 20 == 0]
    with path.open("w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<rapport>\n')
        fh.write(f"    <nomFichier>{FILE}</nomFichier>\n    <idFlux>{FLUX}</idFlux>\n")
        fh.write("    <idTraitement>67001</idTraitement>\n    <PassagesKO>\n")
        for i in ko:
            fh.write(
                f"        <passage>\n            <idTechnique>T1-BENCH{i:012d}</idTechnique>\n"
                f"            <messageErreur>{MESSAGES[i % 4]}</messageErreur>\n"
                "        </passage>\n"
            )
        fh.write("    </PassagesKO>\n    <PassagesOK>\n")
        for i in range(n):
            if i % 20:
                fh.write(f"        <idTechnique>T1-BENCH{i:012d}</idTechnique>\n")
        fh.write("    </PassagesOK>\n</rapport>")
    return len(ko)


def run(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="cpf-bench-receipts-") as d:
        base = Path(d) / "var"
        raw = yaml.safe_load(default_config_path().read_text(encoding="utf-8"))
        raw["paths"] = {"base_dir": str(base)}
        base.mkdir(parents=True)
        (base / "institution.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
        config = load_config(base / "institution.yaml")
        ledger = open_ledger(url=f"sqlite:///{base / 'ledger.db'}")
        t0 = time.perf_counter()
        _state(ledger, n)
        t_state = time.perf_counter() - t0
        inbox = Path(config.paths.inbox)
        inbox.mkdir(parents=True)
        receipt = inbox / f"Accusé de traitement_{FILE}_20260705.xml"
        rejected = _receipt(receipt, n)
        size = receipt.stat().st_size
        t1 = time.perf_counter()
        (result,) = ingest_inbox(ledger, config).results
        t_ingest = time.perf_counter() - t1
        ledger.dispose()
    assert result.status == "applied", result.error
    assert result.processed == n and result.rejected_total == rejected
    return {
        "benchmark": "receipt ingest (SQLite)",
        "passages": n,
        "receipt_mb": round(size / 1e6, 1),
        "build_state_s": round(t_state, 2),
        "ingest_s": round(t_ingest, 2),
        "passages_per_s": round(n / max(t_ingest, 1e-9)),
        "rejected": rejected,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(" ".join(f"{k}={v}" for k, v in run(n).items()))
