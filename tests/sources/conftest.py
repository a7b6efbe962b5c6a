"""Fixtures of the source tests: hand-built Apogée databases behind Airflow conn ids."""

from __future__ import annotations

import pytest

from tests.sources.source_helpers import build_apogee


@pytest.fixture
def apogee_conn(tmp_path, monkeypatch):
    """Build a database from rows and register it as Airflow connection ``test_apogee``."""

    def make(persons, results, juries, name="apogee.sqlite") -> str:
        db = build_apogee(tmp_path / name, persons, results, juries)
        monkeypatch.setenv("AIRFLOW_CONN_TEST_APOGEE", f"sqlite://{db}")
        return "test_apogee"

    return make
