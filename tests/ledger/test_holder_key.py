"""One person under two source ids: an award the CDC holds is not sent again (issue #12).

The copy under another source record has another idTechnique; the holder key (keyed
hash of the civil identity and the certification) tells it is the same holder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
from sqlalchemy import MetaData, create_engine, insert, select, text

from cpf_deposit.ledger import (
    Reason,
    Status,
    mark_accepted,
    mark_deposited,
    mark_rejected,
    open_ledger,
    passage_counts,
    select_delta,
)
from cpf_deposit.ledger.engine import ledger_from_engine, make_engine
from cpf_deposit.ledger.ids import data_hash, holder_key, holder_keys, make_technical_id
from cpf_deposit.ledger.migrate import current_revision, head_revision, upgrade
from cpf_deposit.ledger.schema import ledger_passage
from cpf_deposit.staging import start_run
from cpf_deposit.summaries import SKIP_REASONS
from tests.ledger_fixtures import PG_SERVER
from tests.ledger_helpers import ids_in_outbox, make_passage, passages, run_pipeline

KEY = bytes(range(32))
SAME = Reason.SAME_HOLDER_OTHER_ID


def _copy(p, record_key: str, key: bytes, **changes):
    """The same award under another source record (the person entered twice)."""
    cert = changes.pop("cert", (p.certification_type, p.certification_code))
    return dataclasses.replace(
        p,
        certification_type=cert[0],
        certification_code=cert[1],
        source_record_key=record_key,
        technical_id=make_technical_id(key, p.source_system, record_key, *cert),
        **changes,
    )


def _accept(ledger, config, cands):
    _, _, staged = run_pipeline(ledger, config, cands, max_passages=100)
    for f in staged:
        mark_deposited(ledger, f.id_flux, "Agent Test")
        mark_accepted(ledger, f.id_flux, [p.technical_id for p in cands])


def _holder_keys_in_ledger(ledger) -> dict[str, str | None]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(ledger_passage.c.technical_id, ledger_passage.c.holder_key))
        return dict(rows.all())


# --------------------------------------------------------------------------------------
# The key
# --------------------------------------------------------------------------------------


def test_holder_key_ignores_case_accents_and_spacing_not_punctuation():
    p = make_passage(KEY, 1, birth_name="Lefèvre", first_name_1="Hélène")
    same = dataclasses.replace(p, birth_name=" LEFEVRE ", first_name_1="helene")
    assert holder_key(KEY, p) == holder_key(KEY, same) is not None
    for other in (
        dataclasses.replace(p, birth_name="LE-FEVRE"),  # punctuation counts for the CDC
        dataclasses.replace(p, first_name_1="Hélèna"),
        dataclasses.replace(p, sex="M" if p.sex == "F" else "F"),
        dataclasses.replace(p, birth_day=p.birth_day % 28 + 1),
        dataclasses.replace(p, certification_code="RNCP99999"),
    ):
        assert holder_key(KEY, other) != holder_key(KEY, p)
    assert holder_key(bytes(32), p) != holder_key(KEY, p)  # keyed


@pytest.mark.parametrize(
    "missing", ["birth_name", "first_name_1", "sex", "birth_year", "birth_month", "birth_day"]
)
def test_no_holder_key_without_a_full_identity(missing):
    assert holder_key(KEY, make_passage(KEY, 1, **{missing: None})) is None


def test_holder_key_is_pinned_and_batch_form_agrees():
    """Changing the key's recipe would make every recorded holder unrecognisable."""
    ps = passages(KEY, 0, 5)
    assert holder_keys(KEY, ps) == [holder_key(KEY, p) for p in ps]
    p = make_passage(KEY, 0, birth_name="Dupont", first_name_1="Élise")
    assert holder_key(KEY, p) == "49d047ef4cb3dbe55eb671ba8007c907"


def test_holder_keys_of_one_certification_share_their_start():
    """So a chunk (sorted by certification) inserts into few places of the index."""
    same_cert = [make_passage(KEY, i) for i in range(0, 30, 3)]  # all RNCP34034
    heads = {holder_key(KEY, p)[:6] for p in same_cert}
    other = holder_key(KEY, make_passage(KEY, 1))[:6]  # RNCP24514
    assert len(heads) == 1 and other not in heads
    assert len({holder_key(KEY, p) for p in same_cert}) == len(same_cert)


# --------------------------------------------------------------------------------------
# The delta
# --------------------------------------------------------------------------------------


def test_copy_of_an_accepted_award_under_another_source_id_is_skipped_and_listed(ledger, config):
    key = ledger.id_key
    a = make_passage(key, 1)
    _accept(ledger, config, [a])
    b = _copy(a, "99990001-DIP-1-2023", key)
    assert b.technical_id != a.technical_id

    _, d, staged = run_pipeline(ledger, config, [b])
    assert staged == [] and d.sent == 0
    assert d.counts == {SAME: 1}
    assert d.listed == {SAME: [b.technical_id]}
    assert d.same_holder == {b.technical_id: a.technical_id}
    assert b.technical_id not in _holder_keys_in_ledger(ledger)  # never claimed
    assert ids_in_outbox(config).count(a.technical_id) == 1
    assert SKIP_REASONS[SAME]  # worded for the operator


def test_copy_is_skipped_while_the_first_awaits_the_cdc_too(ledger, config):
    key = ledger.id_key
    a = make_passage(key, 1)
    _, _, (f,) = run_pipeline(ledger, config, [a])
    mark_deposited(ledger, f.id_flux, "Agent Test")
    b = _copy(a, "99990001-DIP-1-2023", key)
    _, d, staged = run_pipeline(ledger, config, [b])
    assert staged == [] and d.counts == {SAME: 1}


def test_another_certification_of_the_same_person_is_sent(ledger, config):
    key = ledger.id_key
    a = make_passage(key, 1)
    _accept(ledger, config, [a])
    other = _copy(a, "99990001-DIP-2-2023", key, cert=("RNCP", "RNCP99999"))
    _, d, (f,) = run_pipeline(ledger, config, [other])
    assert d.counts == {Reason.SENT_NEW: 1} and f.passages == 1


def test_the_accepted_copy_itself_stays_already_accepted(ledger, config):
    key = ledger.id_key
    a = make_passage(key, 1)
    _accept(ledger, config, [a])
    b = _copy(a, "99990001-DIP-1-2023", key)
    _, d, _ = run_pipeline(ledger, config, [a, b])
    assert d.counts == {Reason.ACCEPTED: 1, SAME: 1}


def test_a_rejected_first_copy_does_not_block_the_other(ledger, config):
    key = ledger.id_key
    a = make_passage(key, 1)
    _, _, (f,) = run_pipeline(ledger, config, [a])
    mark_deposited(ledger, f.id_flux, "Agent Test")
    mark_rejected(ledger, f.id_flux, {a.technical_id: "Aucun titulaire ne correspond"})
    b = _copy(a, "99990001-DIP-1-2023", key)

    _, d, (f2,) = run_pipeline(ledger, config, [b])
    assert d.counts == {Reason.SENT_NEW: 1} and f2.passages == 1
    # The rejected copy, corrected, now waits: the other one is awaiting the CDC.
    fixed = dataclasses.replace(a, mention="MENTION_TRES_BIEN")
    _, d2, staged = run_pipeline(ledger, config, [fixed])
    assert staged == [] and d2.same_holder == {a.technical_id: b.technical_id}
    assert passage_counts(ledger) == {Status.REJECTED: 1, Status.STAGED: 1}


def test_names_differing_by_case_and_accents_are_the_same_holder(ledger, config):
    key = ledger.id_key
    a = make_passage(key, 1, birth_name="Lefèvre", first_name_1="Hélène")
    _accept(ledger, config, [a])
    b = _copy(a, "99990001-DIP-1-2023", key, birth_name="LEFEVRE", first_name_1=" helene")
    _, d, staged = run_pipeline(ledger, config, [b])
    assert staged == [] and d.same_holder == {b.technical_id: a.technical_id}


def test_twins_in_one_chunk_send_the_first_only(ledger, config):
    key = ledger.id_key
    a = make_passage(key, 1)
    b = _copy(a, "99990001-DIP-1-2023", key)
    c = make_passage(key, 2)
    _, dry, _ = run_pipeline(ledger, config, [a, b, c], dry_run=True)
    assert dry.counts == {Reason.SENT_NEW: 2, SAME: 1}
    _, d, _ = run_pipeline(ledger, config, [a, b, c], max_passages=100)
    assert d.counts == {Reason.SENT_NEW: 2, SAME: 1}
    assert d.same_holder == {b.technical_id: a.technical_id}
    assert sorted(ids_in_outbox(config)) == sorted([a.technical_id, c.technical_id])


def test_dry_run_tells_the_same_and_writes_nothing(ledger, config):
    key = ledger.id_key
    a = make_passage(key, 1)
    _accept(ledger, config, [a])
    b = _copy(a, "99990001-DIP-1-2023", key)
    start = start_run(ledger, config, kind="test")
    d = select_delta(ledger, [b], start.run_id, dry_run=True)
    assert list(d) == [] and d.same_holder == {b.technical_id: a.technical_id}
    assert b.technical_id not in _holder_keys_in_ledger(ledger)


def test_new_passages_are_recorded_with_their_holder_key(ledger, config):
    key = ledger.id_key
    ps = [*passages(key, 0, 6), make_passage(key, 9, birth_month=None)]
    run_pipeline(ledger, config, ps, max_passages=100)
    stored = _holder_keys_in_ledger(ledger)
    assert stored == {p.technical_id: holder_key(key, p) for p in ps}
    assert sum(v is None for v in stored.values()) == 1


def test_the_ledger_file_holds_no_name(tmp_path, config):
    names = {"Zorglubienne": "Ørtemisâ", "Kwaxtrombel": "Yvélinde"}
    led = open_ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    ps = [
        make_passage(led.id_key, i, birth_name=bn, first_name_1=fn)
        for i, (bn, fn) in enumerate(names.items())
    ]
    run_pipeline(led, config, ps, max_passages=100)
    assert all(_holder_keys_in_ledger(led).values())
    led.dispose()  # the last close folds the WAL into the file
    data = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*"))
    from cpf_deposit.quality.names import cdc_key

    for name in [*names, *names.values()]:
        for form in {name, name.upper(), cdc_key(name), cdc_key(name).lower()}:
            for enc in ("utf-8", "utf-16-le"):
                assert form.encode(enc) not in data, form


# --------------------------------------------------------------------------------------
# Migration 0003
# --------------------------------------------------------------------------------------

T0 = dt.datetime(2026, 7, 1, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    name = f"cpf_ledger_hk_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{PG_SERVER}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _ledger_0002_with_accepted(url, accepted):
    """A ledger at revision 0002 where ``accepted`` were sent and accepted (as 0002 wrote)."""
    engine = make_engine(url)
    upgrade(engine, "0002")
    key = ledger_from_engine(engine).id_key
    meta = MetaData()
    meta.reflect(engine, only=["ledger_file", "ledger_passage", "ledger_sending"])
    assert "holder_key" not in meta.tables["ledger_passage"].c
    rows = [
        dict(
            technical_id=p.technical_id,
            source_system=p.source_system,
            source_record_key=p.source_record_key,
            certification_type=p.certification_type,
            certification_code=p.certification_code,
            action="CREATION",
            status="ACCEPTED",
            sent_hash=data_hash(key, p),
            id_flux="F0",
            created_at=T0,
            updated_at=T0,
        )
        for p in accepted
    ]
    with engine.begin() as conn:
        conn.execute(
            insert(meta.tables["ledger_file"]),
            dict(
                id_flux="F0",
                file_name="F0.xml",
                sha256="0" * 64,
                size=1,
                passages=len(rows),
                certifications="{}",
                horodatage="2026-07-01T04:00:00+02:00",
                run_id="r0",
                status="PROCESSED",
                built_at=T0,
                updated_at=T0,
            ),
        )
        conn.execute(insert(meta.tables["ledger_passage"]), rows)
        conn.execute(
            insert(meta.tables["ledger_sending"]),
            [
                dict(
                    id_flux="F0",
                    technical_id=r["technical_id"],
                    data_hash=r["sent_hash"],
                    status="ACCEPTED",
                    built_at=T0,
                )
                for r in rows
            ],
        )
    return engine


def test_0003_keeps_existing_rows_with_no_holder_key_then_fills_it(empty_url, config):
    # the idTechniques need the ledger's key: make the passages once it exists
    engine = make_engine(empty_url)
    upgrade(engine, "0001")
    key = ledger_from_engine(engine).id_key
    engine.dispose()
    a, other = make_passage(key, 1), make_passage(key, 2)
    engine = _ledger_0002_with_accepted(empty_url, [a, other])

    upgrade(engine)
    assert current_revision(engine) == head_revision()
    led = ledger_from_engine(engine)
    assert _holder_keys_in_ledger(led) == {a.technical_id: None, other.technical_id: None}
    assert passage_counts(led) == {Status.ACCEPTED: 2}

    # Recorded before holder keys, a twin is not recognised until the ledger reads
    # the accepted copy again; then it is (here both in one chunk, the twin first).
    b = _copy(a, "99990001-DIP-1-2023", key)
    _, d, staged = run_pipeline(led, config, [b, a, other], chunk=100)
    assert staged == [] and d.counts == {Reason.ACCEPTED: 2, SAME: 1}
    assert d.same_holder == {b.technical_id: a.technical_id}
    assert _holder_keys_in_ledger(led) == {
        a.technical_id: holder_key(key, a),
        other.technical_id: holder_key(key, other),
    }
    # and in a later run on its own
    _, d2, staged2 = run_pipeline(led, config, [b])
    assert staged2 == [] and d2.counts == {SAME: 1}
    engine.dispose()


def test_0003_fills_accepted_keys_from_a_later_run_even_without_twin(empty_url, config):
    engine = make_engine(empty_url)
    upgrade(engine, "0001")
    key = ledger_from_engine(engine).id_key
    engine.dispose()
    a = make_passage(key, 1)
    changed = make_passage(key, 2)
    engine = _ledger_0002_with_accepted(empty_url, [a, changed])
    upgrade(engine)
    led = ledger_from_engine(engine)
    fixed = dataclasses.replace(changed, birth_day=changed.birth_day % 28 + 1)
    _, d, _ = run_pipeline(led, config, [a, fixed])
    assert d.counts == {Reason.ACCEPTED: 1, Reason.CHANGED_AFTER_ACCEPTANCE: 1}
    # the data the CDC accepted is known for a only: the changed one keeps none
    assert _holder_keys_in_ledger(led) == {
        a.technical_id: holder_key(key, a),
        changed.technical_id: None,
    }
    engine.dispose()
