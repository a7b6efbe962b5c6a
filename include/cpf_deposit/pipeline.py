"""The deposit pipeline, one function per step: extract → gate → delta → build → stage.

Each step reads what the previous one left in the run's private work folder and
returns a small JSON-able summary (counts and paths, never personal data), so the
same functions serve the Airflow tasks (one step per task, the summary as XCom) and
``cpf-deposit run`` (all steps in one process).

Work folder of a run (mode 0700, removed when the run ends well):
``passages.parquet`` and ``canonical.parquet`` (extraction), ``verdicts.parquet``
(gate), ``selected/<chunk>.parquet`` (delta: at most one file's worth of passages
each, so large certifiers build chunks in parallel, one mapped task per chunk),
``flux/<chunk>/`` (build). Quarantine exports go to ``paths.quarantine/<run>/``, for
the scolarité office.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpf_deposit.config import Config, Source
from cpf_deposit.errors import DataError

log = logging.getLogger(__name__)

PASSAGES = "passages.parquet"
CANONICAL = "canonical.parquet"
VERDICTS = "verdicts.parquet"
LATE_RULE = "R09E"  # the policy note on late transmission (quality.rules)
SELECTED = "selected"  # selected/<chunk>.parquet: one future file's worth each
FLUX_DIR = "flux"
PASSPORT_START = dt.date(2021, 7, 1)  # the obligation applies to awards from this day


class PipelineError(DataError, RuntimeError):
    """A step cannot go on (invalid flux, missing input); nothing was staged."""


@dataclass(frozen=True)
class Window:
    """Awards from ``start`` (inclusive) to ``end`` (exclusive); never before 2021-07-01.

    Exclusive ends everywhere (this class, :func:`cpf_deposit.sources.extract.extract`,
    the SQL binds, the ``--to`` options): consecutive windows share their boundary day
    and each award falls in exactly one of them."""

    start: dt.date
    end: dt.date

    def __post_init__(self):
        if self.end <= self.start:
            raise ValueError(f"empty window: {self.start} to {self.end}")

    @property
    def clipped(self) -> Window | None:
        start = max(self.start, PASSPORT_START)
        return Window(start, self.end) if start < self.end else None

    @classmethod
    def academic_year(cls, year: int) -> Window:
        """Academic year ``year``-``year+1``: awards from 1 September to 31 August (the
        end is 1 September of ``year+1``, exclusive: it opens the next year)."""
        return cls(dt.date(year, 9, 1), dt.date(year + 1, 9, 1))

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def source_of(config: Config, name: str) -> Source:
    try:
        return config.sources[name]
    except KeyError:
        known = ", ".join(config.sources) or "none"
        raise PipelineError(f"no source '{name}' in the config (known: {known})") from None


def _private_dir(path: Path) -> Path:
    """The run's own folders: 0700, never a symbolic link (:mod:`cpf_deposit.files`)."""
    from cpf_deposit.files import private_dir

    return private_dir(path, narrow=True)


# --------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------


def extract_step(
    config: Config, source: Source, window: Window, work: Path, run_id: str, id_key: bytes
) -> dict[str, Any]:
    """Source rows of the window → passages with their ledger idTechnique (``id_key``) and
    raw canonical rows (Parquet, 0600); what could not be exported goes to the run's
    quarantine folder for the scolarité office."""
    from cpf_deposit.sources.extract import extract

    _private_dir(work)
    office = _private_dir(Path(config.paths.quarantine) / _safe(run_id))
    clipped = window.clipped
    if clipped is None:
        raise PipelineError(f"window {window.start}..{window.end} ends before 2021-07-01")
    # extract() and the SQL take the window as it is: inclusive start, exclusive end.
    report = extract(
        source.system,
        source.conn_id,
        clipped.start,
        clipped.end,
        work / PASSAGES,
        id_key=id_key,
        certification_map=source.certification_map,
        options=source.options,
        canonical_out=work / CANONICAL,
        issues_out=office / "signalements-extraction.csv",
    )
    return {
        "rows": report.rows,
        "passages": report.passages,
        "errors": report.errors,
        "warnings": report.warnings,
        "issues": str(report.issues_path),
        "window": clipped.as_dict(),
    }


def gate_step(
    config: Config, source: Source, work: Path, run_id: str, today: dt.date | None = None
) -> dict[str, Any]:
    """Identity checks on the canonical rows; BLOCK rows are quarantined, not sent."""
    import pandas as pd

    from cpf_deposit.quality.gate import run_gate
    from cpf_deposit.quality.outputs import write_all
    from cpf_deposit.quality.rules import rules_for

    canonical = pd.read_parquet(work / CANONICAL)
    cmap = certification_map_of(source)
    rules = rules_for(config.quality)
    result = run_gate(canonical, today=today, certification_map=cmap, rules=rules)
    out = _private_dir(Path(config.paths.quarantine) / _safe(run_id))
    paths = write_all(result, out)
    verdicts = result.verdicts[["source_record_key", "verdict", "rule_ids", "notes"]]
    _write_private_parquet(verdicts, work / VERDICTS)
    return {
        **result.counts,
        "quarantine": {k: str(v) for k, v in paths.items()},
        "fired": dict(result.fired),
    }


def _check_ledger_id(ledger, p, path: Path) -> None:
    """Refuse passages whose idTechnique this ledger would not give (another ledger's
    key, or a file extracted by an older version): they would be sent under ids the
    ledger cannot match again."""
    from cpf_deposit.ledger import make_technical_id

    expected = make_technical_id(
        ledger.id_key,
        p.source_system,
        p.source_record_key,
        p.certification_type,
        p.certification_code,
        scheme=ledger.id_scheme,
    )
    if p.technical_id != expected:
        raise PipelineError(
            f"{path.name}: idTechnique {p.technical_id} was not made with this ledger's "
            "key; run the extraction again"
        )


def delta_step(
    config: Config,
    ledger,
    work: Path,
    run_id: str,
    dry_run: bool = False,
    certifications: frozenset[str] | None = None,
) -> dict:
    """Passages not blocked by the gate (and of the requested certifications), filtered
    by the ledger (never sent, or rejected and corrected since) and claimed for this
    run (a dry run claims nothing). Written in chunks of at most one file's worth,
    sorted by certification."""
    import pyarrow.parquet as pq

    from cpf_deposit.flux.writer import Refusal
    from cpf_deposit.ledger import select_delta
    from cpf_deposit.passage_io import read_passages

    blocked = _blocked_keys(work / VERDICTS)
    unreadable = 0
    other_certifications = 0

    def candidates():
        nonlocal unreadable, other_certifications
        checked = False
        for p in read_passages(work / PASSAGES):
            if isinstance(p, Refusal):
                unreadable += 1
                continue
            if not checked and p.source_system and p.source_record_key:
                _check_ledger_id(ledger, p, work / PASSAGES)  # one tells for the whole file
                checked = True
            if certifications is not None and p.certification_code not in certifications:
                other_certifications += 1
                continue
            if p.source_record_key in blocked:
                continue
            yield p

    selection = select_delta(ledger, candidates(), run_id, dry_run=dry_run)
    # Late transmission is a note on what is about to be sent, not on every row seen.
    late_keys = _noted_keys(work / VERDICTS, LATE_RULE)
    late = 0

    def selected():
        nonlocal late
        for p in _sorted_by_certification(selection, work):
            late += p.source_record_key in late_keys
            yield p

    chunks = _write_chunks(
        selected(),
        work / SELECTED,
        config.limits.max_passages_per_file,
        config.limits.max_file_bytes,
    )
    total = pq.ParquetFile(work / PASSAGES).metadata.num_rows
    return {
        "candidates": total,
        "blocked": len(blocked),
        "other_certifications": other_certifications,
        "unreadable": unreadable,
        "selected": sum(chunks.values()),
        "late": late,
        "chunks": sorted(chunks),
        "skipped": selection.skipped,
        "listed": {k: len(v) for k, v in selection.listed.items()},
        "dry_run": dry_run,
    }


def build_step(config: Config, work: Path, chunk: str) -> dict[str, Any]:
    """One chunk of selected passages → flux files (written, not yet validated). Beside
    each file, a ``.json`` sidecar (its summary) and ``.ids`` (its idTechniques) let the
    stage step, another task, record it without parsing it again. Validation is the
    next step, one file at a time (:func:`validate_step`), so Airflow spreads it over
    its workers and shows each file's verdict."""
    import json

    from cpf_deposit.flux.build import build_from_file
    from cpf_deposit.staging import IdCollector

    _private_dir(work / FLUX_DIR)
    flux_dir = _private_dir(work / FLUX_DIR / chunk)
    for stale in flux_dir.iterdir():  # a retried task starts clean
        stale.unlink()
    ids = IdCollector()
    result, refused_rows = build_from_file(
        work / SELECTED / f"{chunk}.parquet",
        config,
        flux_dir,
        on_passage=ids,
        validate=False,
        reserve_name=_name_reserver(config, work),
    )
    for wf in result.files:
        _write_private_text(wf.path.with_suffix(".json"), json.dumps(wf.summary()))
        _write_private_text(wf.path.with_suffix(".ids"), "\n".join(ids.by_flux[wf.id_flux]))
    refused = [*refused_rows, *result.batch.refused]
    return {
        "chunk": chunk,
        "files": [f.summary() for f in result.files],
        "passages": result.batch.passages,
        "refused": [{"technical_id": r.technical_id, "why": str(r)} for r in refused],
    }


def _name_reserver(config: Config, work: Path):
    """File names are unique per second: chunks built side by side (parallel tasks)
    claim theirs atomically in the run's work folder, and skip names the outbox holds."""
    names = _private_dir(work / "flux-names")
    outbox = Path(config.paths.outbox)

    def reserve(name: str) -> bool:
        if (outbox / name).exists():
            return False
        try:
            os.close(os.open(names / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        return True

    return reserve


def built_files(work: Path) -> list[str]:
    """Names of the flux files the build step left in the work folder, in order."""
    return [p.name for p in sorted((work / FLUX_DIR).glob("*/CPF_*.xml"))]


def _built_file(work: Path, name: str) -> Path:
    found = [p for p in (work / FLUX_DIR).glob(f"*/{name}") if p.name == name]
    if len(found) != 1 or not name.startswith("CPF_") or not name.endswith(".xml"):
        raise PipelineError(f"no built flux file named {name!r} in this run")
    return found[0]


def validate_step(config: Config, work: Path, file_name: str) -> dict[str, Any]:
    """Validate one built flux file against the XSD, in this process. A valid file gets
    a ``.valid`` mark holding its SHA-256, which the stage step requires: a file that
    was not validated, or changed since, is never staged. An invalid file stops the
    run (nothing is staged) with the first errors located (line, idTechnique)."""
    import json

    from cpf_deposit.flux.build import validate_flux_file

    path = _built_file(work, file_name)
    mark = path.with_suffix(".valid")
    mark.unlink(missing_ok=True)
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    if _sha256(path) != meta["sha256"]:  # the bytes validated are the bytes built
        raise PipelineError(f"{file_name} changed since it was built: nothing staged")
    report = validate_flux_file(path, config.xsd_path)
    if not report.valid:
        raise PipelineError(f"flux invalid, nothing staged: {report.summary()}")
    _write_private_text(mark, meta["sha256"])
    return {"file": file_name, "passages": report.passages, "valid": True}


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def stage_step(config: Config, ledger, work: Path, run_id: str) -> dict[str, Any]:
    """Record each built file with its passages and move it atomically into the outbox."""
    import json

    from cpf_deposit.flux.writer import WrittenFile
    from cpf_deposit.staging import deposit_form, notification_text, stage

    files, ids = [], {}
    for path in sorted((work / FLUX_DIR).glob("*/CPF_*.xml")):
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        mark = path.with_suffix(".valid")
        if not mark.is_file() or mark.read_text(encoding="utf-8") != meta["sha256"]:
            raise PipelineError(f"{path.name} was not validated: nothing staged")
        wf = WrittenFile(path, meta["id_flux"], meta["horodatage"], meta["passages"])
        wf.size, wf.sha256, wf.certifications = meta["size"], meta["sha256"], meta["certifications"]
        files.append(wf)
        ids[wf.id_flux] = path.with_suffix(".ids").read_text(encoding="utf-8").split("\n")
    staged = stage(ledger, config, run_id, files, ids)
    subject, body = notification_text(staged, config) if staged else ("", "")
    return {
        "staged": [dataclasses.asdict(s) for s in staged],
        "notification": {"subject": subject, "body": body},
        "form": deposit_form(staged, config) if staged else "",
    }


# --------------------------------------------------------------------------------------
# The whole run (cpf-deposit run)
# --------------------------------------------------------------------------------------


def run_pipeline(
    config: Config,
    source_name: str,
    window: Window,
    *,
    dry_run: bool = False,
    run_id: str | None = None,
    kind: str = "manual",
    today: dt.date | None = None,
    certifications: frozenset[str] | None = None,
) -> dict[str, Any]:
    """extract → gate → delta → build → validate → stage, in one process.

    A dry run does everything but claiming and staging: the flux is still built and
    validated, in the work folder, which is then removed."""
    from cpf_deposit.ledger import open_ledger
    from cpf_deposit.staging import end_run, start_run

    source = source_of(config, source_name)
    ledger = open_ledger(config)
    start = start_run(
        ledger, config, run_id, kind=kind, params={"source": source_name, **window.as_dict()}
    )
    work = start.work_dir
    out: dict[str, Any] = {"run_id": start.run_id}
    failed = True
    try:
        out["extract"] = extract_step(config, source, window, work, start.run_id, ledger.id_key)
        out["gate"] = gate_step(config, source, work, start.run_id, today)
        out["delta"] = delta_step(config, ledger, work, start.run_id, dry_run, certifications)
        out["build"] = [build_step(config, work, c) for c in out["delta"]["chunks"]]
        out["validate"] = [validate_step(config, work, f) for f in built_files(work)]
        if not dry_run and out["delta"]["selected"]:
            out["stage"] = stage_step(config, ledger, work, start.run_id)
        failed = False
    finally:
        end_run(ledger, config, start.run_id, failed=failed)
        ledger.dispose()
    return out


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in run_id)[:100]


def certification_map_of(source: Source):
    """The mapping the extraction uses: the config's CSV, else the source's table (None
    when the source database has no such table). Also read by ``cpf-deposit check``."""
    from contextlib import closing

    from cpf_deposit.sources.certmap import CertificationMap
    from cpf_deposit.sources.extract import connect, load_certification_map

    if source.certification_map is not None:
        return CertificationMap.from_csv(source.certification_map)
    conn, _ = connect(source.conn_id)
    with closing(conn):
        return load_certification_map(conn, None, source.options.get("certification_map_table"))


def _noted_keys(path: Path, rule_id: str) -> set[str]:
    """Source keys whose gate notes include ``rule_id`` (none for older work folders)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if "notes" not in pq.read_schema(path).names:
        return set()
    table = pq.read_table(path, columns=["source_record_key", "notes"])
    noted = table.filter(pc.match_substring(table["notes"], rule_id))
    return set(noted["source_record_key"].to_pylist())


def _blocked_keys(path: Path) -> set[str]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["source_record_key", "verdict"])
    blocked = table.filter(pc.equal(table["verdict"], "BLOCK"))
    return set(blocked["source_record_key"].to_pylist())


def _write_private_parquet(frame, path: Path) -> None:
    from cpf_deposit.files import private_file

    with private_file(path) as fh:
        frame.to_parquet(fh, index=False)


# One passage in this many is rendered to learn how many bytes a passage takes.
_SAMPLE_EVERY = 50
# Room left in each chunk's byte budget for the envelope and certification blocks, and
# for the estimate's error: a chunk that still overflows becomes two files, never a
# file over the limit.
_BYTE_MARGIN = 0.95


def _write_chunks(
    passages, folder: Path, size: int, max_bytes: int | None = None
) -> dict[str, int]:
    """Cut a stream into Parquet chunks of at most ``size`` passages and, when
    ``max_bytes`` is given, of about one flux file's worth of bytes: {chunk: count}.

    Why bytes too: each chunk is built by its own task into its own files, so a chunk
    of 200,000 passages of 1.3 KB would make a 200 MB file and a 60 MB one; cut at one
    file's worth, a million passages make 7 files (each deposited by hand) in 7
    balanced tasks. The size of a passage is learnt by rendering one in 50."""
    from itertools import chain, islice

    from cpf_deposit.flux.writer import render_passage
    from cpf_deposit.passage_io import write_passages

    _private_dir(folder)
    for stale in folder.glob("*.parquet"):
        stale.unlink()
    it = iter(passages)
    counts: dict[str, int] = {}
    seen = {"n": 0, "bytes": 0}  # sampled passages, over the whole stream

    def block(first):
        count = 0
        p = first
        budget = None if max_bytes is None else max_bytes * _BYTE_MARGIN
        while p is not None:
            yield p
            count += 1
            if budget is not None:
                if count % _SAMPLE_EVERY == 1:
                    seen["n"] += 1
                    seen["bytes"] += len(render_passage(p).encode("utf-8"))
                if count * seen["bytes"] / seen["n"] >= budget:
                    return
            if count >= size:
                return
            p = next(it, None)

    while (first := next(it, None)) is not None:
        name = f"{len(counts):04d}"
        stream = block(first) if max_bytes is not None else chain([first], islice(it, size - 1))
        counts[name] = write_passages(stream, folder / f"{name}.parquet")  # streamed
    return counts


def _write_private_text(path: Path, text: str) -> None:
    from cpf_deposit.files import write_private

    write_private(path, text)


def _sorted_by_certification(passages, work: Path):
    """Group passages by certification for tidy files, with bounded memory.

    Passages are spilled into one temporary Parquet file per certification, then
    read back certification by certification.
    """
    from cpf_deposit.passage_io import read_passages, write_passages

    spill = _private_dir(work / "by-certification")
    buckets: dict[tuple, list] = {}
    names: dict[tuple, list[Path]] = {}

    def flush(key):
        part = spill / f"{len(names.get(key, [])):05d}-{abs(hash(key)):x}.parquet"
        write_passages(buckets.pop(key), part)
        names.setdefault(key, []).append(part)

    for p in passages:
        key = p.certification_key
        buckets.setdefault(key, []).append(p)
        if len(buckets[key]) >= 20_000:
            flush(key)
    for key in list(buckets):
        flush(key)
    for key in sorted(names, key=lambda k: (k[0], k[1], k[2] or "")):
        for part in names[key]:
            yield from read_passages(part)
            part.unlink()
