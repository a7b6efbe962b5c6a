"""Progress lines: at most one every few seconds, counts and rates in French."""

from __future__ import annotations

import logging

import pytest

from cpf_deposit.progress import Progress, count_fr, seconds_fr

LOG = logging.getLogger("tests.progress")


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG.name]


def test_a_line_every_five_seconds_then_the_summary(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    clock = Clock()
    with Progress(LOG, "extraction", unit="lignes", clock=clock) as p:
        for _ in range(30):  # 15 s at 2 000 rows every 0.5 s
            clock.now += 0.5
            p.advance(2_000)
    assert _lines(caplog) == [
        "extraction : 20 000 lignes, 4 000 lignes/s",
        "extraction : 40 000 lignes, 4 000 lignes/s",
        "extraction : 60 000 lignes, 4 000 lignes/s",
        "extraction : 60 000 lignes en 15,0 s (4 000 lignes/s)",
    ]


def test_the_rate_of_a_line_is_the_recent_one(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    clock = Clock()
    with Progress(LOG, "écriture du flux", unit="passages", clock=clock) as p:
        clock.now += 5
        p.advance(50_000)  # 10 000/s
        clock.now += 5
        p.advance(5_000)  # 1 000/s: the writer slowed down
    lines = _lines(caplog)
    assert lines[0] == "écriture du flux : 50 000 passages, 10 000 passages/s"
    assert lines[1] == "écriture du flux : 55 000 passages, 1 000 passages/s"
    assert lines[2] == "écriture du flux : 55 000 passages en 10,0 s (5 500 passages/s)"


def test_a_known_total_gives_a_percentage(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    clock = Clock()
    with Progress(LOG, "contrôle XSD", unit="passages", total=200_000, clock=clock) as p:
        clock.now += 6
        p.advance(50_000)
    assert _lines(caplog)[0] == (
        "contrôle XSD : 50 000 passages sur 200 000 (25 %), 8 330 passages/s"
    )


def test_quiet_below_the_interval_and_on_an_empty_step(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    clock = Clock()
    with Progress(LOG, "contrôle d'identité", clock=clock) as p:
        p.advance(10)
    with Progress(LOG, "vide", clock=clock):
        pass
    assert _lines(caplog) == [
        "contrôle d'identité : 10 lignes en 0,0 s",
        "vide : 0 lignes en 0,0 s",
    ]


def test_an_interrupted_step_says_so(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    clock = Clock()
    with pytest.raises(KeyError), Progress(LOG, "extraction", clock=clock) as p:
        clock.now += 125
        p.advance(1_000)
        raise KeyError("stop")
    assert _lines(caplog)[-1] == "extraction : interrompu après 1 000 lignes (2 min 05 s)"


def test_number_and_duration_formats():
    assert count_fr(1_234_567) == "1 234 567"
    assert count_fr(0) == "0"
    assert seconds_fr(30.14) == "30,1 s"
    assert seconds_fr(3725) == "62 min 05 s"
    assert seconds_fr(6 * 3600) == "6 h 00 min"


def test_writer_and_xsd_gate_log_counts_only(tmp_path, caplog):
    """The wired steps close with a count line that carries no value of a passage."""
    import dataclasses
    import datetime as dt
    from zoneinfo import ZoneInfo

    from cpf_deposit.flux import writer
    from cpf_deposit.flux.gate import passes_xsd
    from cpf_deposit.flux.validator import load_schema
    from cpf_deposit.samples import sample_passages

    caplog.set_level(logging.INFO, logger="cpf_deposit.flux")
    samples = sample_passages()
    items = [
        dataclasses.replace(p, technical_id=f"{p.technical_id}-{i}")
        for i in range(writer.PROGRESS_EVERY // len(samples) + 2)  # one batch and a rest
        for p in samples
    ]
    batch = writer.write_flux(
        items,
        writer.Header("01BJD364", "01BJD364", "MCFCER000123", "0720916E"),
        tmp_path,
        tz=ZoneInfo("Europe/Paris"),
        moment=dt.datetime(2025, 3, 1, 9, tzinfo=dt.UTC),
    )
    path = batch.files[0].path
    assert passes_xsd(path, load_schema()) == (True, len(items))
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("cpf_deposit.flux")]
    n = count_fr(len(items))
    assert lines[0].startswith(f"écriture du flux : {n} passages en ")
    assert lines[-1].startswith(f"contrôle XSD de {path.name} : {n} passages en ")
    values = {p.birth_name for p in samples} | {p.first_name_1 for p in samples}
    assert not [v for v in values if v and any(v in line for line in lines)]
