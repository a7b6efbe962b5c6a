"""What a run sends: never twice, never an accepted passage, a corrected rejection again."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cpf_deposit.flux.writer import WrittenFile
from cpf_deposit.ledger import (
    LedgerError,
    Reason,
    Status,
    changed_after_acceptance,
    mark_accepted,
    mark_deposited,
    mark_file_rejected,
    mark_rejected,
    passage_counts,
    select_delta,
)
from cpf_deposit.ledger.status import record_file
from cpf_deposit.staging import start_run
from tests.ledger_helpers import HERE, SLOW_ENV, ids_in_outbox, passages, run_pipeline


def _deposit_all(ledger, staged):
    for s in staged:
        mark_deposited(ledger, s.id_flux, "Agent Test")


def test_same_window_twice_sends_nothing_the_second_time(ledger, config):
    cands = passages(ledger.id_key, 0, 20)
    _, first, staged = run_pipeline(ledger, config, cands)
    assert first.counts == {Reason.SENT_NEW: 20}
    assert sum(s.passages for s in staged) == 20
    _, second, again = run_pipeline(ledger, config, cands)
    assert again == [] and second.sent == 0
    assert second.counts == {Reason.PENDING: 20}
    assert sorted(ids_in_outbox(config)) == sorted(p.technical_id for p in cands)


def test_overlapping_nightly_and_annual_windows(ledger, config):
    key = ledger.id_key
    _, nightly, _ = run_pipeline(ledger, config, passages(key, 10, 25), kind="nightly")
    _, annual, _ = run_pipeline(ledger, config, passages(key, 0, 40), kind="annual")
    _, backfill, _ = run_pipeline(ledger, config, passages(key, 20, 50), kind="backfill")
    assert (nightly.sent, annual.sent, backfill.sent) == (15, 25, 10)
    assert annual.counts[Reason.PENDING] == 15
    sent = ids_in_outbox(config)
    assert len(sent) == len(set(sent)) == 50
    assert passage_counts(ledger) == {Status.STAGED: 50}


def test_concurrent_overlapping_runs_never_duplicate(ledger_url, config, config_path):
    env = {**os.environ, SLOW_ENV: "0.005"}
    windows = [(0, 140), (60, 200)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE), str(config_path), ledger_url, str(a), str(b)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a, b in windows
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    sent = ids_in_outbox(config)
    dupes = [t for t, n in Counter(sent).items() if n > 1]
    assert dupes == [] and len(sent) == 200
    per_run = [int(o.split("staged=")[1]) for o, _ in outs]
    assert sum(per_run) == 200
    assert all(per_run), "the runs did not actually overlap"


def test_rejected_is_sent_again_once_corrected_accepted_never(ledger, config):
    key = ledger.id_key
    cands = passages(key, 0, 6)
    _, _, staged = run_pipeline(ledger, config, cands, max_passages=10)
    (f,) = staged
    ids = [p.technical_id for p in cands]
    mark_deposited(ledger, f.id_flux, "Agent Test")
    mark_accepted(ledger, f.id_flux, ids[:3])
    mark_rejected(ledger, f.id_flux, {t: "Aucun titulaire ne correspond" for t in ids[3:]})

    # Unchanged at the source: nothing goes, the rejections are listed.
    _, d1, s1 = run_pipeline(ledger, config, cands)
    assert s1 == [] and d1.counts == {Reason.ACCEPTED: 3, Reason.REJECTED_UNCHANGED: 3}
    assert sorted(d1.listed[Reason.REJECTED_UNCHANGED]) == sorted(ids[3:])

    # Every passage corrected at the source: only the rejected ones go again.
    fixed = [dataclasses.replace(p, birth_day=28) for p in cands]
    _, d2, s2 = run_pipeline(ledger, config, fixed, max_passages=10)
    assert d2.counts == {Reason.CHANGED_AFTER_ACCEPTANCE: 3, Reason.SENT_CORRECTED: 3}
    assert sorted(d2.listed[Reason.CHANGED_AFTER_ACCEPTANCE]) == sorted(ids[:3])
    assert changed_after_acceptance(ledger) == sorted(ids[:3])
    (f2,) = s2
    assert f2.passages == 3 and f2.id_flux != f.id_flux
    mark_accepted(ledger, f2.id_flux, ids[3:])
    assert passage_counts(ledger) == {Status.ACCEPTED: 6}

    # Later runs, corrected or not, never send an accepted passage again.
    for cand in (cands, fixed):
        _, d, s = run_pipeline(ledger, config, cand)
        assert s == [] and d.sent == 0


def test_file_rejected_by_the_cdc_is_sent_again(ledger, config):
    cands = passages(ledger.id_key, 0, 5)
    _, _, (f,) = run_pipeline(ledger, config, cands, max_passages=10)
    mark_deposited(ledger, f.id_flux, "Agent Test")
    out = mark_file_rejected(ledger, f.id_flux, "cvc-complex-type.2.4.a")
    assert out.applied == 5
    _, d, (f2,) = run_pipeline(ledger, config, cands, max_passages=10)
    assert d.counts == {Reason.SENT_FILE_REJECTED: 5} and f2.passages == 5


def test_dry_run_counts_and_claims_nothing(ledger, config):
    cands = passages(ledger.id_key, 0, 8)
    _, d, staged = run_pipeline(ledger, config, cands, dry_run=True)
    assert d.counts == {Reason.SENT_NEW: 8} and staged == []
    assert passage_counts(ledger) == {}
    _, d2, staged2 = run_pipeline(ledger, config, cands)
    assert d2.sent == 8 and sum(s.passages for s in staged2) == 8


def _retag(p, **kw):
    return dataclasses.replace(p, **kw)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda a, b: [a, a], Reason.DUPLICATE),
        (lambda a, b: [_retag(a, source_record_key=None)], Reason.NO_PROVENANCE),
        (lambda a, b: [_retag(b, technical_id=a.technical_id)], Reason.ID_COLLISION),
        (lambda a, b: [_retag(a, technical_id="T1-OTHER")], Reason.ID_MISMATCH),
    ],
    ids=["duplicate", "no_provenance", "collision", "mismatch"],
)
def test_suspicious_candidates_are_skipped_and_listed(ledger, config, make, reason):
    a, b = passages(ledger.id_key, 0, 2)
    if reason in (Reason.ID_COLLISION, Reason.ID_MISMATCH):
        run_pipeline(ledger, config, [a])  # a is known to the ledger
    start = start_run(ledger, config, kind="test")
    d = select_delta(ledger, make(a, b), start.run_id)
    chosen = list(d)
    assert d.counts[reason] == 1 and len(d.listed[reason]) == 1
    assert len(chosen) == (1 if reason == Reason.DUPLICATE else 0)


def test_delta_streams_in_chunks_and_keeps_order(ledger, config):
    cands = passages(ledger.id_key, 0, 23)
    start = start_run(ledger, config, kind="test")
    chosen = list(select_delta(ledger, iter(cands), start.run_id, chunk=4))
    assert chosen == cands


def test_a_conflicting_row_does_not_hold_back_the_rest_of_its_chunk(ledger, config):
    """The fast insert fails on the mismatching row; the conflict-proof one takes the rest."""
    a, b, c = passages(ledger.id_key, 0, 3)
    run_pipeline(ledger, config, [a])
    start = start_run(ledger, config, kind="test")
    d = select_delta(ledger, [b, _retag(a, technical_id="T1-OTHER"), c], start.run_id)
    assert list(d) == [b, c]
    assert d.counts == {Reason.SENT_NEW: 2, Reason.ID_MISMATCH: 1}


def test_changed_while_awaiting_the_cdc_is_listed_not_sent(ledger, config):
    cands = passages(ledger.id_key, 0, 4)
    _, _, (f,) = run_pipeline(ledger, config, cands, max_passages=10)
    mark_deposited(ledger, f.id_flux, "Agent Test")
    changed = [dataclasses.replace(p, birth_day=28) if p is cands[0] else p for p in cands]
    _, d, staged = run_pipeline(ledger, config, changed)
    assert staged == [] and d.counts == {Reason.PENDING: 3, Reason.CHANGED_WHILE_PENDING: 1}
    assert d.listed[Reason.CHANGED_WHILE_PENDING] == [cands[0].technical_id]
    assert passage_counts(ledger) == {Status.DEPOSITED: 4}


def test_a_passage_is_never_in_two_files_awaiting_the_cdc(ledger, config):
    """The pending-sending index refuses a second file before anything is staged."""
    cands = passages(ledger.id_key, 0, 3)
    start = start_run(ledger, config, kind="test")
    ids = [p.technical_id for p in select_delta(ledger, cands, start.run_id)]
    now = dt.datetime.now(dt.UTC)

    def written(name):
        return WrittenFile(Path(name), name, "h", passages=3, size=1, sha256="0" * 64)

    with ledger.begin() as conn:
        record_file(conn, start.run_id, written("A.xml"), ids, work_path="-", now=now)
    with pytest.raises(LedgerError, match="already in another file"), ledger.begin() as conn:
        record_file(conn, start.run_id, written("B.xml"), ids, work_path="-", now=now)
    assert passage_counts(ledger) == {Status.BUILT: 3}


def test_a_retry_under_the_same_run_id_sees_its_staged_passages_as_pending(ledger, config):
    """Airflow clears or retries a run with its run id: its staged files are not duplicates."""
    cands = passages(ledger.id_key, 0, 4)
    run_id = "scheduled__2026-07-01T02:00:00+00:00"
    _, first, _ = run_pipeline(ledger, config, cands, run_id=run_id)
    _, again, staged = run_pipeline(ledger, config, cands, run_id=run_id)
    assert first.sent == 4 and staged == []
    assert again.counts == {Reason.PENDING: 4} and again.listed == {}


def test_the_ledger_guide_explains_every_skip_reason():
    guide = (HERE.parents[1] / "docs" / "ledger.md").read_text(encoding="utf-8")
    skips = [v for k, v in vars(Reason).items() if k.isupper() and not k.startswith("SENT_")]
    assert [r for r in skips if f"`{r}`" not in guide] == []
