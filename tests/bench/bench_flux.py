"""Write + validate N synthetic passages: the flux at national scale.

Prints figures, asserts nothing about time. Run through ``make bench`` (each benchmark
in its own process, so peak RSS is its own).
"""

from __future__ import annotations

import datetime as dt
import resource
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from cpf_deposit.flux.build import build_flux
from cpf_deposit.flux.writer import Header
from tests.bench.synthetic import synthetic_passages


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def run(n: int) -> dict:
    header = Header("01BJD364", "01BJD364", "MCFCER000123", "0720916E")
    with tempfile.TemporaryDirectory(prefix="cpf-bench-") as d:
        t0 = time.perf_counter()
        result = build_flux(
            synthetic_passages(n),
            header,
            Path(d),
            tz=ZoneInfo("Europe/Paris"),
            moment=dt.datetime(2026, 7, 1, 8, 0, tzinfo=dt.UTC),
        )
        total = time.perf_counter() - t0
        assert result.valid, [r.summary() for r in result.reports if not r.valid]
        sizes = [f.size for f in result.files]
        t1 = time.perf_counter()
        from cpf_deposit.flux.validator import validate_file

        validate_file(result.files[-1].path)
        last_validation = time.perf_counter() - t1
    return {
        "benchmark": "flux write + validate",
        "passages": n,
        "wall_s": round(total, 2),
        "files": len(sizes),
        "largest_file_mb": round(max(sizes) / 1e6, 1),
        "total_mb": round(sum(sizes) / 1e6, 1),
        "validate_one_file_s": round(last_validation, 2),
        "peak_rss_writer_mb": round(_rss_mb(resource.RUSAGE_SELF), 1),
        "peak_rss_validator_mb": round(_rss_mb(resource.RUSAGE_CHILDREN), 1),
    }
