"""Window ends are exclusive everywhere: each award falls in exactly one of two
consecutive runs (academic years run 1 September to 1 September, exclusive; the
passport starts on 2021-07-01, inclusive).

Through the real SQL on a small SQLite Apogée, by ``pipeline.extract_step`` (what the
DAG tasks and ``cpf-deposit run`` call) and by ``extract()`` itself.
"""

from __future__ import annotations

import datetime as dt

import pytest

from cpf_deposit.config import load_config
from cpf_deposit.passage_io import read_passages
from cpf_deposit.pipeline import PASSAGES, PipelineError, Window, extract_step
from cpf_deposit.sources.extract import bind_window, extract
from tests.sources.source_helpers import PERSON, build_apogee, jury, result

ID_KEY = bytes(32)
# award date -> the academic year whose run must extract it (None: no run, before passport)
AWARDS = {
    "2021-06-30": None,
    "2021-07-01": 2020,
    "2021-08-31": 2020,
    "2021-08-31 23:30:00": 2020,
    "2021-09-01": 2021,
    "2022-06-30": 2021,
    "2022-07-01": 2021,
    "2022-08-31": 2021,
    "2022-09-01": 2022,
    "2023-08-31": 2022,
    "2023-09-01": 2023,
}
YEARS = (2020, 2021, 2022, 2023)


def _key(number: int) -> str:
    return f"{number}-LINFO-1"


@pytest.fixture(scope="module")
def boundary_db(tmp_path_factory):
    """One graduate per boundary date (cod_ind = position in AWARDS, from 1)."""
    persons, results, juries = [], [], []
    for number, award in enumerate(AWARDS, start=1):
        persons.append(
            {**PERSON, "cod_ind": number, "cod_etu": 21000000 + number,
             "cod_nne_ind": f"{123456000 + number}A"}
        )  # fmt: skip
        year = str(int(award[:4]) - (1 if award[5:7] < "09" else 0))
        results.append(result(cod_ind=number, anu=year, obt=award))
        juries.append(jury(anu=year, date=award[:10]))
    unique = {(j["cod_dip"], j["cod_vrs_vdi"], j["cod_anu"]): j for j in juries}
    return build_apogee(
        tmp_path_factory.mktemp("windows") / "apogee.sqlite",
        persons,
        results,
        list(unique.values()),
    )


@pytest.fixture(scope="module")
def by_year(boundary_db, tmp_path_factory):
    """Record keys extracted by the run of each academic year, through extract_step."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_TEST_WINDOWS", f"sqlite://{boundary_db}")
        mp.setenv("CPF_DEPOSIT_HOME", str(home))
        mp.delenv("CPF_DEPOSIT_CONFIG", raising=False)
        config = load_config()
        source = config.sources["apogee"]
        source = type(source)(source.name, source.system, "test_windows", None, source.options)
        out = {}
        for year in YEARS:
            work = home / f"work-{year}"
            summary = extract_step(
                config, source, Window.academic_year(year), work, f"run-{year}", ID_KEY
            )
            out[year] = (summary, {p.source_record_key for p in read_passages(work / PASSAGES)})
    return out


@pytest.mark.parametrize(("award", "year"), list(AWARDS.items()))
def test_a_boundary_award_is_extracted_by_exactly_one_run(by_year, award, year):
    key = _key(list(AWARDS).index(award) + 1)
    runs = [y for y in YEARS if key in by_year[y][1]]
    assert runs == ([] if year is None else [year])


@pytest.mark.parametrize("year", YEARS[:-1])
def test_consecutive_academic_years_share_no_award(by_year, year):
    assert not by_year[year][1] & by_year[year + 1][1]


def test_the_windows_the_runs_report(by_year):
    # the first academic year is clipped to the passport start, inclusive
    assert by_year[2020][0]["window"] == {"start": "2021-07-01", "end": "2021-09-01"}
    assert by_year[2021][0]["window"] == {"start": "2021-09-01", "end": "2022-09-01"}
    extracted = set().union(*(keys for _, keys in by_year.values()))
    expected = {_key(i) for i, (_, y) in enumerate(AWARDS.items(), start=1) if y is not None}
    assert extracted == expected


@pytest.mark.parametrize(
    ("start", "end", "awards"),
    [
        ("2021-08-31", "2021-09-01", {"2021-08-31", "2021-08-31 23:30:00"}),
        ("2021-09-01", "2021-09-02", {"2021-09-01"}),
        ("2022-06-30", "2022-07-01", {"2022-06-30"}),
        ("2022-07-01", "2022-07-02", {"2022-07-01"}),
        ("2021-06-30", "2021-07-01", {"2021-06-30"}),  # extract() itself does not clip
    ],
)
def test_extract_takes_the_end_as_exclusive(boundary_db, tmp_path, monkeypatch, start, end, awards):
    monkeypatch.setenv("AIRFLOW_CONN_TEST_WINDOWS", f"sqlite://{boundary_db}")
    out = tmp_path / "out.parquet"
    extract(
        "apogee",
        "test_windows",
        dt.date.fromisoformat(start),
        dt.date.fromisoformat(end),
        out,
        id_key=ID_KEY,
    )
    keys = {p.source_record_key for p in read_passages(out)}
    assert keys == {_key(list(AWARDS).index(a) + 1) for a in awards}


@pytest.mark.parametrize("conn_type", ["sqlite", "oracle", "postgres"])
def test_the_binds_are_the_window_itself(conn_type):
    start, end = dt.date(2023, 9, 1), dt.date(2024, 9, 1)
    binds = bind_window(conn_type, start, end)
    as_dates = {k: dt.date.fromisoformat(str(v)) for k, v in binds.items()}
    assert as_dates == {"date_from": start, "date_to": end}


def test_an_empty_window_is_refused(boundary_db, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TEST_WINDOWS", f"sqlite://{boundary_db}")
    day = dt.date(2021, 9, 1)
    with pytest.raises(ValueError, match="exclusive"):
        extract("apogee", "test_windows", day, day, tmp_path / "o.parquet", id_key=ID_KEY)
    with pytest.raises(ValueError, match="empty window"):
        Window(day, day)
    assert Window.academic_year(2023) == Window(dt.date(2023, 9, 1), dt.date(2024, 9, 1))
    assert Window(dt.date(2021, 1, 1), dt.date(2021, 7, 1)).clipped is None  # ends at the start
    assert Window(dt.date(2021, 1, 1), dt.date(2021, 7, 2)).clipped == Window(
        dt.date(2021, 7, 1), dt.date(2021, 7, 2)
    )


def test_a_window_ending_on_the_passport_start_stops_the_step(tmp_path, isolated_home):
    config = load_config()
    window = Window(dt.date(2020, 9, 1), dt.date(2021, 7, 1))
    with pytest.raises(PipelineError, match="before 2021-07-01"):
        extract_step(config, config.sources["apogee"], window, tmp_path / "w", "r", ID_KEY)
