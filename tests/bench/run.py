"""``make bench``: run each benchmark in a fresh process and print its figures.

Benchmarks print; they never assert wall-clock times. Sizes can be overridden:
``python tests/bench/run.py flux=100000,1000000 extract=1000000``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = {
    "flux": [100_000, 1_000_000],
    "flux_dag": [100_000, 1_000_000],
    "extract": [1_000_000],
    "quality": [1_000_000],
    "ledger": [1_000_000],
    "ledger_sqlite": [1_000_000],
    "receipts": [200_000],
    "annual": [100_000],
}


def _one(name: str, n: int) -> dict:
    module = f"tests.bench.bench_{name}"
    code = f"import json, {module} as m; print('BENCH ' + json.dumps(m.run({n})))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    return {"benchmark": name, "n": n, "error": (proc.stderr or proc.stdout).strip()[-800:]}


def main(argv: list[str]) -> int:
    plan = DEFAULTS
    if argv:
        plan = {}
        for arg in argv:
            name, _, sizes = arg.partition("=")
            plan[name] = [int(s) for s in sizes.split(",")] if sizes else DEFAULTS[name]
    failed = 0
    for name, sizes in plan.items():
        if not (REPO / "tests" / "bench" / f"bench_{name}.py").is_file():
            continue
        for n in sizes:
            figures = _one(name, n)
            failed += "error" in figures
            print(" | ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
