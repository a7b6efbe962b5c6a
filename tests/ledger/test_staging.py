"""Outbox, manifest, deposit, receipts' transitions, notification, retention."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from cpf_deposit import cli
from cpf_deposit.ledger import (
    FileStatus,
    LedgerError,
    Status,
    mark_accepted,
    mark_deposited,
    mark_rejected,
    passage_counts,
    select_delta,
)
from cpf_deposit.ledger.schema import ledger_file, ledger_sending
from cpf_deposit.staging import (
    MANIFEST_SUFFIX,
    LocalOutbox,
    ObjectStorageOutbox,
    notification_text,
    pending_deposit,
    purge,
    record_deposit,
)
from tests.ledger_helpers import ids_in_file, ids_in_outbox, passages, run_pipeline


def _outbox(config):
    return Path(config.paths.outbox)


def test_staged_file_has_a_private_manifest_without_personal_data(ledger, config):
    cands = passages(ledger.id_key, 0, 7)
    start, _, staged = run_pipeline(ledger, config, cands, max_passages=10)
    (f,) = staged
    xml, man = _outbox(config) / f.file_name, _outbox(config) / (f.file_name + MANIFEST_SUFFIX)
    for path in (xml, man):
        assert path.stat().st_mode & 0o777 == 0o600
    m = json.loads(man.read_text())
    assert m["id_flux"] == f.id_flux and m["passages"] == 7 and m["run_id"] == start.run_id
    assert m["certifications"] == {"RNCP24514": 4, "RNCP34034": 3}
    assert m["size"] == xml.stat().st_size == f.size
    assert m["sha256"] == f.sha256 and len(m["sha256"]) == 64
    text = man.read_text()
    for p in cands:
        assert p.birth_name not in text and p.source_record_key not in text


def test_two_runs_in_the_same_second_get_distinct_file_names(ledger, config):
    moment_files = []
    for first in (0, 4):
        _, _, staged = run_pipeline(ledger, config, passages(ledger.id_key, first, first + 4))
        moment_files += [s.file_name for s in staged]
    assert len(set(moment_files)) == len(moment_files) == 2
    assert sorted(p.name for p in _outbox(config).glob("*.xml")) == sorted(moment_files)


def test_deposit_then_receipts(ledger, config):
    cands = passages(ledger.id_key, 0, 5)
    _, _, (f,) = run_pipeline(ledger, config, cands, max_passages=10)
    ids = [p.technical_id for p in cands]
    rec = record_deposit(ledger, config, f.file_name, "Agent Test")
    assert rec.status == FileStatus.DEPOSITED and rec.deposited_by == "Agent Test"
    assert not (_outbox(config) / f.file_name).exists()
    assert (Path(config.paths.archive) / f.file_name).is_file()
    assert record_deposit(ledger, config, f.id_flux, "Agent Test").status == "DEPOSITED"

    ok = mark_accepted(ledger, f.id_flux, [*ids[:3], "T1-UNKNOWN"])
    assert (ok.applied, ok.unknown) == (3, ["T1-UNKNOWN"])
    assert mark_accepted(ledger, f.id_flux, ids[:3]).already == 3
    ko = mark_rejected(ledger, f.id_flux, [(t, "Plusieurs titulaires") for t in ids[3:]])
    assert ko.applied == 2
    assert passage_counts(ledger) == {Status.ACCEPTED: 3, Status.REJECTED: 2}
    with ledger.engine.connect() as conn:
        status = conn.execute(
            select(ledger_file.c.status).where(ledger_file.c.id_flux == f.id_flux)
        ).scalar_one()
        reasons = set(conn.execute(select(ledger_sending.c.reason)).scalars())
    assert status == FileStatus.PROCESSED
    assert reasons == {None, "Plusieurs titulaires"}


def test_receipt_for_a_staged_file_implies_its_deposit(ledger, config):
    cands = passages(ledger.id_key, 0, 2)
    _, _, (f,) = run_pipeline(ledger, config, cands)
    assert mark_accepted(ledger, f.id_flux, [p.technical_id for p in cands]).applied == 2
    assert passage_counts(ledger) == {Status.ACCEPTED: 2}


def test_deposit_of_a_modified_file_is_refused(ledger, config):
    _, _, (f,) = run_pipeline(ledger, config, passages(ledger.id_key, 0, 2))
    path = _outbox(config) / f.file_name
    path.write_bytes(path.read_bytes().replace(b"Camille", b"Camilla"))
    with pytest.raises(LedgerError, match="sha256"):
        record_deposit(ledger, config, f.file_name, "Agent Test")


@pytest.mark.parametrize(
    "args",
    [
        ["--by", "Agent Test"],
        ["--by", "Agent Test", "--keep"],
        ["--by", "Agent Test", "--at", "2026-07-02T10:00"],
    ],
    ids=["archive", "keep", "at"],
)
def test_deposited_command(ledger, ledger_url, config, config_path, monkeypatch, capsys, args):
    _, _, (f,) = run_pipeline(ledger, config, passages(ledger.id_key, 0, 3))
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("cpf_deposit.commands.deposited",))
    monkeypatch.setenv("AIRFLOW_CONN_CPF_LEDGER", _airflow_uri(ledger_url))
    rc = cli.main(["--config", str(config_path), "deposited", f.file_name, *args])
    out = capsys.readouterr().out
    assert rc == 0 and "1 file(s) recorded (3 passages)" in out
    assert "déposé" in out and "Agent Test" in out
    assert (_outbox(config) / f.file_name).exists() == ("--keep" in args)
    rec = _find(ledger, f.file_name)
    assert rec.status == FileStatus.DEPOSITED and rec.deposited_by == "Agent Test"
    if "--at" in args:
        assert rec.deposited_at == dt.datetime(2026, 7, 2, 8, 0, tzinfo=dt.UTC)


def _find(ledger, name):
    from cpf_deposit.ledger.status import find_file

    with ledger.engine.connect() as conn:
        return find_file(conn, name)


@pytest.mark.parametrize("args", [["--by", "A", "--at", "hier"], ["--by", " "]])
def test_deposited_command_usage_errors(config_path, monkeypatch, capsys, args):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("cpf_deposit.commands.deposited",))
    rc = cli.main(["--config", str(config_path), "deposited", "CPF_X.xml", *args])
    assert rc == 2 and "configuration or usage error" in capsys.readouterr().out


def test_deposited_command_unknown_file(ledger, ledger_url, config_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("cpf_deposit.commands.deposited",))
    monkeypatch.setenv("AIRFLOW_CONN_CPF_LEDGER", _airflow_uri(ledger_url))
    rc = cli.main(["--config", str(config_path), "deposited", "CPF_X.xml", "--by", "A"])
    out = capsys.readouterr().out
    assert rc == 1 and "fichier inconnu" in out and "0 file(s) recorded" in out


def _airflow_uri(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite:////" + url.removeprefix("sqlite:///").lstrip("/")
    return url.replace("postgresql+psycopg2://", "postgres://")


def test_conn_id_fallback_is_a_sqlite_file_under_base_dir(config, monkeypatch):
    from cpf_deposit.ledger import open_ledger

    monkeypatch.delenv("AIRFLOW_CONN_CPF_LEDGER", raising=False)
    led = open_ledger(config)
    assert led.engine.url.database == str(Path(config.paths.base_dir) / "ledger.db")
    led.dispose()


def test_notification_text_is_french_and_names_each_file(ledger, config):
    _, _, staged = run_pipeline(ledger, config, passages(ledger.id_key, 0, 9))
    subject, body = notification_text(staged, config)
    assert subject == (
        f"[CPF] {len(staged)} fichiers à déposer sur le portail de la Caisse des Dépôts "
        "(9 passages)"
    )
    for s in staged:
        assert s.file_name in body and s.id_flux in body and s.sha256 in body
    assert "cpf-deposit deposited" in body and "90 jours" in body
    assert "Camille" not in body and "NOM1" not in body
    assert {f.id_flux for f in pending_deposit(ledger)} == {s.id_flux for s in staged}


def _age(path: Path, days: int, now: dt.datetime) -> None:
    t = (now - dt.timedelta(days=days)).timestamp()
    os.utime(path, (t, t))


class _DepositedWhileListing(LocalOutbox):
    """An outbox whose listing lets the operator record a deposit meanwhile."""

    def __init__(self, root, deposit):
        super().__init__(root)
        self.deposit = deposit

    def names(self):
        names = super().names()
        self.deposit()
        return names


def test_purge_never_expires_a_file_deposited_while_it_ran(ledger, config):
    """Purge sees the file STAGED, the deposit lands, purge must not put it back."""
    now = dt.datetime.now(dt.UTC)
    _, _, (f,) = run_pipeline(ledger, config, passages(ledger.id_key, 0, 3))
    for name in (f.file_name, f.file_name + MANIFEST_SUFFIX):
        _age(_outbox(config) / name, 91, now)
    box = _DepositedWhileListing(
        _outbox(config), lambda: mark_deposited(ledger, f.id_flux, "Agent Test")
    )

    report = purge(config, now, ledger=ledger, outbox=box)

    assert report.expired_files == [] and report.expired_passages == 0
    assert passage_counts(ledger) == {Status.DEPOSITED: 3}
    _, d, staged = run_pipeline(ledger, config, passages(ledger.id_key, 0, 3))
    assert staged == [] and d.sent == 0


def test_purge_removes_old_personal_data_and_resends_expired_files(ledger, config):
    now = dt.datetime.now(dt.UTC)
    cands = passages(ledger.id_key, 0, 6)
    _, _, (old, recent) = run_pipeline(ledger, config, cands, max_passages=3)
    deposited = passages(ledger.id_key, 10, 12)
    _, _, (dep,) = run_pipeline(ledger, config, deposited)
    record_deposit(ledger, config, dep.file_name, "Agent Test")
    for name in (old.file_name, old.file_name + MANIFEST_SUFFIX):
        _age(_outbox(config) / name, 91, now)
    _age(Path(config.paths.archive) / dep.file_name, 200, now)
    receipt = Path(config.paths.archive) / "Accuse_de_traitement_x.xml"
    receipt.write_text("<rapport/>")
    _age(receipt, 200, now)
    q = Path(config.paths.quarantine) / "2026" / "quarantaine.csv"
    q.parent.mkdir(parents=True)
    q.write_text("nom;prenom\n")
    _age(q, 100, now)
    fresh = Path(config.paths.work) / "recent.csv"
    fresh.write_text("x")

    report = purge(config, now, ledger=ledger)

    assert report.expired_files == [old.file_name] and report.expired_passages == 3
    assert not (_outbox(config) / old.file_name).exists()
    assert (_outbox(config) / recent.file_name).exists()
    assert not (Path(config.paths.archive) / dep.file_name).exists()
    assert receipt.exists() and fresh.exists() and not q.exists() and not q.parent.exists()
    # The ledger is kept, and the expired passages go again in the next run.
    assert passage_counts(ledger) == {Status.STAGED: 3, Status.DEPOSITED: 2}
    _, d, (again,) = run_pipeline(ledger, config, cands, max_passages=10)
    assert d.sent == 3 and again.passages == 3
    assert sorted(ids_in_outbox(config)) == sorted(p.technical_id for p in cands)


def test_recovery_aborts_a_file_found_nowhere(ledger, config):
    """A recorded file lost with its run's work folder: its passages go again."""
    from cpf_deposit.ledger.runs import RunState, set_run_state
    from cpf_deposit.staging import run_work_dir

    cands = passages(ledger.id_key, 0, 8)
    start, _, staged = run_pipeline(ledger, config, cands)
    with ledger.begin() as conn:  # pretend the run died between record and move
        conn.execute(
            ledger_file.update()
            .where(ledger_file.c.id_flux == staged[0].id_flux)
            .values(status=FileStatus.BUILT)
        )
        set_run_state(conn, start.run_id, RunState.FAILED, dt.datetime.now(dt.UTC))
    (_outbox(config) / staged[0].file_name).unlink()
    shutil.rmtree(run_work_dir(config, start.run_id), ignore_errors=True)
    start2, d, _again = run_pipeline(ledger, config, cands)
    assert start2.recovery.aborted == [staged[0].file_name]
    assert d.sent == staged[0].passages
    assert sorted(ids_in_outbox(config)) == sorted(p.technical_id for p in cands)


def test_object_storage_outbox_through_airflow(ledger, config, tmp_path):
    url = f"file://{tmp_path / 'remote-outbox'}"
    box = ObjectStorageOutbox(url)
    from cpf_deposit.staging import start_run

    start_run(ledger, config, kind="test", outbox=box)
    src = tmp_path / "a.xml"
    src.write_bytes(b"<x/>")
    box.put_file(src, "a.xml")
    box.put_bytes(b"{}", "a.xml" + MANIFEST_SUFFIX)
    assert box.names() == ["a.xml", "a.xml" + MANIFEST_SUFFIX]
    assert box.exists("a.xml") and not src.exists()
    assert box.sha256("a.xml") == __import__("hashlib").sha256(b"<x/>").hexdigest()
    assert box.mtime("a.xml") <= dt.datetime.now(dt.UTC)
    box.move_out("a.xml", tmp_path / "archive")
    assert (tmp_path / "archive" / "a.xml").read_bytes() == b"<x/>"
    assert box.names() == ["a.xml" + MANIFEST_SUFFIX]


def test_deposit_requires_a_staged_file(ledger, config):
    _, _, (f,) = run_pipeline(ledger, config, passages(ledger.id_key, 0, 2))
    mark_deposited(ledger, f.id_flux, "A")
    mark_accepted(ledger, f.id_flux, [p.technical_id for p in passages(ledger.id_key, 0, 2)])
    with pytest.raises(LedgerError):
        record_deposit(ledger, config, f.file_name, "A")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:////srv/cpf/ledger.db", "sqlite:////srv/cpf/ledger.db"),
        (
            "postgres://cpf:s%40cret@db.example:5433/ledger?sslmode=require",
            "postgresql+psycopg2://cpf:***@db.example:5433/ledger?sslmode=require",
        ),
    ],
)
def test_ledger_url_from_an_airflow_connection(monkeypatch, uri, expected):
    from cpf_deposit.ledger import url_from_conn_id

    monkeypatch.setenv("AIRFLOW_CONN_CPF_LEDGER", uri)
    url = url_from_conn_id("cpf_ledger", Path("/unused.db"))
    assert url.render_as_string(hide_password=True) == expected
    if "s%40cret" in uri:
        assert url.password == "s@cret"


def test_unsupported_connection_type_is_refused(monkeypatch):
    from cpf_deposit.ledger import url_from_conn_id

    monkeypatch.setenv("AIRFLOW_CONN_CPF_LEDGER", "mysql://u@h/db")
    with pytest.raises(LedgerError, match="not supported"):
        url_from_conn_id("cpf_ledger", Path("/unused.db"))


def test_status_counts_agree_with_each_passage_state(ledger, config):
    """The dashboard's counts (per file) and the per-passage view tell the same story."""
    from sqlalchemy import func

    from cpf_deposit.ledger.schema import passage_state
    from cpf_deposit.staging import start_run

    key = ledger.id_key
    _, _, (_staged, b, c) = run_pipeline(ledger, config, passages(key, 0, 9), max_passages=3)
    mark_deposited(ledger, b.id_flux, "Agent Test")
    mark_deposited(ledger, c.id_flux, "Agent Test")
    ids_c = sorted(ids_in_file(config, c.file_name))
    mark_accepted(ledger, c.id_flux, ids_c[:1])  # c: one decided, two still pending
    mark_rejected(ledger, c.id_flux, {ids_c[1]: "Aucun titulaire ne correspond"})
    start = start_run(ledger, config, kind="test")  # claimed, in no file yet
    assert len(list(select_delta(ledger, passages(key, 20, 22), start.run_id))) == 2

    state = passage_state()
    with ledger.engine.connect() as conn:
        per_passage = dict(
            conn.execute(select(state.c.status, func.count()).group_by(state.c.status)).all()
        )
    assert (
        passage_counts(ledger)
        == per_passage
        == {
            Status.BUILT: 2,
            Status.STAGED: 3,
            Status.DEPOSITED: 4,
            Status.ACCEPTED: 1,
            Status.REJECTED: 1,
        }
    )
