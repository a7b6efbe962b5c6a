"""A run SIGKILLed at any step, then run again: every passage staged exactly once.

The child process is the real pipeline (delta -> build -> stage); it kills itself
with SIGKILL at the point named by ``$CPF_DEPOSIT_FAULT_AT``. No cleanup code runs.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from cpf_deposit.flux.writer import Header, write_flux
from cpf_deposit.ledger import ClaimLost, FileStatus, Status, passage_counts, select_delta
from cpf_deposit.ledger.schema import ledger_file
from cpf_deposit.staging import FAULT_ENV, MANIFEST_SUFFIX, IdCollector, stage, start_run
from tests.ledger_helpers import HERE, ids_in_outbox, passages, run_pipeline

N = 30
# point -> (files the recovery completes, claims it releases); files hold 4 passages,
# the delta claims 7 at a time, lazily, as the writer reads.
POINTS = {
    "started": (0, 0),
    "writing": (0, 7),
    "written": (0, N),
    "recorded": (1, N - 4),
    "manifest": (1, N - 4),
    "moved": (1, N - 4),
    "staged": (0, N - 4),
}


def _killed_run(config_path, url, point, run_id=None):
    args = [sys.executable, str(HERE), str(config_path), url, "0", str(N)]
    if run_id:
        args.append(run_id)
    proc = subprocess.run(
        args, env={**os.environ, FAULT_ENV: point}, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def _files(ledger):
    with ledger.engine.connect() as conn:
        return dict(conn.execute(select(ledger_file.c.file_name, ledger_file.c.status)).all())


def _outbox(config):
    root = Path(config.paths.outbox)
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def _assert_consistent(ledger, config, expected_ids):
    names = _outbox(config)
    xml = [n for n in names if n.endswith(".xml")]
    files = _files(ledger)
    assert not [n for n in names if n.startswith(".")], "temporary files left in the outbox"
    assert sorted(n for n, s in files.items() if s == FileStatus.STAGED) == xml
    assert sorted(n for n in names if n.endswith(MANIFEST_SUFFIX)) == [
        n + MANIFEST_SUFFIX for n in xml
    ]
    sent = ids_in_outbox(config)
    assert sorted(sent) == sorted(expected_ids), "a passage was lost or staged twice"
    assert passage_counts(ledger) == {Status.STAGED: len(expected_ids)}
    for n in names:
        assert (Path(config.paths.outbox) / n).stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(("point", "completed", "released"), [(k, *v) for k, v in POINTS.items()])
def test_kill_at_each_step_then_rerun(
    ledger, ledger_url, config, config_path, point, completed, released
):
    _killed_run(config_path, ledger_url, point)
    # Whatever the point, a file visible in the outbox is already known to the ledger.
    files = _files(ledger)
    assert all(n in files for n in _outbox(config) if n.endswith(".xml"))

    expected = [p.technical_id for p in passages(ledger.id_key, 0, N)]
    start, _delta, _staged = run_pipeline(ledger, config, passages(ledger.id_key, 0, N))
    report = start.recovery
    assert len(report.dead_runs) == 1
    assert (len(report.completed), report.released, report.aborted) == (completed, released, [])
    assert report.unknown_in_outbox == [] and report.missing_from_outbox == []
    _assert_consistent(ledger, config, expected)
    runs_dir = Path(config.paths.work) / "runs"
    assert sorted(p.name for p in runs_dir.iterdir()) == [], "a dead run's work files remain"

    # And a further run has nothing left to do.
    _, again, none = run_pipeline(ledger, config, passages(ledger.id_key, 0, N))
    assert none == [] and again.sent == 0


@pytest.mark.parametrize("point", ["moved"])
def test_airflow_retry_with_the_same_run_id_carries_on(
    ledger, ledger_url, config, config_path, point
):
    _killed_run(config_path, ledger_url, point, run_id="scheduled__2026-07-01T02:00:00+00:00")
    expected = [p.technical_id for p in passages(ledger.id_key, 0, N)]
    start, _, _ = run_pipeline(
        ledger,
        config,
        passages(ledger.id_key, 0, N),
        run_id="scheduled__2026-07-01T02:00:00+00:00",
    )
    assert start.recovery.dead_runs == []  # its own previous attempt, recovered as a retry
    _assert_consistent(ledger, config, expected)


def test_a_run_wrongly_taken_for_dead_cannot_stage_a_duplicate(ledger, config):
    """Lease expired while the run was still alive: it loses its claims, never duplicates."""
    cands = passages(ledger.id_key, 0, 10)
    slow = start_run(ledger, config, kind="slow", bound_to_process=False)
    ids = IdCollector()
    batch = write_flux(
        select_delta(ledger, cands, slow.run_id),
        Header.from_config(config),
        slow.work_dir,
        tz=config.tz,
        on_passage=ids,
    )
    # Another run starts with a zero lease: the slow run is taken for dead.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    fast = start_run(ledger, config, kind="fast", lease=dt.timedelta(0), now=later)
    assert fast.recovery.dead_runs == [slow.run_id] and fast.recovery.released == 10
    _, d, _ = run_pipeline(ledger, config, cands, run_id=fast.run_id)
    assert d.sent == 10
    with pytest.raises(ClaimLost):
        stage(ledger, config, slow.run_id, batch.files, ids)
    sent = ids_in_outbox(config)
    assert sorted(sent) == sorted(p.technical_id for p in cands)
    assert passage_counts(ledger) == {Status.STAGED: 10}
