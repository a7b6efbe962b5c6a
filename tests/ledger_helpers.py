"""Test helpers: fictitious passages and the delta -> build -> stage pipeline.

Also a script: ``python ledger_helpers.py CONFIG URL FIRST LAST [RUN_ID]`` runs the
pipeline over passages FIRST..LAST-1 in a child process, so tests can SIGKILL it at
a fault point (``$CPF_DEPOSIT_FAULT_AT``) or run two at the same time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from cpf_deposit.config import Config, default_config_path, load_config
from cpf_deposit.flux.writer import Header, write_flux
from cpf_deposit.ledger import Ledger, open_ledger, select_delta
from cpf_deposit.ledger.ids import make_technical_id
from cpf_deposit.model import Passage
from cpf_deposit.staging import IdCollector, end_run, fault_point, stage, start_run

HERE = Path(__file__).resolve()
SLOW_ENV = "CPF_TEST_SLOW"


def write_config(base_dir: Path) -> Path:
    """An institution config whose paths all live under ``base_dir``."""
    raw = yaml.safe_load(default_config_path().read_text(encoding="utf-8"))
    raw["paths"] = {"base_dir": str(base_dir)}
    path = base_dir / "institution.yaml"
    base_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def make_passage(key: bytes, i: int, **changes) -> Passage:
    """Fictitious holder number ``i`` (same ``i``, same passage and idTechnique)."""
    cert = ("RNCP", "RNCP24514") if i % 3 else ("RNCP", "RNCP34034")
    record_key = f"{20230000 + i}-DIP-{i % 7}-2023"
    p = Passage(
        *cert,
        technical_id=make_technical_id(key, "APOGEE", record_key, *cert),
        award_date=dt.date(2023, 7, 1) + dt.timedelta(days=i % 60),
        mention="MENTION_BIEN",
        access_mode="FORMATION_INITIALE_HORS_APPRENTISSAGE",
        birth_name=f"NOM{i}",
        first_name_1="Camille",
        birth_year=1990 + i % 15,
        birth_month=1 + i % 12,
        birth_day=1 + i % 28,
        sex="F" if i % 2 else "M",
        birth_insee_code="72181",
        source_system="APOGEE",
        source_record_key=record_key,
    )
    return dataclasses.replace(p, **changes) if changes else p


def passages(key: bytes, first: int, last: int, **changes) -> list[Passage]:
    """Sorted by certification, as extraction delivers them."""
    ps = [make_passage(key, i, **changes) for i in range(first, last)]
    return sorted(ps, key=lambda p: p.certification_key)


def _slowly(items, every: int, pause: float) -> Iterator[Passage]:
    for n, p in enumerate(items, 1):
        if n % every == 0:
            time.sleep(pause)
        yield p


def run_pipeline(
    ledger: Ledger,
    config: Config,
    candidates,
    *,
    run_id: str | None = None,
    kind: str = "test",
    max_passages: int = 4,
    chunk: int = 5,
    dry_run: bool = False,
):
    """extract (given) -> delta -> build -> stage, as the lead's ``run`` will wire it."""
    start = start_run(ledger, config, run_id, kind=kind)
    delta = select_delta(ledger, candidates, start.run_id, chunk=chunk, dry_run=dry_run)
    ids = IdCollector()
    written = {"n": 0}

    def on_passage(p, wf):
        ids(p, wf)
        written["n"] += 1
        if written["n"] == 3:
            fault_point("writing")

    fault_point("started")
    batch = write_flux(
        delta,
        Header.from_config(config),
        start.work_dir,
        tz=config.tz,
        max_passages=max_passages,
        on_passage=on_passage,
    )
    fault_point("written")
    staged = [] if dry_run else stage(ledger, config, start.run_id, batch.files, ids)
    end_run(ledger, config, start.run_id)
    return start, delta, staged


_ID = re.compile(rb"<cpf:idTechnique>([^<]+)</cpf:idTechnique>")


def ids_in_outbox(config: Config) -> list[str]:
    """Every idTechnique in every flux file of the outbox (duplicates kept)."""
    out: list[str] = []
    root = Path(config.paths.outbox)
    if root.is_dir():
        for f in sorted(root.glob("CPF_*.xml")):
            out += ids_in_file(config, f.name)
    return out


def ids_in_file(config: Config, file_name: str) -> list[str]:
    """The idTechniques of one flux file of the outbox, in file order."""
    data = (Path(config.paths.outbox) / file_name).read_bytes()
    return [m.decode() for m in _ID.findall(data)]


def main(argv: list[str]) -> int:
    config = load_config(argv[0])
    ledger = open_ledger(url=argv[1])
    first, last = int(argv[2]), int(argv[3])
    run_id = argv[4] if len(argv) > 4 else None
    cands = passages(ledger.id_key, first, last)
    if os.environ.get(SLOW_ENV):
        cands = _slowly(cands, 5, float(os.environ[SLOW_ENV]))
    _, delta, staged = run_pipeline(ledger, config, cands, run_id=run_id, chunk=7)
    print(f"sent={delta.sent} staged={sum(s.passages for s in staged)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
