"""A whole annual run on a demo Apogée database of ``n`` graduates: extraction, identity
gate with its quarantine workbook, delta, build, validation and staging, as
``cpf-deposit run --academic-year`` does it. The database is built in another process
first, so the peak RSS printed is the run's own. Prints figures, asserts nothing about
time.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

YEAR = 2024  # academic year 2024-2025, run in the autumn after it
TODAY = dt.date(2025, 10, 15)


def run(n: int) -> dict:
    from openpyxl import load_workbook

    with tempfile.TemporaryDirectory(prefix="cpf-bench-annual-") as home:
        code = (
            "import sys; from cpf_deposit.demo.build import write_demo; "
            f"print(write_demo(sys.argv[1], {n}, seed=11).apogee)"
        )
        db = (
            subprocess.run(
                [sys.executable, "-c", code, f"{home}/demo"],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        os.environ["CPF_DEPOSIT_HOME"] = home
        os.environ.pop("CPF_DEPOSIT_CONFIG", None)
        os.environ["AIRFLOW_CONN_APOGEE_DB"] = f"sqlite://{db}"
        from cpf_deposit.config import load_config
        from cpf_deposit.pipeline import Window, run_pipeline

        config = load_config()
        t0 = time.perf_counter()
        out = run_pipeline(config, "apogee", Window.academic_year(YEAR), today=TODAY)
        wall = time.perf_counter() - t0
        workbook = Path(out["gate"]["quarantine"]["quarantine_xlsx"])
        sheets = load_workbook(workbook, read_only=True).worksheets[:2]
        listed = sum(sum(1 for _ in ws.iter_rows(min_row=2)) for ws in sheets)
        return {
            "benchmark": "annual run (demo Apogée, SQLite ledger)",
            "graduates": n,
            "wall_s": round(wall, 2),
            "rows": out["extract"]["rows"],
            "ok": out["gate"]["OK"],
            "warn": out["gate"]["WARN"],
            "block": out["gate"]["BLOCK"],
            "workbook_rows": listed,
            "sent": out["delta"]["selected"],
            "late_noted": out["delta"].get("late", 0),
            "files": len(out.get("stage", {}).get("staged", [])),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
