"""Reconciliation, the worklist and the report; the whole loop on demo data."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pandas as pd
import pytest

from cpf_deposit.receipts.ingest import ingest_inbox
from cpf_deposit.receipts.reconcile import reconcile, sendings, worklist
from cpf_deposit.receipts.report import write_report
from tests.receipts.conftest import cli, deposit_file
from tests.receipts.test_ingest import STAGE_1, drop, receipt_xml

FILE_A, FLUX_A = "CPF_0720916E_01BJD364_20240715150000.xml", "aaaaaaaa-0000-4000-8000-000000000001"
FILE_B, FLUX_B = "CPF_0720916E_01BJD364_20240901150000.xml", "bbbbbbbb-0000-4000-8000-000000000002"
STAGE_2 = (
    "Aucun titulaire ne correspond aux critères obligatoires enrichis du jour et du mois de "
    "naissance"
)


def _key(i: int) -> str:  # tests/ledger/ledger_helpers.make_passage's source record key
    return f"{20230000 + i}-DIP-{i % 7}-2023"


@pytest.fixture
def rejected_two(sqlite_ledger, config):
    """File A: T-A and T-B rejected, T-C and T-D accepted; the gate had warned on T-A."""
    deposit_file(sqlite_ledger, FILE_A, FLUX_A, ["T-A", "T-B", "T-C", "T-D"], run_id="run-1")
    verdicts = Path(config.paths.quarantine) / "run-1" / "verdicts.parquet"
    verdicts.parent.mkdir(parents=True)
    pd.DataFrame(
        {
            "source_record_key": [_key(0), _key(1), _key(2), _key(3)],
            "verdict": ["WARN", "OK", "WARN", "OK"],
            "rule_ids": ["R06;R09E", "", "R09E", ""],
        }
    ).to_parquet(verdicts)
    drop(
        config,
        f"Accusé de traitement_{FILE_A}_20240801.xml",
        receipt_xml(FILE_A, FLUX_A, ko=[("T-A", STAGE_1), ("T-B", STAGE_2)], ok=["T-C", "T-D"]),
    )
    ingest_inbox(sqlite_ledger, config)
    return sqlite_ledger


def _follow_up(table: pd.DataFrame) -> dict[str, str]:
    return dict(zip(table["idTechnique"], table["suivi"], strict=True))


def test_worklist_says_what_became_of_each_rejection(rejected_two, config):
    table = worklist(sendings(rejected_two, config))
    assert _follow_up(table) == {"T-A": "à corriger", "T-B": "à corriger"}
    row = table.set_index("idTechnique").loc["T-A"]
    assert row["clé source"] == _key(0)
    assert row["message CDC"] == STAGE_1
    assert row["motif CDC"] == "Aucun titulaire : critères obligatoires (étape 1)"
    assert row["règles du contrôle d'identité"] == "R06, R09E"
    assert "R06" in row["cause probable"]  # the rule that points at stage 1
    assert "R09E" in row["correction suggérée"]  # the other one, listed apart
    assert "nom de naissance" in row["correction suggérée"]

    # T-A corrected at the source and sent again in file B
    deposit_file(
        rejected_two,
        FILE_B,
        FLUX_B,
        ["T-A"],
        run_id="run-2",
        deposit=False,
        changes={"birth_name": "NOMCORRIGE"},
    )
    table = worklist(sendings(rejected_two, config))
    assert _follow_up(table) == {
        "T-A": "corrigé et renvoyé : en attente de dépôt",
        "T-B": "à corriger",
    }
    assert table["idTechnique"].tolist() == ["T-B", "T-A"]  # what is left to do comes first

    drop(
        config,
        f"Accusé de traitement_{FILE_B}_20240905.xml",
        receipt_xml(FILE_B, FLUX_B, ok=["T-A"]),
    )
    ingest_inbox(rejected_two, config)
    table = worklist(sendings(rejected_two, config))
    assert _follow_up(table)["T-A"] == "corrigé et renvoyé : accepté"


@pytest.mark.parametrize(
    ("dimension", "value", "accepted", "rejected"),
    [
        ("file_name", FILE_A, 2, 2),
        ("source_system", "APOGEE", 2, 2),
        ("certification", "RNCP24514", 1, 1),  # T-B rejected, T-C accepted (i % 3 != 0)
        ("certification", "RNCP34034", 1, 1),  # T-A rejected, T-D accepted
    ],
)
def test_rates_per_dimension(rejected_two, config, dimension, value, accepted, rejected):
    rec = reconcile(sendings(rejected_two, config))
    assert (rec.accepted, rec.rejected, rec.rate) == (2, 2, 0.5)
    row = rec.by[dimension].set_index(dimension).loc[value]
    assert (row["accepted"], row["rejected"]) == (accepted, rejected)


def test_gate_prediction_breakdown(rejected_two, config):
    rec = reconcile(sendings(rejected_two, config))
    gate = rec.gate.set_index("rule")
    assert gate.loc["R06"].tolist()[:2] == [1, 1]
    assert gate.loc["R09E"].tolist()[:2] == [2, 1]
    assert gate.loc["aucune règle"].tolist()[:2] == [2, 1]
    reasons = dict(zip(rec.reasons["reason_code"], rec.reasons["rejected"], strict=True))
    assert reasons == {"no_match_stage_1": 1, "no_match_stage_2": 1}


def test_report_and_worklist_files(rejected_two, config):
    files = write_report(rejected_two, config)
    page = files.html.read_text(encoding="utf-8")
    assert "50,00 %" in page and "seuil CDC 90 %" in page and "92,25 %" in page
    assert "<svg" in page
    assert not re.search(r"(https?:)?//[a-z]", page), "the page must not fetch anything"
    assert "<script" not in page and _key(0) not in page  # no personal data in the page
    for path in (files.worklist_csv, files.worklist_xlsx):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    csv = pd.read_csv(files.worklist_csv, sep=";", encoding="utf-8-sig", dtype=str)
    assert set(csv["idTechnique"]) == {"T-A", "T-B"}
    from openpyxl import load_workbook

    ws = load_workbook(files.worklist_xlsx).active
    assert [c.value for c in ws[1]][:3] == ["clé source", "système source", "certification"]
    assert ws.max_row == 3


def test_full_loop_on_demo_data(isolated_home, monkeypatch, capsys):
    """run → deposited → simulate-cdc → ingest-receipts → report, as an operator would."""
    monkeypatch.chdir(isolated_home)
    assert cli(["demo-data", "--graduates", "250", "--seed", "5"]) == 0
    db = isolated_home / "var" / "demo" / "apogee.sqlite"
    monkeypatch.setenv(
        "AIRFLOW_CONN_APOGEE_DB", "sqlite:///" + str(db).lstrip("/")
    )  # as demo-data prints it
    assert cli(["run", "--source", "apogee", "--from", "2021-07-01", "--to", "2026-12-01"]) == 0
    staged = sorted((isolated_home / "var" / "outbox").glob("CPF_*.xml"))
    assert staged
    assert cli(["deposited", *map(str, staged), "--by", "Jeanne"]) == 0
    archived = [isolated_home / "var" / "archive" / p.name for p in staged]
    assert cli(["simulate-cdc", *map(str, archived)]) == 0
    capsys.readouterr()

    assert cli(["ingest-receipts"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"(\d+) accepted of (\d+) processed, reconciliation ([\d,]+) %", out)
    assert m, out
    accepted, processed = int(m[1]), int(m[2])
    assert 0 < accepted <= processed
    assert cli(["ingest-receipts"]) == 0  # empty inbox: nothing to do

    code = cli(["report"])
    out = capsys.readouterr().out
    rate = f"{100 * accepted / processed:.2f} %".replace(".", ",")
    assert f"reconciliation rate {rate} over {processed} processed" in out
    assert code == (0 if accepted / processed >= 0.9 else 1)
    reports = isolated_home / "var" / "reports"
    assert len(list(reports.glob("rapprochement-cdc-*.html"))) == 1
    (xlsx,) = reports.glob("rejets-cdc-a-corriger-*.xlsx")
    assert stat.S_IMODE(os.stat(xlsx).st_mode) == 0o600
