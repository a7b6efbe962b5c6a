"""Bench: the ledger benchmark on the embedded default, a local SQLite file.

Same steps and figures as ``bench_ledger`` (claim, record and stage N new passages,
then the same window again); no target, for choosing between SQLite and PostgreSQL.

    python -m tests.bench.bench_ledger_sqlite [N]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cpf_deposit.ledger import open_ledger
from tests.bench.bench_ledger import measure


def run(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="cpf-ledger-bench-") as d:
        ledger = open_ledger(url=f"sqlite:///{Path(d) / 'ledger.db'}")
        try:
            return {"benchmark": "ledger (SQLite)", **measure(ledger, n)}
        finally:
            ledger.dispose()


if __name__ == "__main__":
    r = run(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
    print(" ".join(f"{k}={v}" for k, v in r.items()))
