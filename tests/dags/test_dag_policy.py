"""Policy for every DAG: it imports, and it says who owns it, what it does and when."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
ALLOWED_TAGS = {
    "cpf",
    "stage/deposit",
    "stage/receipts",
    "cadence/nightly",
    "cadence/annual",
    "cadence/hourly",
    "cadence/daily",
    "cadence/on-staging",
    "source/apogee",
    "source/geode",
    "source/pegase",
}
HEAVY = ("great_expectations", "pandas", "lxml", "pyarrow", "sqlglot", "openpyxl")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"cpf_deposit_apogee_nightly", "cpf_deposit_apogee_annual", "cpf_receipts"} <= set(
        dagbag.dags
    )


def _dags(dagbag):
    return sorted(dagbag.dags.values(), key=lambda d: d.dag_id)


def test_tags_owner_retries(dagbag):
    for dag in _dags(dagbag):
        assert dag.tags and set(dag.tags) <= ALLOWED_TAGS, dag.dag_id
        assert "cpf" in dag.tags
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", (dag.dag_id, t.task_id)
            assert t.retries >= 1 or t.task_id == "await_deposit", (dag.dag_id, t.task_id)
            assert t.on_failure_callback, (dag.dag_id, t.task_id)


def test_schedule_catchup_and_start_date(dagbag):
    for dag in _dags(dagbag):
        assert dag.start_date.tzinfo is not None, dag.dag_id
        local = dag.start_date.astimezone(ZoneInfo("Europe/Paris"))
        assert local.isoformat() == "2021-07-01T00:00:00+02:00", dag.dag_id
        if dag.dag_id.endswith("_annual"):
            assert dag.catchup is True and dag.max_active_runs == 1
        elif dag.dag_id.endswith("_nightly"):
            assert dag.catchup is False


def test_doc_md_says_purpose_owner_inputs_outputs_and_backfill(dagbag):
    for dag in _dags(dagbag):
        doc = dag.doc_md or ""
        for section in ("**Purpose.**", "**Owner.**", "**Inputs.**", "**Outputs.**"):
            assert section in doc, (dag.dag_id, section)
        if dag.dag_id.endswith(("_annual", "_nightly")):
            assert "airflow backfill create" in doc and "--reprocess-behavior" in doc


def test_params_have_titles_and_refuse_bad_values(dagbag):
    import copy

    dag = dagbag.dags["cpf_deposit_apogee_annual"]
    for name, param in dag.params.items():
        assert param.schema.get("title") and param.description, name
    bad = [
        {"academic_year": 1999},
        {"certification_codes": ["24514"]},
        {"dry_run": "oui"},
    ]
    for conf in bad:
        params = copy.deepcopy(dag.params)
        with pytest.raises(Exception, match=r"Invalid input for param|Value"):
            for name, value in conf.items():
                params[name] = value
            params.validate()
    good = copy.deepcopy(dag.params)
    good["academic_year"] = 2023
    good["certification_codes"] = ["RNCP34034"]
    assert good.validate()["academic_year"] == 2023


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parsing_imports_no_heavy_library(path):
    """What parse time depends on: importing a DAG file must not pull GX, pandas, lxml..."""
    code = (
        "import json, sys, time, runpy\n"
        "t = time.perf_counter()\n"
        f"runpy.run_path({str(path)!r})\n"
        "print(json.dumps({'seconds': time.perf_counter() - t, "
        "'modules': sorted(sys.modules)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    loaded = {m.split(".")[0] for m in result["modules"]}
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    print(f"{path.name}: parsed in {result['seconds']:.2f} s")
