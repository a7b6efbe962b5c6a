"""Identity gate at national scale: ``run(n)`` checks n synthetic canonical rows through
the whole Great Expectations suite and reports time and peak RSS (target for 1,000,000
rows: at most 60 s and 2 GB). Run it in a fresh process (``tests/bench/run.py
quality=1000000``) so the RSS is the gate's own.

The rows follow INSEE frequencies (the demo's name draws) with a few per cent of the
recurrent errors injected, and awards within the last two months (a nightly run).
"""

from __future__ import annotations

import datetime as dt
import resource
import time

import numpy as np
import pandas as pd

TODAY = dt.date(2026, 3, 1)


def synthetic_rows(n: int, seed: int = 1) -> pd.DataFrame:
    from cpf_deposit.demo.names import draw_first_names, draw_surnames

    rng = np.random.default_rng(seed)
    sex = np.where(rng.random(n) < 0.55, "F", "M").astype(object)
    years = rng.integers(1991, 2006, n)
    first, _ = draw_first_names(rng, sex, years)
    second, _ = draw_first_names(rng, sex, years)
    birth_name, _ = draw_surnames(rng, n)
    u = rng.random((6, n))
    # recurrent errors, about 4 % of rows
    inverted = u[0] < 0.005
    birth_name[inverted], first[inverted] = first[inverted], birth_name[inverted]
    merged = u[1] < 0.008
    first[merged] = first[merged] + " " + second[merged]
    second = np.where(merged, None, second)
    sex = np.where(u[2] < 0.005, np.where(sex == "M", "F", "M"), sex).astype(object)
    spaced = u[3] < 0.005
    birth_name[spaced] = birth_name[spaced] + " "
    start = np.datetime64("1991-01-01")
    birth = (start + rng.integers(0, 15 * 365, n).astype("timedelta64[D]")).astype(str)
    award = (np.datetime64(TODAY) - rng.integers(1, 60, n).astype("timedelta64[D]")).astype(str)
    abroad = u[4] < 0.12
    communes = np.array(["44109", "75113", "69381", "13201", "31555", "2A004", "97411"])
    commune = communes[rng.integers(0, len(communes), n)].astype(object)
    dept = np.array(["0" + c[:2] if not c.startswith("97") else c[:3] for c in commune])
    ids = np.arange(n).astype(str).astype(object)
    return pd.DataFrame(
        {
            "source_system": "APOGEE",
            "source_record_key": pd.array(ids, dtype="str") + "-LDROIT-1",
            "source_person_id": pd.array(ids, dtype="str"),
            "birth_name": pd.array(birth_name, dtype="str"),
            "first_name_1": pd.array(first, dtype="str"),
            "first_name_2": pd.array(second, dtype="str"),
            "sex": pd.array(sex, dtype="str"),
            "birth_date": pd.array(birth, dtype="str"),
            "birth_date_is_estimated": np.where(u[5] < 0.02, "Y", "N"),
            "born_in_france": np.where(abroad, "N", "Y"),
            "birth_department_code": pd.array(np.where(abroad, None, dept), dtype="str"),
            "birth_commune_insee": pd.array(np.where(abroad, None, commune), dtype="str"),
            "birth_city_label": pd.array(np.where(abroad, "RABAT", "NANTES"), dtype="str"),
            "birth_country_code": np.where(abroad, "350", "100"),
            "certification_type": "RNCP",
            "certification_code": np.where(u[5] < 0.5, "RNCP35959", "RNCP34034"),
            "academic_year": 2025,
            "award_date": pd.array(award, dtype="str"),
        }
    )


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(n: int) -> dict:
    from cpf_deposit.quality.gate import run_gate

    t0 = time.perf_counter()
    df = synthetic_rows(n)
    generate = time.perf_counter() - t0
    rss_before = _rss_mb()
    t1 = time.perf_counter()
    result = run_gate(df, today=TODAY)
    gate = time.perf_counter() - t1
    counts = result.counts
    return {
        "benchmark": "identity gate (GX suite)",
        "rows": n,
        "rules": len(result.fired),
        "gate_s": round(gate, 1),
        "generate_s": round(generate, 1),
        "peak_rss_mb": round(_rss_mb()),
        "rss_before_gate_mb": round(rss_before),
        "blocked": counts["BLOCK"],
        "warned": counts["WARN"],
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))
