"""What the Airflow tasks do with errors, deposits and reminders (no Airflow run needed).

``task_failures`` fails a task at once on a terminal error (no retry can change it) and
leaves everything else to Airflow's retries; ``record_deposits`` names who deposited;
``remind_pending_deposits`` reminds on every 7th day of a wait, never once it timed out.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket

import pytest
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from cpf_deposit import orchestration
from cpf_deposit.config import ConfigError
from cpf_deposit.errors import DataError, TransientError, is_retryable
from cpf_deposit.ledger import LedgerError
from cpf_deposit.ledger.status import find_file
from cpf_deposit.orchestration import record_deposits, remind_pending_deposits, task_failures
from cpf_deposit.pipeline import PipelineError
from cpf_deposit.receipts.parser import Receipt, ReceiptError
from cpf_deposit.staging import pending_deposit
from tests.ledger_helpers import passages, run_pipeline

LOG = "cpf_deposit.orchestration"


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG]


# --------------------------------------------------------------------------------------
# task_failures: terminal errors fail at once, the rest keeps Airflow's retries
# --------------------------------------------------------------------------------------


def _empty_receipt_error(tmp_path) -> ReceiptError:
    path = tmp_path / "Accuse_de_traitement_vide.xml"
    path.write_bytes(b"")
    try:
        Receipt(path)
    except ReceiptError as exc:
        return exc
    raise AssertionError("an empty receipt was read")


@pytest.mark.parametrize(
    "make",
    [
        lambda _: DataError("flux CPF_20260101_x.xml : 3 passage(s) non valides"),
        lambda _: ConfigError("institution.uai", "7 digits and a letter", "institution.yaml"),
        lambda _: PipelineError("window 2020-01-01..2020-06-01 ends before 2021-07-01"),
        lambda _: LedgerError("fichier inconnu du registre : CPF_20260101_x.xml"),
        _empty_receipt_error,
    ],
    ids=["data", "config", "pipeline", "ledger", "receipt"],
)
def test_a_terminal_error_fails_the_task_at_once(make, tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger=LOG)
    error = make(tmp_path)
    with pytest.raises(AirflowFailException) as failed, task_failures():
        raise error
    assert str(failed.value) == str(error)
    assert failed.value.__cause__ is error
    assert _messages(caplog) == [f"échec définitif, pas de nouvel essai : {error}"]


def test_a_wrapped_terminal_error_fails_too():
    """An unknown wrapper raised ``from`` a refusal keeps the refusal's verdict."""
    with pytest.raises(AirflowFailException, match="idFlux inconnu"), task_failures():
        try:
            raise DataError("idFlux inconnu : 0123456789")
        except DataError as exc:
            raise RuntimeError("idFlux inconnu : 0123456789") from exc


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unreachable_database() -> OperationalError:
    engine = create_engine(
        f"postgresql+psycopg2://cpf@127.0.0.1:{_closed_port()}/ledger",
        connect_args={"connect_timeout": 2},
    )
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("a closed port accepted a connection")


@pytest.mark.parametrize(
    ("make", "verdict"),
    [
        (lambda: TransientError("registre injoignable"), True),
        (_unreachable_database, True),
        (lambda: RuntimeError("something nobody classified"), None),
        (lambda: ValueError("an unclassified refusal"), None),
    ],
    ids=["transient", "sqlalchemy-operational", "runtime", "value"],
)
def test_a_transient_or_unknown_error_comes_out_unchanged(make, verdict, caplog):
    caplog.set_level(logging.ERROR, logger=LOG)
    error = make()
    assert is_retryable(error) is verdict  # retryable, or unknown: Airflow retries both
    with pytest.raises(type(error)) as raised, task_failures():
        raise error
    assert raised.value is error
    assert not isinstance(raised.value, AirflowFailException)
    assert _messages(caplog) == []


def test_no_error_no_change():
    with task_failures():
        value = 1
    assert value == 1


# --------------------------------------------------------------------------------------
# record_deposits: the typed name, else the user who answered the form
# --------------------------------------------------------------------------------------


@pytest.fixture
def staged(sqlite_ledger, config, config_path, monkeypatch):
    """Two staged files in the config's own SQLite ledger, which the tasks open."""
    monkeypatch.setenv("CPF_DEPOSIT_CONFIG", str(config_path))
    monkeypatch.delenv("AIRFLOW_CONN_CPF_LEDGER", raising=False)
    cands = passages(sqlite_ledger.id_key, 0, 6)
    _, _, files = run_pipeline(sqlite_ledger, config, cands, max_passages=3)
    assert len(files) == 2
    return {"staged": [{"file_name": f.file_name, "passages": f.passages} for f in files]}


def _deposited_by(ledger, file_name: str) -> str | None:
    with ledger.engine.connect() as conn:
        return find_file(conn, file_name).deposited_by


_USER = {"id": "42", "name": "Agent Connecté"}


@pytest.mark.parametrize(
    ("params_input", "user", "expected"),
    [
        ({"deposited_by": "  Agent Saisi  "}, _USER, "Agent Saisi"),
        ({"deposited_by": ""}, _USER, "Agent Connecté"),
        ({"deposited_by": "   "}, _USER, "Agent Connecté"),
        ({"deposited_by": None}, _USER, "Agent Connecté"),
        ({}, _USER, "Agent Connecté"),
        (None, _USER, "Agent Connecté"),
    ],
    ids=["typed", "empty", "blank", "none", "absent", "no-params"],
)
def test_record_deposits_names_who_deposited(
    staged, sqlite_ledger, caplog, params_input, user, expected
):
    caplog.set_level(logging.INFO, logger=LOG)
    response = {
        "params_input": params_input,
        "responded_by_user": user,
        "responded_at": "2026-07-02T10:00:00+00:00",
    }
    out = record_deposits(staged, response)
    names = [f["file_name"] for f in staged["staged"]]
    assert out == {"deposited": names, "by": expected}
    for name in names:
        assert _deposited_by(sqlite_ledger, name) == expected
    assert pending_deposit(sqlite_ledger) == []
    # The log names the files, never the person.
    text = "\n".join(_messages(caplog))
    assert all(name in text for name in names) and expected not in text


@pytest.mark.parametrize(
    "response",
    [
        {"params_input": {"deposited_by": ""}, "responded_by_user": None},
        {"params_input": {"deposited_by": None}, "responded_by_user": {}},
        {"params_input": {}, "responded_by_user": {"name": ""}},
        {},
    ],
    ids=["empty-no-user", "none-empty-user", "user-without-name", "nothing"],
)
def test_record_deposits_refuses_an_answer_naming_nobody(staged, sqlite_ledger, response):
    with pytest.raises(PipelineError, match="names nobody"):
        record_deposits(staged, response)
    assert len(pending_deposit(sqlite_ledger)) == 2  # nothing recorded


# --------------------------------------------------------------------------------------
# remind_pending_deposits: days 7, 14, 21 and 28 of a wait, never from day 30
# --------------------------------------------------------------------------------------


@pytest.fixture
def one_staged(sqlite_ledger, config, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_CPF_LEDGER", raising=False)
    cands = passages(sqlite_ledger.id_key, 0, 4)
    _, _, (f,) = run_pipeline(sqlite_ledger, config, cands, max_passages=10)
    (rec,) = pending_deposit(sqlite_ledger)
    staged_at = rec.staged_at
    if staged_at.tzinfo is None:
        staged_at = staged_at.replace(tzinfo=dt.UTC)
    return f, staged_at, cands


def test_reminders_on_days_7_14_21_28_only(one_staged, config, caplog, monkeypatch):
    f, staged_at, _ = one_staged
    mails = []
    monkeypatch.setattr(orchestration, "_send_mail", lambda *a: mails.append(a))
    reminded_on = []
    for day in range(0, 43):
        for hours in (0, 5):  # a daily task may fire at any hour of the day
            now = staged_at + dt.timedelta(days=day, hours=hours)
            out = remind_pending_deposits(None, now=now, config=config)
            assert out["pending"] == 1
            if out["reminded"]:
                assert out["reminded"] == [f.file_name]
                reminded_on.append(day)
    assert sorted(set(reminded_on)) == [7, 14, 21, 28]
    assert mails == []  # no address configured: the log only


def test_no_reminder_at_or_after_the_timeout(one_staged, config):
    _, staged_at, _ = one_staged
    for waited in (
        dt.timedelta(days=30),
        dt.timedelta(days=30, seconds=1),
        dt.timedelta(days=35),
        dt.timedelta(days=42),
        dt.timedelta(days=56),
    ):
        out = remind_pending_deposits(None, now=staged_at + waited, config=config)
        assert out["reminded"] == [], waited


def test_reminders_log_and_mail_counts_and_file_names_only(one_staged, config, caplog, monkeypatch):
    f, staged_at, cands = one_staged
    mails = []
    monkeypatch.setattr(orchestration, "_send_mail", lambda *a: mails.append(a))
    caplog.set_level(logging.INFO, logger=LOG)

    out = remind_pending_deposits(
        "depot@example.org", now=staged_at + dt.timedelta(days=14), config=config
    )

    assert out == {"pending": 1, "reminded": [f.file_name]}
    assert _messages(caplog) == [
        f"rappel : {f.file_name} (4 passages) attend son dépôt depuis 14 jours",
        "rappels : 1 fichier(s) en attente de dépôt, 1 rappel(s)",
    ]
    ((to, subject, body),) = mails
    assert to == "depot@example.org" and "1 fichier(s)" in subject
    assert f.file_name in body and "14 jours" in body
    text = "\n".join([*_messages(caplog), subject, body])
    for p in cands:
        for value in (p.birth_name, p.first_name_1, p.source_record_key, p.technical_id):
            assert value not in text
        assert p.award_date.isoformat() not in text


# --------------------------------------------------------------------------------------
# The deposit form: which files a staging's form lists
# --------------------------------------------------------------------------------------


class _Event:
    def __init__(self, extra):
        self.extra = extra


def test_a_staging_event_names_its_files_and_a_manual_run_names_none():
    staged = {"staged": [{"file_name": "CPF_A.xml"}, {"file_name": "CPF_B.xml"}]}
    extra = orchestration.staged_event(staged)
    assert extra == {"files": ["CPF_A.xml", "CPF_B.xml"]}
    asset = object()
    events = {asset: [_Event(extra), _Event({"files": ["CPF_C.xml"]}), _Event(None)]}
    assert orchestration.staged_names(events, asset) == ["CPF_A.xml", "CPF_B.xml", "CPF_C.xml"]
    assert orchestration.staged_names({}, asset) is None  # triggered by hand
    assert orchestration.staged_names(None, asset) is None
    assert orchestration.staged_names({asset: [_Event({"files": []})]}, asset) == []


def test_the_form_lists_the_named_files_still_awaiting_deposit(staged, sqlite_ledger, config):
    names = [f["file_name"] for f in staged["staged"]]
    one = orchestration.files_awaiting_form(names[:1], config)
    assert [f["file_name"] for f in one["staged"]] == names[:1]
    assert names[0] in one["form"] and names[1] not in one["form"]
    assert one["notification"]["subject"].startswith("[CPF] 1 fichier")
    every = orchestration.files_awaiting_form(None, config)  # a manual run: all pending
    assert sorted(f["file_name"] for f in every["staged"]) == sorted(names)
    record_deposits({"staged": one["staged"]}, {"params_input": {"deposited_by": "Agent"}})
    again = orchestration.files_awaiting_form(names, config)
    assert [f["file_name"] for f in again["staged"]] == names[1:], "deposited: not asked again"
    nothing = orchestration.files_awaiting_form([], config)  # a dry run staged nothing
    assert nothing["staged"] == [] and nothing["form"] == ""
