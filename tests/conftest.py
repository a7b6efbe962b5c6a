"""Shared fixtures. The CDC reference files live in ../shared (CI has it beside the clone);
the product never needs them, only the tests that compare against the official kit."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Throwaway ledgers (SQLite template, PostgreSQL databases) shared by the ledger,
# receipts and pipeline tests.
pytest_plugins = ["tests.ledger_fixtures"]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE_CDC = SHARED / "reference" / "cdc"
OFFICIAL_XSD = REFERENCE_CDC / "cpf-flux-v1.1.2.xsd"
OFFICIAL_SAMPLE = REFERENCE_CDC / "cpf-flux-sample-kit-v2.0.0.xml"
OFFICIAL_RECEIPT = REFERENCE_CDC / "accuse-traitement-sample-pix-2023-10-18.xml"

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Airflow reads its home when first imported: give every test process (each xdist
# worker) its own throwaway home and metadata database, before anything imports it.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="cpf-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"


def pytest_configure(config):
    missing = [p for p in (OFFICIAL_XSD, OFFICIAL_SAMPLE) if not p.is_file()]
    if missing:
        raise pytest.UsageError(
            f"the CDC reference kit is expected beside the clone ({SHARED}); missing: "
            + ", ".join(str(p) for p in missing)
        )


@pytest.fixture(scope="session")
def official_schema():
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(OFFICIAL_XSD)))


@pytest.fixture(scope="session")
def project_schema():
    from lxml import etree

    from cpf_deposit.config import shipped_xsd

    return etree.XMLSchema(etree.parse(str(shipped_xsd())))


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """Run with the example config, its working folders under a temporary home."""
    monkeypatch.setenv("CPF_DEPOSIT_HOME", str(tmp_path))
    monkeypatch.delenv("CPF_DEPOSIT_CONFIG", raising=False)
    return tmp_path
