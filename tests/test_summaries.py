"""One French line per step, from the step's summary dict: counts and technical ids only."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from cpf_deposit.summaries import summary_line

EXTRACT = {
    "rows": 1234,
    "passages": 1180,
    "errors": 3,
    "warnings": 12,
    "issues": "/var/quarantine/run/signalements-extraction.csv",
    "window": {"start": "2023-09-01", "end": "2024-09-01"},
}
GATE = {
    "OK": 1100,
    "WARN": 60,
    "BLOCK": 20,
    "quarantine": {"xlsx": "/var/quarantine/run/quarantaine.xlsx"},
    "fired": {"R02A": 12, "R07": 8, "R11": 0, "R03": 8, "R20": 1},
}
DELTA = {
    "candidates": 1180,
    "blocked": 20,
    "other_certifications": 0,
    "unreadable": 2,
    "selected": 800,
    "chunks": ["0000"],
    "skipped": {"already_accepted": 300, "claimed_by_another_run": 58},
    "listed": {"changed_after_acceptance": 4},
    "dry_run": False,
}
BUILD = {
    "chunk": "0000",
    "files": [{"file": "CPF_a.xml", "passages": 500}, {"file": "CPF_b.xml", "passages": 300}],
    "passages": 800,
    "refused": [],
}
STAGE = {
    "staged": [
        {"file_name": "CPF_a.xml", "id_flux": "f1", "passages": 500},
        {"file_name": "CPF_b.xml", "id_flux": "f2", "passages": 300},
    ],
    "notification": {"subject": "s", "body": "b"},
    "form": "",
}


@pytest.mark.parametrize(
    ("step", "result", "line"),
    [
        (
            "extract",
            EXTRACT,
            "extraction : 1 234 lignes lues, 1 180 passages, 3 erreurs, 12 avertissements "
            "(fenêtre 2023-09-01 → 2024-09-01 exclue)",
        ),
        (
            "gate",
            GATE,
            "contrôle d'identité : 1 180 lignes, 1 100 OK, 60 avertissements, 20 bloquées "
            "(quarantaine) ; règles les plus fréquentes : R02A 12, R03 8, R07 8",
        ),
        (
            "delta",
            DELTA,
            "sélection : 800 à envoyer en 1 lot (sur 1 180 passages extraits), "
            "300 déjà acceptés, 58 pris par un autre run, 20 bloqués par le contrôle, "
            "2 illisibles ; 4 à examiner",
        ),
        (
            "delta",
            {**DELTA, "listed": {}, "late": 120},
            "sélection : 800 à envoyer en 1 lot (sur 1 180 passages extraits), "
            "300 déjà acceptés, 58 pris par un autre run, 20 bloqués par le contrôle, "
            "2 illisibles ; 120 obtenu(s) depuis plus de trois mois (délai légal de "
            "transmission dépassé)",
        ),
        ("build", BUILD, "construction (lot 0000) : 2 fichiers, 800 passages, 0 refusé"),
        (
            "validate",
            {"file": "CPF_a.xml", "passages": 500, "valid": True},
            "validation : CPF_a.xml valide (500 passages)",
        ),
        (
            "stage",
            STAGE,
            "dépôt préparé : 2 fichiers (800 passages) dans la boîte d'envoi, "
            "à déposer sur le portail de la CDC",
        ),
        (
            "finish",
            {"failed": False, "released": 0, "run_id": "manual__2026"},
            "fin du run manual__2026 : terminé sans erreur",
        ),
        (
            "finish",
            {"failed": True, "released": 12, "run_id": "manual__2026"},
            "fin du run manual__2026 : en échec, 12 passages réservés rendus au registre, "
            "dossier de travail conservé pour diagnostic",
        ),
        (
            "plan",
            {
                "run_id": "scheduled__2024-10-01",
                "source": "apogee",
                "cadence": "annual",
                "window": {"start": "2023-09-01", "end": "2024-09-01"},
                "certifications": [],
                "dry_run": True,
                "recovered": "",
            },
            "plan : run scheduled__2024-10-01, apogee annual, fenêtre 2023-09-01 → "
            "2024-09-01 exclue, toutes certifications, essai à blanc",
        ),
        (
            "ingest",
            {
                "receipts": [{"status": "applied"}, {"status": "applied"}, {"status": "refused"}],
                "accepted": 1150,
                "problem": True,
            },
            "accusés : 3 lus, 2 appliqués, 1 refusé ; 1 150 passages acceptés ; "
            "à examiner (voir le dossier des refusés)",
        ),
        (
            "report",
            {"rate": 0.9234, "processed": 1200, "to_fix": 92, "report": "/r.html"},
            "rapprochement : 92,3 % acceptés sur 1 200 passages traités par la CDC, 92 à corriger",
        ),
        (
            "deposit",
            {"deposited": ["CPF_a.xml"], "by": "Claire Martin"},
            "dépôt enregistré : 1 fichier",
        ),
        (
            "reminders",
            {"pending": 2, "reminded": ["CPF_a.xml"]},
            "rappels : 2 fichiers en attente de dépôt, 1 rappel",
        ),
    ],
)
def test_each_step_has_its_line(step, result, line):
    assert summary_line(step, result) == line


def test_a_dry_run_and_an_empty_stage_say_so():
    assert summary_line("delta", {**DELTA, "dry_run": True}).endswith(
        "(essai à blanc : rien n'est réservé)"
    )
    empty = {"staged": [], "notification": {"subject": "", "body": ""}, "form": ""}
    assert summary_line("stage", empty) == "dépôt préparé : aucun fichier à déposer"


def test_the_depositor_name_never_appears():
    assert "Claire" not in summary_line("deposit", {"deposited": [], "by": "Claire Martin"})


@pytest.mark.parametrize(
    "step",
    [
        "plan",
        "extract",
        "gate",
        "delta",
        "build",
        "validate",
        "stage",
        "finish",
        "ingest",
        "report",
        "deposit",
        "reminders",
    ],
)
@pytest.mark.parametrize("result", [{}, None, {"rows": None, "window": "x", "files": None}])
def test_missing_keys_never_fail(step, result):
    line = summary_line(step, result)
    assert line and "\n" not in line


def test_an_unknown_step_lists_its_counts():
    assert summary_line("purge", {"removed": 3, "expired": 1200, "dir": "/x", "ok": True}) == (
        "purge : removed 3, expired 1 200"
    )
    assert summary_line("purge", {}) == "purge : terminé"


def test_real_pipeline_summaries_hold_no_personal_data(tmp_path, isolated_home, monkeypatch):
    """Every step of a real run on the demo database gives a line without any name."""
    from cpf_deposit.config import load_config
    from cpf_deposit.demo.build import write_demo
    from cpf_deposit.pipeline import Window, run_pipeline

    db = write_demo(tmp_path / "demo", 150, seed=3).apogee
    monkeypatch.setenv("AIRFLOW_CONN_APOGEE_DB", f"sqlite://{db}")
    out = run_pipeline(
        load_config(),
        "apogee",
        Window(dt.date(2021, 7, 1), dt.date(2026, 12, 1)),
        today=dt.date(2026, 11, 30),
    )
    lines = [summary_line(step, out[step]) for step in ("extract", "gate", "delta", "stage")]
    lines += [summary_line("build", b) for b in out["build"]]
    lines += [summary_line("validate", v) for v in out["validate"]]
    assert out["delta"]["selected"] and "0 à envoyer" not in lines[2]
    with sqlite3.connect(db) as conn:
        names = {
            v
            for row in conn.execute(
                "SELECT lib_nom_pat_ind, lib_nom_usu_ind, lib_pr1_ind, lib_vil_nai_etu "
                "FROM individu"
            )
            for v in row
            if v and len(v) > 3
        }
    assert len(names) > 100
    text = "\n".join(lines).upper()
    assert not [n for n in names if n.upper() in text]
