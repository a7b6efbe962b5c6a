"""Write the flux files, and validate each one against the XSD.

Writing is pure Python on one core and validation is libxml2; at national scale
(a million holders is ~1.3 GB of XML) validation costs about three times the writing
(libxml2 alone parses and validates ~30 MB/s here).

Two ways to spread that work, never both:
- **In Airflow** the pipeline writes a chunk in one task and validates each file in
  its own mapped task (:func:`validate_flux_file`, in-process): Airflow's workers give
  the parallelism, and a task process never spawns interpreters (a spawned child
  re-imports Airflow with the task's forbidden metadata connection and dies).
- **On the command line** (``cpf-deposit build``) :func:`build_flux` hands each
  finished file to a pool of validation processes while the next is written.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from zoneinfo import ZoneInfo

from cpf_deposit.flux.writer import FluxBatch, Header, WrittenFile, write_flux
from cpf_deposit.model import Passage

VALIDATORS = max(1, min(2, os.cpu_count() or 1))


@dataclass
class BuildResult:
    batch: FluxBatch
    reports: list = field(default_factory=list)  # ValidationReport per file, in file order

    @property
    def valid(self) -> bool:
        return all(r.valid for r in self.reports)

    @property
    def files(self) -> list[WrittenFile]:
        return self.batch.files


def validate_flux_file(path: str | Path, xsd: str | Path | None = None):
    """Validate one flux file in this process: the fast gate first, the full validator
    only to explain a failure. Returns a ``ValidationReport``."""
    from cpf_deposit.config import shipped_xsd
    from cpf_deposit.flux.gate import passes_xsd
    from cpf_deposit.flux.validator import ValidationReport, load_schema, validate_file

    xsd_path = Path(xsd) if xsd else None
    ok, passages = passes_xsd(path, load_schema(xsd_path))
    if ok:
        schema_file = xsd_path or shipped_xsd()
        return ValidationReport(Path(path), schema_file, passages, None)
    return validate_file(Path(path), xsd_path)


class _Inline(Executor):
    """Runs validation in the calling process (tests, tiny batches, no fork wanted)."""

    def submit(self, fn, /, *args, **kwargs):
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            f.set_exception(exc)
        return f


def build_flux(
    passages: Iterable[Passage],
    header: Header,
    out_dir: Path,
    *,
    tz: ZoneInfo,
    xsd_path: Path | None = None,
    max_bytes: int = 200_000_000,
    max_passages: int = 200_000,
    moment: dt.datetime | None = None,
    id_flux_factory: Callable[[], str] | None = None,
    reserve_name: Callable[[str], bool] | None = None,
    on_passage: Callable[[Passage, WrittenFile], None] | None = None,
    parallel: bool = True,
    validate: bool = True,
) -> BuildResult:
    """Write every writable passage into flux files and validate each file against the
    XSD (in a pool of processes when ``parallel``; never inside an Airflow task)."""
    executor: Executor = (
        ProcessPoolExecutor(max_workers=VALIDATORS, mp_context=get_context("spawn"))
        if parallel and validate
        else _Inline()
    )
    futures: list[Future] = []
    xsd = str(xsd_path) if xsd_path else None
    try:
        batch = write_flux(
            passages,
            header,
            out_dir,
            tz=tz,
            moment=moment,
            max_bytes=max_bytes,
            max_passages=max_passages,
            id_flux_factory=id_flux_factory,
            reserve_name=reserve_name,
            on_passage=on_passage,
            on_file=(
                (lambda wf: futures.append(executor.submit(validate_flux_file, str(wf.path), xsd)))
                if validate
                else None
            ),
        )
        reports = [f.result() for f in futures]
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return BuildResult(batch, reports)


def build_from_file(
    source: Path,
    config,
    out_dir: Path,
    *,
    on_passage=None,
    parallel: bool = True,
    validate: bool = True,
    reserve_name=None,
) -> tuple[BuildResult, list]:
    """Build (and unless ``validate`` is false, validate) the flux of a canonical
    passages file (CSV or Parquet) with the institution's header and limits. Returns the
    result and the rows that could not be read as passages (refusals naming the row and
    the field). Without validation the result has no reports."""
    from cpf_deposit.flux.writer import Refusal
    from cpf_deposit.passage_io import read_passages

    unreadable: list[Refusal] = []

    def passages():
        for item in read_passages(source):
            if isinstance(item, Refusal):
                unreadable.append(item)
            else:
                yield item

    result = build_flux(
        passages(),
        Header.from_config(config),
        out_dir,
        tz=config.tz,
        xsd_path=config.xsd_path,
        max_bytes=config.limits.max_file_bytes,
        max_passages=config.limits.max_passages_per_file,
        on_passage=on_passage,
        parallel=parallel,
        validate=validate,
        reserve_name=reserve_name,
    )
    return result, unreadable
