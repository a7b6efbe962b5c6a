"""The ledger benchmark measures what it says: every passage staged, none sent twice.

Only counts are checked here (a small N); ``make bench`` prints the times.
"""

from __future__ import annotations

import pytest

from tests.bench import bench_ledger, bench_ledger_sqlite


@pytest.mark.parametrize("bench", [bench_ledger, bench_ledger_sqlite], ids=["pg", "sqlite"])
def test_bench_stages_every_passage_once_and_resends_none(bench):
    r = bench.run(2_500)
    assert r["passages"] == r["staged"] == 2_500
    assert r["files"] == 1 and r["resent"] == 0
