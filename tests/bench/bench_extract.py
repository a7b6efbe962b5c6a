"""Bench: extract N graduates from the demo Apogée database to a passages Parquet file.

``python tests/bench/bench_extract.py [N]`` prints the demo-data time, then the
extraction wall time and peak RSS. Both run in child processes, and the RSS is read
with ``os.wait4`` for the extraction child alone (the demo generator's memory is not
counted). Target: 1 000 000 rows in at most 30 s and 500 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEMO = """
import sys
from cpf_deposit.demo.build import write_demo
write_demo(sys.argv[1], int(sys.argv[2]), seed=1)
"""
CHILD = """
import datetime as dt, json, sys, time
from cpf_deposit.sources.extract import extract
t = time.perf_counter()
r = extract("apogee", "bench_apogee", dt.date(2020, 1, 1), dt.date(2026, 12, 31), sys.argv[1])
print(json.dumps({"rows": r.rows, "passages": r.passages, "errors": r.errors,
                  "warnings": r.warnings, "extract_seconds": round(time.perf_counter() - t, 1)}))
"""


def run(n: int) -> dict:
    """Generate an n-graduate demo, extract it in a child process; return the figures."""
    with tempfile.TemporaryDirectory(prefix="cpf-bench-") as tmp:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", DEMO, tmp, str(n)], check=True, capture_output=True)
        demo_seconds = time.perf_counter() - started
        apogee = Path(tmp) / "apogee.sqlite"
        env = {**os.environ, "AIRFLOW_CONN_BENCH_APOGEE": f"sqlite://{apogee}"}
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(Path(tmp) / "out.parquet")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        stdout = child.stdout.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if child.returncode:
            raise RuntimeError(f"extraction failed with exit code {child.returncode}")
        peak_kb = usage.ru_maxrss
        figures = json.loads(stdout.strip().splitlines()[-1])
    figures.update(
        graduates=n,
        demo_data_seconds=round(demo_seconds, 1),
        process_seconds=round(wall, 1),
        peak_rss_mb=round(peak_kb / 1024),
    )
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
