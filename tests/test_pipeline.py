"""The deposit pipeline end to end on the demo database (SQLite source, SQLite ledger)."""

from __future__ import annotations

import datetime as dt
import stat

import pyarrow.parquet as pq
import pytest

from cpf_deposit.config import load_config
from cpf_deposit.demo.build import write_demo
from cpf_deposit.flux.reader import iter_flux
from cpf_deposit.flux.validator import validate_file
from cpf_deposit.pipeline import PipelineError, Window, run_pipeline

FULL = Window(dt.date(2021, 7, 1), dt.date(2026, 12, 1))
TODAY = dt.date(2026, 11, 30)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("demo"), 800, seed=9).apogee


@pytest.fixture
def config(demo_db, isolated_home, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_APOGEE_DB", f"sqlite://{demo_db}")
    return load_config()


def _ledger_keys(config) -> set[str]:
    from sqlalchemy import select

    from cpf_deposit.ledger import open_ledger
    from cpf_deposit.ledger.schema import ledger_passage

    ledger = open_ledger(config)
    try:
        with ledger.engine.connect() as conn:
            rows = conn.execute(select(ledger_passage.c.source_record_key)).scalars()
            return set(rows)
    finally:
        ledger.dispose()


def _staged_ids(result):
    ids = []
    for f in result.get("stage", {}).get("staged", []):
        path = f"{f['outbox']}/{f['file_name']}"
        ids += [p.technical_id for _, p in iter_flux(path)]
    return ids


def test_a_run_stages_valid_files_and_keeps_blocked_holders_out(config):
    out = run_pipeline(config, "apogee", FULL, today=TODAY)
    staged = out["stage"]["staged"]
    assert staged and out["delta"]["selected"] == sum(f["passages"] for f in staged)
    for f in staged:
        path = config.paths.outbox / f["file_name"]
        assert validate_file(path).valid
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert (config.paths.outbox / f"{f['file_name']}.manifest.json").is_file()
    quarantine = config.paths.quarantine / out["run_id"]
    verdicts = pq.read_table(quarantine / "verdicts.parquet").to_pylist()
    blocked = {v["source_record_key"] for v in verdicts if v["verdict"] == "BLOCK"}
    assert blocked and out["gate"]["BLOCK"] == len(blocked)
    sent_keys = _ledger_keys(config)
    assert len(sent_keys) == out["delta"]["selected"]
    assert not sent_keys & blocked
    assert (quarantine / "quarantaine.xlsx").exists()
    assert (quarantine / "signalements-extraction.csv").exists()
    assert not list((config.paths.work / "runs").glob("*")), "the work folder is removed"


def test_the_same_window_twice_sends_nothing_the_second_time(config):
    first = run_pipeline(config, "apogee", FULL, today=TODAY)
    again = run_pipeline(config, "apogee", FULL, today=TODAY)
    assert first["delta"]["selected"] > 0
    assert again["delta"]["selected"] == 0 and "stage" not in again
    assert again["delta"]["skipped"] == {"awaiting_deposit_or_receipt": first["delta"]["selected"]}


def test_overlapping_annual_and_nightly_windows_never_duplicate(config):
    annual = run_pipeline(config, "apogee", Window.academic_year(2023), today=TODAY)
    nightly = run_pipeline(
        config, "apogee", Window(dt.date(2024, 6, 1), dt.date(2024, 10, 1)), today=TODAY
    )
    ids_a, ids_n = _staged_ids(annual), _staged_ids(nightly)
    assert ids_a and len(set(ids_a)) == len(ids_a)
    assert not set(ids_a) & set(ids_n)


def test_a_dry_run_claims_nothing(config):
    dry = run_pipeline(config, "apogee", FULL, dry_run=True, today=TODAY)
    assert "stage" not in dry and not list(config.paths.outbox.glob("*.xml"))
    real = run_pipeline(config, "apogee", FULL, today=TODAY)
    assert real["delta"]["selected"] == dry["delta"]["selected"] > 0


def test_a_window_before_the_passport_is_refused(config):
    with pytest.raises(PipelineError, match="before 2021-07-01"):
        run_pipeline(config, "apogee", Window(dt.date(2020, 9, 1), dt.date(2021, 6, 1)))


def test_an_unknown_source_is_refused(config):
    with pytest.raises(PipelineError, match="no source 'pegase'"):
        run_pipeline(config, "pegase", FULL)


def test_large_runs_are_cut_into_chunks_each_one_files_worth(config, monkeypatch):
    import dataclasses

    small = dataclasses.replace(
        config, limits=dataclasses.replace(config.limits, max_passages_per_file=150)
    )
    out = run_pipeline(small, "apogee", FULL, today=TODAY)
    chunks = out["delta"]["chunks"]
    assert len(chunks) == -(-out["delta"]["selected"] // 150) > 1
    staged = out["stage"]["staged"]
    assert sum(f["passages"] for f in staged) == out["delta"]["selected"]
    assert all(f["passages"] <= 150 for f in staged)
    assert len({f["file_name"] for f in staged}) == len(staged)


def test_a_certification_filter_keeps_only_those_codes(config):
    everything = run_pipeline(config, "apogee", FULL, dry_run=True, today=TODAY)
    code = max(
        (c for b in everything["build"] for f in b["files"] for c in f["certifications"]),
        key=str,
    )
    only = run_pipeline(
        config, "apogee", FULL, dry_run=True, today=TODAY, certifications=frozenset({code})
    )
    codes = {c for b in only["build"] for f in b["files"] for c in f["certifications"]}
    assert codes == {code}
    assert only["delta"]["other_certifications"] > 0


def test_passages_extracted_with_another_key_are_refused_before_any_claim(config, tmp_path):
    """A passages file from another ledger (or an older extractor) would be sent under
    ids this ledger cannot match again: the delta refuses it and claims nothing."""
    from cpf_deposit.ledger import open_ledger, passage_counts
    from cpf_deposit.pipeline import delta_step, extract_step, gate_step, source_of

    source = source_of(config, "apogee")
    work = tmp_path / "work"
    extract_step(config, source, FULL, work, "run-x", bytes(32))
    gate_step(config, source, work, "run-x", TODAY)
    ledger = open_ledger(config)
    try:
        with pytest.raises(PipelineError, match="not made with this ledger's key"):
            delta_step(config, ledger, work, "run-x")
        assert passage_counts(ledger) == {}
    finally:
        ledger.dispose()


def test_chunks_hold_about_one_file_worth_of_bytes(tmp_path):
    from cpf_deposit.flux.writer import render_passage
    from cpf_deposit.passage_io import read_passages
    from cpf_deposit.pipeline import _write_chunks
    from tests.bench.synthetic import synthetic_passages

    max_bytes = 300_000
    counts = _write_chunks(synthetic_passages(3000), tmp_path, 200_000, max_bytes)
    assert sum(counts.values()) == 3000
    sizes = []
    for name in sorted(counts):
        sizes.append(
            sum(
                len(render_passage(p).encode()) for p in read_passages(tmp_path / f"{name}.parquet")
            )
        )
    assert max(sizes) <= max_bytes
    assert min(sizes[:-1]) >= 0.8 * max_bytes  # full chunks, not many small files
    # without a byte budget, only the passage count cuts
    assert _write_chunks(synthetic_passages(3000), tmp_path, 1000) == {
        "0000": 1000,
        "0001": 1000,
        "0002": 1000,
    }


def test_a_file_changed_after_its_build_is_never_marked_valid(config, tmp_path):
    from cpf_deposit.pipeline import SELECTED, _write_chunks, build_step, built_files, validate_step
    from tests.bench.synthetic import synthetic_passages

    work = tmp_path / "work"
    _write_chunks(synthetic_passages(50), work / SELECTED, 1000)
    build_step(config, work, "0000")
    (name,) = built_files(work)
    path = next((work / "flux").glob(f"*/{name}"))
    assert validate_step(config, work, name)["valid"]
    path.write_bytes(path.read_bytes().replace(b"<cpf:sexe>M<", b"<cpf:sexe>F<", 1))
    with pytest.raises(PipelineError, match="changed since it was built"):
        validate_step(config, work, name)
    assert not path.with_suffix(".valid").exists()
