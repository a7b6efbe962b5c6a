"""Receipt helpers: put files and passages in the ledger through its own functions (the
throwaway ledgers and the config come from tests/ledger_fixtures.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path


def deposit_file(
    ledger,
    file_name: str,
    id_flux: str,
    technical_ids: list[str],
    *,
    run_id: str = "run-receipts",
    first: int = 0,
    deposit: bool = True,
    changes: dict | None = None,
):
    """Claim, record, stage and (by default) deposit a file holding these idTechniques."""
    from cpf_deposit.flux.writer import WrittenFile
    from cpf_deposit.ledger import mark_deposited, select_delta
    from cpf_deposit.ledger.runs import finish_run, register_run
    from cpf_deposit.ledger.status import mark_file_staged, record_file
    from tests.ledger_helpers import make_passage

    now = dt.datetime.now(dt.UTC)
    with ledger.begin() as conn:
        register_run(conn, run_id, kind="test", params={}, bound_to_process=True, now=now)
    passages = [
        dataclasses.replace(
            make_passage(ledger.id_key, first + i, **(changes or {})), technical_id=tid
        )
        for i, tid in enumerate(technical_ids)
    ]
    chosen = [p.technical_id for p in select_delta(ledger, passages, run_id)]
    assert chosen == list(technical_ids), "the test passages must all be selected"
    wf = WrittenFile(
        Path(file_name),
        id_flux,
        "2023-10-16T22:32:39+02:00",
        passages=len(chosen),
        size=1000,
        sha256=hashlib.sha256(file_name.encode()).hexdigest(),
        certifications={"RNCP24514": len(chosen)},
    )
    with ledger.begin() as conn:
        record_file(conn, run_id, wf, chosen, work_path="-", now=now)
    with ledger.begin() as conn:
        assert mark_file_staged(conn, id_flux, "outbox", now, run_id)
    finish_run(ledger, run_id)
    if deposit:
        mark_deposited(ledger, id_flux, "Jeanne")
    return passages


def snapshot(ledger) -> dict[str, list]:
    """Every ledger row but the runs: a refused receipt must leave all of them as they were."""
    from sqlalchemy import select

    from cpf_deposit.ledger.schema import ledger_file, ledger_passage, ledger_sending

    out = {}
    with ledger.engine.connect() as conn:
        for t in (ledger_file, ledger_passage, ledger_sending):
            out[t.name] = sorted(tuple(map(str, r)) for r in conn.execute(select(t)).all())
    return out


def cli(argv: list[str]) -> int:
    """``cpf-deposit`` with this work's commands added (the lead wires them in cli.py)."""
    from cpf_deposit import cli as cli_module

    mods = cli_module.COMMAND_MODULES
    extra = ("cpf_deposit.commands.ingest_receipts", "cpf_deposit.commands.report")
    cli_module.COMMAND_MODULES = (*mods, *(m for m in extra if m not in mods))
    try:
        return cli_module.main(argv)
    finally:
        cli_module.COMMAND_MODULES = mods
