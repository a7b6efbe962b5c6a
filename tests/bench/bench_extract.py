"""Bench: extract N graduates from the demo Apogée database to a passages Parquet file.

``python tests/bench/bench_extract.py [N] [--demo DIR] [--out DIR]`` prints the
demo-data time, then the extraction wall time and peak RSS. Both run in child
processes, and the RSS is read with ``os.wait4`` for the extraction child alone (the
demo generator's memory is not counted). ``--demo DIR`` reuses (or creates once) the
demo database in DIR, so repeated runs skip the generation; ``--out DIR`` keeps the
three output files there (to compare two versions of the extraction). Target:
1 000 000 rows in at most 30 s and 500 MB.
"""

from __future__ import annotations

import argparse
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
r = extract("apogee", "bench_apogee", dt.date(2020, 1, 1), dt.date(2026, 12, 31), sys.argv[1],
            id_key=bytes(32))
print(json.dumps({"rows": r.rows, "passages": r.passages, "errors": r.errors,
                  "warnings": r.warnings, "extract_seconds": round(time.perf_counter() - t, 1)}))
"""


def _extract(apogee: Path, out: Path) -> dict:
    env = {**os.environ, "AIRFLOW_CONN_BENCH_APOGEE": f"sqlite://{apogee}"}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out)],
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
    figures = json.loads(stdout.strip().splitlines()[-1])
    figures.update(
        process_seconds=round(wall, 1),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 1),  # with the SQLite reader's
        peak_rss_mb=round(usage.ru_maxrss / 1024),
    )
    return figures


def run(n: int, demo: str | Path | None = None, out: str | Path | None = None) -> dict:
    """Generate (or reuse) an n-graduate demo, extract it in a child; return the figures."""
    with tempfile.TemporaryDirectory(prefix="cpf-bench-") as tmp:
        base = Path(demo) if demo else Path(tmp)
        apogee = base / "apogee.sqlite"
        demo_seconds = 0.0
        if not apogee.exists():
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", DEMO, str(base), str(n)], check=True, capture_output=True
            )
            demo_seconds = time.perf_counter() - started
        target = Path(out) if out else Path(tmp)
        figures = _extract(apogee, target / "out.parquet")
    figures = {"benchmark": "extraction (demo Apogée, SQLite)", **figures}
    figures.update(graduates=n, demo_data_seconds=round(demo_seconds, 1))
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--demo", help="directory of the demo database (reused when present)")
    parser.add_argument("--out", help="keep the extraction outputs in this directory")
    args = parser.parse_args()
    run(args.n, args.demo, args.out)
