"""Stage built flux files into the outbox, recover from crashes, purge old personal data.

Why this order (record, then move, then mark): the ledger row of a file and its
passages is committed (status BUILT, keyed by idFlux) *before* the file becomes
visible in the outbox, and marked STAGED after. A process killed anywhere leaves a
state the recovery step at the start of the next run can finish or undo without
guessing: a BUILT file found in the outbox (or still in the run's work folder, with
the recorded sha256) is completed; one found nowhere is aborted and its passages
put back for the next run. After recovery, a file is in the outbox exactly when its
ledger row, and so each of its passages, is STAGED.

Deposit on the CDC portal is manual: :func:`notification_text` tells a person, and
``cpf-deposit deposited FILE --by NAME`` records it. Only counts, file names and
idTechniques are logged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cpf_deposit.files import (
    Folder,
    UnsafePathError,
    open_folder,
    open_regular,
    private_dir,
    temp_name,
    temp_owner,
)
from cpf_deposit.ledger.engine import Ledger, LedgerError
from cpf_deposit.ledger.runs import (
    DEFAULT_LEASE,
    dead_runs,
    finish_run,
    heartbeat,
    register_run,
    set_run_state,
)
from cpf_deposit.ledger.schema import FileStatus, RunState, ledger_file, ledger_run
from cpf_deposit.ledger.status import (
    ClaimLost,
    FileRecord,
    files_with_status,
    find_file,
    mark_file_staged,
    record_file,
    release_claims,
    revert_file,
    utcnow,
)

log = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".manifest.json"
FAULT_ENV = "CPF_DEPOSIT_FAULT_AT"
CDC_PORTAL = "https://certificateurs.moncompteformation.gouv.fr"


def fault_point(name: str) -> None:
    """Crash tests only: SIGKILL this process when ``$CPF_DEPOSIT_FAULT_AT`` names this point."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def sha256_of(fh) -> str:
    h = hashlib.sha256()
    while chunk := fh.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def _temps_of(outbox: Outbox, name: str) -> list[str]:
    """Temporaries a write of ``name`` (or of its manifest) left in the outbox."""
    return [
        n for n in outbox.names() if (temp_owner(n) or "").removesuffix(MANIFEST_SUFFIX) == name
    ]


# --------------------------------------------------------------------------------------
# Outbox: a local folder, or any fsspec URL through Airflow's ObjectStoragePath
# --------------------------------------------------------------------------------------


class Outbox(Protocol):
    location: str

    def put_file(self, src: Path, name: str) -> None: ...
    def put_bytes(self, data: bytes, name: str) -> None: ...
    def exists(self, name: str) -> bool: ...
    def sha256(self, name: str) -> str | None: ...
    def remove(self, name: str) -> None: ...
    def names(self) -> list[str]: ...
    def mtime(self, name: str) -> dt.datetime: ...
    def move_out(self, name: str, dest: Path) -> None: ...


class LocalOutbox:
    """A folder: files appear by atomic rename, created 0600, fsynced before renaming.

    Every access goes through :mod:`cpf_deposit.files`: the outbox is shared with the
    people who deposit, so a link planted there (under a file's name or a temporary's)
    is never followed, and the outbox itself must not be a link.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.location = str(self.root)

    def _folder(self, create: bool = True) -> Folder:
        return open_folder(self.root, create=create)

    def put_file(self, src: Path, name: str) -> None:
        src = Path(src)
        with self._folder() as out, open_folder(src.parent, create=False) as work:
            try:  # same file system: atomic, and no copy of personal data
                work.move_to(src.name, out, name)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                with work.open_read(src.name) as fin:
                    out.copy_in(fin, name)
                work.unlink(src.name)

    def put_bytes(self, data: bytes, name: str) -> None:
        with self._folder() as out:
            out.write_bytes(name, data)

    def exists(self, name: str) -> bool:
        try:
            with self._folder(create=False) as out:
                return out.exists(name)
        except FileNotFoundError:
            return False

    def sha256(self, name: str) -> str | None:
        """The file's sha256; None when absent (a link planted there counts as absent)."""
        try:
            with self._folder(create=False) as out, out.open_read(name) as fh:
                return sha256_of(fh)
        except FileNotFoundError:
            return None
        except UnsafePathError as exc:
            log.warning("boîte d'envoi : %s", exc)
            return None

    def remove(self, name: str) -> None:
        try:
            with self._folder(create=False) as out:
                out.unlink(name)
        except FileNotFoundError:
            pass

    def names(self) -> list[str]:
        try:
            with self._folder(create=False) as out:
                return out.names()
        except FileNotFoundError:
            return []

    def mtime(self, name: str) -> dt.datetime:
        with self._folder(create=False) as out:
            st = out.lstat(name)
        if st is None:
            raise FileNotFoundError(2, "No such file or directory", str(self.root / name))
        return dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)

    def move_out(self, name: str, dest: Path) -> None:
        with self._folder(create=False) as out, open_folder(dest) as archive:
            if not out.is_file(name):
                raise UnsafePathError(f"{self.root / name}: not a regular file, not archived")
            try:
                out.move_to(name, archive)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                with out.open_read(name) as fin:
                    archive.copy_in(fin, name)
                out.unlink(name)


class ObjectStorageOutbox:
    """An fsspec location (``s3://``, ``gcs://``...) via ObjectStoragePath.

    Objects are written under a temporary key and renamed: object stores publish an
    object whole, so a reader never sees a partial file; the temporary key is removed
    when the copy fails. Object stores have no symbolic links; what comes back to a
    local folder (the archive) goes through :mod:`cpf_deposit.files`.
    """

    def __init__(self, url: str, conn_id: str | None = None):
        from airflow.sdk import ObjectStoragePath

        self.root = ObjectStoragePath(url, conn_id=conn_id)
        self.location = url

    def _publish(self, write, name: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / temp_name(name)
        try:
            with tmp.open("wb") as fout:
                write(fout)
            tmp.rename(self.root / name)
        except BaseException:
            with contextlib.suppress(Exception):
                if tmp.exists():
                    tmp.unlink()
            raise

    def put_file(self, src: Path, name: str) -> None:
        src = Path(src)
        with open_regular(src) as fin:
            self._publish(lambda fout: shutil.copyfileobj(fin, fout, 1 << 20), name)
        src.unlink()

    def put_bytes(self, data: bytes, name: str) -> None:
        self._publish(lambda fout: fout.write(data), name)

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def sha256(self, name: str) -> str | None:
        path = self.root / name
        if not path.exists():
            return None
        with path.open("rb") as fh:
            return sha256_of(fh)

    def remove(self, name: str) -> None:
        path = self.root / name
        if path.exists():
            path.unlink()

    def names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_file())

    def mtime(self, name: str) -> dt.datetime:
        info = (self.root / name).stat()
        t = info.get("mtime") or info.get("LastModified") or info.get("created")
        if isinstance(t, dt.datetime):
            return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
        return dt.datetime.fromtimestamp(float(t), dt.UTC)

    def move_out(self, name: str, dest: Path) -> None:
        with (self.root / name).open("rb") as fin, open_folder(dest) as archive:
            archive.copy_in(fin, name)
        self.remove(name)


def outbox_for(config, url: str | None = None, conn_id: str | None = None) -> Outbox:
    """The outbox: ``url`` if given (a local path or an fsspec URL), else ``paths.outbox``."""
    if url is None:
        return LocalOutbox(config.paths.outbox)
    if ("://" in url and not url.startswith("file:///")) or conn_id is not None:
        return ObjectStorageOutbox(url, conn_id)
    return LocalOutbox(Path(url.removeprefix("file://")))


# --------------------------------------------------------------------------------------
# Runs and their work folders
# --------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def run_work_dir(config, run_id: str) -> Path:
    """Where a run writes its files before staging (private, removed when the run ends)."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return Path(config.paths.work) / "runs" / f"{_UNSAFE.sub('_', run_id)[:80]}-{digest}"


@dataclass
class RecoveryReport:
    """What the recovery step found and did (file names and counts only)."""

    dead_runs: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)  # BUILT files now STAGED
    aborted: list[str] = field(default_factory=list)  # BUILT files found nowhere
    released: int = 0  # claims put back
    removed_parts: list[str] = field(default_factory=list)
    unknown_in_outbox: list[str] = field(default_factory=list)  # not in the ledger: left alone
    missing_from_outbox: list[str] = field(default_factory=list)  # STAGED, file gone

    def summary(self) -> str:
        """In French, counts only (the plan step's line prefixes it with ``reprise :``)."""
        return (
            f"{len(self.dead_runs)} run(s) abandonné(s), {len(self.completed)} fichier(s) "
            f"terminé(s), {len(self.aborted)} annulé(s), {self.released} passage(s) "
            f"réservé(s) rendu(s) au registre, {len(self.unknown_in_outbox)} fichier(s) "
            f"inconnu(s) et {len(self.missing_from_outbox)} manquant(s) dans la boîte d'envoi"
        )


@dataclass
class RunStart:
    run_id: str
    work_dir: Path
    recovery: RecoveryReport


def start_run(
    ledger: Ledger,
    config,
    run_id: str | None = None,
    *,
    kind: str = "manual",
    params: Mapping[str, Any] | None = None,
    bound_to_process: bool = True,
    lease: dt.timedelta = DEFAULT_LEASE,
    outbox: Outbox | None = None,
    now: dt.datetime | None = None,
) -> RunStart:
    """Recover what dead runs left, then register this run (a retry reuses its run id).

    In Airflow pass ``run_id`` (the DAG run id) and ``bound_to_process=False``: the
    run then spans tasks and only its lease tells it is dead.
    """
    now = now or utcnow()
    if run_id is None:
        run_id = f"{kind}-{now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    report = recover(ledger, config, outbox=outbox, lease=lease, now=now, retry_of=run_id)
    with ledger.begin() as conn:
        register_run(
            conn,
            run_id,
            kind=kind,
            params=dict(params or {}),
            bound_to_process=bound_to_process,
            now=now,
        )
    work = private_dir(run_work_dir(config, run_id))
    return RunStart(run_id, work, report)


def end_run(ledger: Ledger, config, run_id: str, *, failed: bool = False) -> int:
    """Finish a run: unstaged claims go back, the work folder (personal data) goes."""
    released = finish_run(ledger, run_id, failed=failed)
    if not failed:
        shutil.rmtree(run_work_dir(config, run_id), ignore_errors=True)
    return released


def recover(
    ledger: Ledger,
    config,
    *,
    outbox: Outbox | None = None,
    lease: dt.timedelta = DEFAULT_LEASE,
    now: dt.datetime | None = None,
    retry_of: str | None = None,
) -> RecoveryReport:
    """Reconcile outbox files and ledger rows left by dead runs (see the module docstring).

    ``retry_of`` is a run id about to start again (an Airflow retry): whatever its
    previous attempt left is recovered like a dead run's.
    """
    now = now or utcnow()
    outbox = outbox or outbox_for(config)
    report = RecoveryReport()
    with ledger.begin(exclusive=True) as conn:
        dead = set(dead_runs(conn, now, lease))
        if retry_of is not None:
            dead.add(retry_of)
        finished = set(
            conn.execute(
                ledger_run.select()
                .with_only_columns(ledger_run.c.run_id)
                .where(ledger_run.c.state.in_((RunState.DONE, RunState.ABANDONED)))
            ).scalars()
        )
        for rec in files_with_status(conn, FileStatus.BUILT):
            if rec.run_id in dead or rec.run_id in finished:
                if _reconcile_built(conn, rec, outbox, now):
                    report.completed.append(rec.file_name)
                else:
                    report.aborted.append(rec.file_name)
        for run_id in sorted(dead):
            report.released += release_claims(conn, run_id, now)
            if run_id != retry_of:
                set_run_state(conn, run_id, RunState.ABANDONED, now)
        report.dead_runs = sorted(dead - {retry_of} if retry_of else dead)
        by_name = {
            r.file_name: r.status
            for r in conn.execute(
                ledger_file.select().with_only_columns(
                    ledger_file.c.file_name, ledger_file.c.status
                )
            )
        }
    for run_id in dead:
        shutil.rmtree(run_work_dir(config, run_id), ignore_errors=True)
    present = set(outbox.names())
    for name in sorted(present):
        owner = temp_owner(name)
        if owner is not None:
            base = owner.removesuffix(MANIFEST_SUFFIX)
            if by_name.get(base) != FileStatus.BUILT:
                outbox.remove(name)
                report.removed_parts.append(name)
        elif name.endswith(MANIFEST_SUFFIX):
            continue
        elif name not in by_name:
            report.unknown_in_outbox.append(name)
        elif by_name[name] in (FileStatus.ABORTED, FileStatus.EXPIRED):
            outbox.remove(name)  # known never to have been staged
            outbox.remove(name + MANIFEST_SUFFIX)
    report.missing_from_outbox = sorted(
        n for n, s in by_name.items() if s == FileStatus.STAGED and n not in present
    )
    if report.dead_runs or report.completed or report.aborted or report.released:
        log.warning("reprise : %s", report.summary())
    return report


def _reconcile_built(conn, rec: FileRecord, outbox: Outbox, now: dt.datetime) -> bool:
    """Finish staging a crashed run's recorded file, or abort it. True when staged."""
    found = outbox.sha256(rec.file_name) == rec.sha256
    work = Path(rec.work_path) if rec.work_path else None
    if found:
        outbox.put_bytes(_manifest_bytes(rec), rec.file_name + MANIFEST_SUFFIX)
    elif work is not None and work.is_file():
        with open_regular(work) as fh:
            intact = sha256_of(fh) == rec.sha256
        if intact:  # manifest first: an XML in the outbox always has its manifest
            outbox.put_bytes(_manifest_bytes(rec), rec.file_name + MANIFEST_SUFFIX)
            outbox.put_file(work, rec.file_name)
            found = True
    if found:
        try:
            with conn.begin_nested():
                return mark_file_staged(conn, rec.id_flux, outbox.location, now)
        except ClaimLost:
            pass  # some passages went elsewhere: the file must not be deposited
    for tmp in _temps_of(outbox, rec.file_name):
        outbox.remove(tmp)
    outbox.remove(rec.file_name)
    outbox.remove(rec.file_name + MANIFEST_SUFFIX)
    revert_file(
        conn,
        rec.id_flux,
        FileStatus.ABORTED,
        now,
        "fichier introuvable après arrêt",
        expected=FileStatus.BUILT,
    )
    return False


# --------------------------------------------------------------------------------------
# Staging
# --------------------------------------------------------------------------------------


class IdCollector:
    """``on_passage`` callback for ``write_flux``: the idTechniques of each file, in order."""

    def __init__(self) -> None:
        self.by_flux: dict[str, list[str]] = defaultdict(list)

    def __call__(self, passage, written) -> None:
        self.by_flux[written.id_flux].append(passage.technical_id)


@dataclass(frozen=True)
class StagedFile:
    """A file in the outbox, awaiting manual deposit (no personal data)."""

    file_name: str
    id_flux: str
    passages: int
    certifications: dict[str, int]
    sha256: str
    size: int
    outbox: str
    run_id: str


def manifest(rec: FileRecord) -> dict[str, Any]:
    """The manifest beside each staged file: what it holds, without personal data."""
    return {
        "file": rec.file_name,
        "id_flux": rec.id_flux,
        "horodatage": rec.horodatage,
        "passages": rec.passages,
        "certifications": dict(sorted(rec.certifications.items())),
        "sha256": rec.sha256,
        "size": rec.size,
        "run_id": rec.run_id,
        "format": "CDC CPF flux XSD 1.1.2",
    }


def _manifest_bytes(rec: FileRecord) -> bytes:
    return (json.dumps(manifest(rec), indent=2, ensure_ascii=False) + "\n").encode()


def _ids_in_file(path: Path) -> list[str]:
    from cpf_deposit.flux.reader import iter_flux

    return [p.technical_id for _, p in iter_flux(path)]


def stage(
    ledger: Ledger,
    config,
    run_id: str,
    files: Iterable,
    technical_ids: Mapping[str, list[str]] | IdCollector | None = None,
    *,
    outbox: Outbox | None = None,
    now: dt.datetime | None = None,
) -> list[StagedFile]:
    """Record each complete, validated file with its passages, move it to the outbox.

    ``files`` are ``WrittenFile`` objects from ``write_flux`` (written in the run's
    work folder); ``technical_ids`` maps idFlux to the file's idTechniques (pass the
    :class:`IdCollector` given to ``write_flux`` as ``on_passage``); without it each
    file is read back. A file whose passages are no longer claimed by this run is
    deleted and :class:`ClaimLost` raised: it would duplicate another run's file.
    """
    outbox = outbox or outbox_for(config)
    if isinstance(technical_ids, IdCollector):
        technical_ids = technical_ids.by_flux
    staged: list[StagedFile] = []
    for wf in files:
        now_ = now or utcnow()
        path = Path(wf.path)
        with ledger.begin() as conn:
            heartbeat(conn, run_id, now_)  # ClaimLost if a recovery took the run for dead
        with open_regular(path) as fh:
            if sha256_of(fh) != wf.sha256:
                raise LedgerError(f"file {path.name} changed since it was written: not staged")
        ids = technical_ids[wf.id_flux] if technical_ids is not None else _ids_in_file(path)
        rec = _record(ledger, run_id, wf, ids, outbox, now_)
        path = Path(wf.path)
        fault_point("recorded")
        try:
            outbox.put_bytes(_manifest_bytes(rec), rec.file_name + MANIFEST_SUFFIX)
            fault_point("manifest")
            outbox.put_file(path, rec.file_name)
        except Exception:  # a full disk, a read-only outbox: nothing half-staged is left
            _unstage(ledger, outbox, rec)
            raise
        fault_point("moved")
        try:
            with ledger.begin() as conn:
                ok = mark_file_staged(conn, rec.id_flux, outbox.location, utcnow(), run_id)
                now_rec = find_file(conn, rec.id_flux)
        except ClaimLost:
            outbox.remove(rec.file_name)
            outbox.remove(rec.file_name + MANIFEST_SUFFIX)
            with ledger.begin() as conn:
                revert_file(
                    conn,
                    rec.id_flux,
                    FileStatus.ABORTED,
                    utcnow(),
                    "réservation perdue",
                    expected=FileStatus.BUILT,
                )
            raise
        if not ok and now_rec.status != FileStatus.STAGED:
            outbox.remove(rec.file_name)
            outbox.remove(rec.file_name + MANIFEST_SUFFIX)
            raise ClaimLost(f"file {rec.file_name} was aborted by a recovery: removed")
        fault_point("staged")
        log.info("fichier %s dans la boîte d'envoi : %d passage(s)", rec.file_name, rec.passages)
        staged.append(
            StagedFile(
                rec.file_name,
                rec.id_flux,
                rec.passages,
                dict(rec.certifications),
                rec.sha256,
                rec.size,
                outbox.location,
                run_id,
            )
        )
    return staged


def _unstage(ledger: Ledger, outbox: Outbox, rec: FileRecord) -> None:
    """Staging failed: remove the manifest (an XML in the outbox always has its manifest,
    and a manifest never stands alone) and abort the file, so its passages go back.
    Never raises: the caller re-raises what made staging fail."""
    for name in (rec.file_name + MANIFEST_SUFFIX, rec.file_name):
        try:
            outbox.remove(name)
        except Exception as exc:
            log.warning("%s non retiré de la boîte d'envoi : %s", name, type(exc).__name__)
    try:
        with ledger.begin() as conn:
            revert_file(
                conn,
                rec.id_flux,
                FileStatus.ABORTED,
                utcnow(),
                "échec de la mise en boîte d'envoi",
                expected=FileStatus.BUILT,
            )
    except Exception as exc:  # the recovery step of the next run finishes it
        log.warning("fichier %s laissé à la reprise : %s", rec.file_name, type(exc).__name__)


_STAMPED = re.compile(r"^(?P<head>.*_)(?P<stamp>\d{14})\.xml$")


def _next_name(name: str) -> str:
    """The writer's own rule for a taken name: the next second (else a numeric suffix)."""
    m = _STAMPED.match(name)
    if m:
        t = dt.datetime.strptime(m["stamp"], "%Y%m%d%H%M%S") + dt.timedelta(seconds=1)
        return f"{m['head']}{t.strftime('%Y%m%d%H%M%S')}.xml"
    stem, _, n = name.removesuffix(".xml").rpartition("-")
    return (
        f"{stem}-{int(n) + 1}.xml" if n.isdigit() and stem else name.removesuffix(".xml") + "-2.xml"
    )


def _record(ledger: Ledger, run_id: str, wf, ids, outbox: Outbox, now: dt.datetime) -> FileRecord:
    """Record the file under a name no other file has (runs may build in the same second).

    A taken name is changed by renaming the work file (and ``wf.path``) before it is
    recorded; the content, idFlux included, is untouched.
    """
    from sqlalchemy.exc import IntegrityError

    for _ in range(100):
        path = Path(wf.path)
        try:
            with ledger.begin() as conn:
                heartbeat(conn, run_id, now)
                name = path.name
                while (name != path.name and path.with_name(name).exists()) or (
                    find_file(conn, name) is not None or outbox.exists(name)
                ):
                    name = _next_name(name)
                if name != path.name:
                    target = path.with_name(name)
                    os.replace(path, target)
                    wf.path = target
                record_file(conn, run_id, wf, ids, work_path=str(wf.path), now=now)
                return find_file(conn, wf.id_flux)  # type: ignore[return-value]
        except ClaimLost:
            Path(wf.path).unlink(missing_ok=True)
            raise
        except IntegrityError:  # another run recorded that name meanwhile (PostgreSQL)
            continue
    raise LedgerError(f"no free file name found for {Path(wf.path).name}")


def pending_deposit(ledger: Ledger) -> list[FileRecord]:
    """Files staged and not yet recorded as deposited (for reminders)."""
    with ledger.engine.connect() as conn:
        return files_with_status(conn, FileStatus.STAGED)


# --------------------------------------------------------------------------------------
# Deposit, notification, retention
# --------------------------------------------------------------------------------------


def record_deposit(
    ledger: Ledger,
    config,
    file: str,
    by: str,
    *,
    at: dt.datetime | None = None,
    outbox: Outbox | None = None,
    archive: bool = True,
) -> FileRecord:
    """Record the manual deposit of a staged file; then move it to the archive folder.

    ``file`` is a file name, a path, a manifest name or an idFlux. A file still BUILT
    (its run was killed after moving it) is completed first when the outbox holds it
    intact; a file whose bytes differ from what was recorded is refused.
    """
    from cpf_deposit.ledger.status import mark_deposited

    outbox = outbox or outbox_for(config)
    key = Path(file).name if ("/" in file or file.endswith(".xml")) else file
    with ledger.begin() as conn:
        rec = find_file(conn, key)
        if rec is None:
            raise LedgerError(f"fichier inconnu du registre : {key}")
        if rec.status == FileStatus.BUILT:
            if outbox.sha256(rec.file_name) != rec.sha256:
                raise LedgerError(f"le fichier {rec.file_name} n'a pas fini d'être préparé")
            mark_file_staged(conn, rec.id_flux, outbox.location, utcnow())
        elif rec.status == FileStatus.DEPOSITED:
            return rec
        elif rec.status != FileStatus.STAGED:
            raise LedgerError(
                f"le fichier {rec.file_name} est à l'état {rec.status} : seul un fichier en "
                "attente de dépôt (STAGED) peut être enregistré comme déposé"
            )
    actual = outbox.sha256(rec.file_name)
    if actual is not None and actual != rec.sha256:
        raise LedgerError(
            f"le fichier {rec.file_name} ne correspond plus à celui préparé (sha256 différent)"
        )
    done = mark_deposited(ledger, rec.id_flux, by, at)
    if archive and actual is not None:
        for name in (rec.file_name, rec.file_name + MANIFEST_SUFFIX):
            if outbox.exists(name):
                outbox.move_out(name, Path(config.paths.archive))
    log.info("fichier %s enregistré comme déposé", rec.file_name)
    return done


def deposit_form(files: Iterable, config, *, outbox: str | None = None) -> str:
    """The deposit form's text (Markdown, French): what to deposit, where to find it,
    and what answering records. Counts and technical ids only."""
    files = list(files)
    where = outbox or str(config.paths.outbox)
    total = sum(f.passages for f in files)
    rows = [
        "| fichier | passages | certifications | SHA-256 (début) |",
        "|---|---:|---|---|",
    ]
    for f in files:
        certs = ", ".join(f"{code} ({n})" for code, n in sorted(f.certifications.items()))
        rows.append(f"| `{f.file_name}` | {f.passages} | {certs} | `{f.sha256[:16]}` |")
    return "\n".join(
        [
            f"**{len(files)} fichier(s), {total} passage(s)** à déposer sur le "
            f"[portail des certificateurs]({CDC_PORTAL}) (« Transmettre des données », "
            "« Déposer un fichier XML »).",
            "",
            *rows,
            "",
            f"**Où sont les fichiers.** Dossier d'envoi : `{where}` (chaque fichier a son "
            "manifeste `.json` à côté). Avec docker-compose, ce dossier est celui du volume "
            "des échanges (voir le README, « Échanger les fichiers »).",
            "",
            "**Après le dépôt**, répondez à ce formulaire : *OK* enregistre le dépôt de "
            "tous les fichiers listés (et le nom saisi, ou le vôtre). Ne répondez pas "
            "avant d'avoir déposé : sans réponse, les fichiers restent en attente et un "
            "rappel est envoyé chaque semaine.",
            "",
            "Déposez ensuite les accusés de traitement de la Caisse des Dépôts dans le "
            f"dossier des accusés (`{config.paths.inbox}`).",
        ]
    )


def notification_text(files: Iterable, config, *, outbox: str | None = None) -> tuple[str, str]:
    """Subject and body (French) telling the operator that files await deposit."""
    files = list(files)
    where = outbox or str(config.paths.outbox)
    total = sum(f.passages for f in files)
    s = "s" if len(files) > 1 else ""
    subject = (
        f"[CPF] {len(files)} fichier{s} à déposer sur le portail de la Caisse des Dépôts "
        f"({total} passage{'s' if total > 1 else ''})"
    )
    lines = [
        "Bonjour,",
        "",
        f"{len(files)} fichier{s} de titulaires pour le Passeport de compétences "
        f"{'attendent' if len(files) > 1 else 'attend'} d'être déposé{s} sur le portail "
        f"des certificateurs ({CDC_PORTAL}), rubrique « Transmettre des données », "
        "« Déposer un fichier XML ».",
        "",
        f"Établissement : {config.institution_name} (UAI {config.uai})",
        f"Dossier : {where}",
        "",
    ]
    for f in files:
        certs = ", ".join(f"{code} ({n})" for code, n in sorted(f.certifications.items()))
        lines += [
            f"- {f.file_name}",
            f"  idFlux : {f.id_flux}",
            f"  {f.passages} passage{'s' if f.passages > 1 else ''} ; certifications : {certs}",
            f"  empreinte SHA-256 : {f.sha256}",
        ]
    lines += [
        "",
        "Après chaque dépôt, enregistrez-le, sans quoi le fichier restera signalé :",
        '    cpf-deposit deposited NOM_DU_FICHIER --by "Prénom Nom"',
        "",
        "Puis déposez l'accusé de traitement reçu de la Caisse des Dépôts dans le dossier "
        f"des accusés ({config.paths.inbox}).",
        f"Ces fichiers contiennent des données personnelles : ils seront supprimés "
        f"automatiquement après {config.limits.retention_days} jours.",
    ]
    return subject, "\n".join(lines) + "\n"


@dataclass
class PurgeReport:
    removed: list[str] = field(default_factory=list)  # paths relative to paths.base_dir
    expired_files: list[str] = field(default_factory=list)  # staged, never deposited
    expired_passages: int = 0

    def summary(self) -> str:
        return (
            f"purge : {len(self.removed)} fichier(s) supprimé(s), {len(self.expired_files)} "
            "fichier(s) de la boîte d'envoi expiré(s) avant dépôt "
            f"({self.expired_passages} passage(s) à renvoyer)"
        )


def purge(
    config,
    now: dt.datetime | None = None,
    *,
    ledger: Ledger | None = None,
    outbox: Outbox | None = None,
) -> PurgeReport:
    """Delete staged files, exports and working files older than ``limits.retention_days``.

    The ledger is kept. A staged file never recorded as deposited is EXPIRED and its
    passages put back, so they are sent again rather than lost. Receipts in the
    archive folder are kept (they hold no personal data); archived flux files go.
    """
    from cpf_deposit.ledger.engine import open_ledger

    now = now or utcnow()
    cutoff = now - dt.timedelta(days=config.limits.retention_days)
    ledger = ledger or open_ledger(config)
    outbox = outbox or outbox_for(config)
    report = PurgeReport()
    with ledger.engine.connect() as conn:
        known = {
            r.file_name: r
            for r in conn.execute(
                ledger_file.select().with_only_columns(
                    ledger_file.c.file_name, ledger_file.c.id_flux, ledger_file.c.status
                )
            )
        }
    for name in outbox.names():
        base = name.removesuffix(MANIFEST_SUFFIX)
        if base.startswith(".") or outbox.mtime(name) >= cutoff:
            continue
        rec = known.get(base)
        if rec is not None and rec.status == FileStatus.BUILT:
            continue  # the recovery step owns it
        if rec is not None and rec.status == FileStatus.STAGED and name == base:
            with ledger.begin() as conn:  # unless deposited since it was listed
                put_back = revert_file(
                    conn,
                    rec.id_flux,
                    FileStatus.EXPIRED,
                    now,
                    "non déposé avant la purge",
                    expected=FileStatus.STAGED,
                )
            if put_back is not None:
                report.expired_passages += put_back
                report.expired_files.append(base)
        outbox.remove(name)
        report.removed.append(f"outbox/{name}")
    base_dir = Path(config.paths.base_dir)
    for folder in (config.paths.work, config.paths.quarantine, config.paths.reports):
        _purge_tree(Path(folder), cutoff, base_dir, report)
    archive = Path(config.paths.archive)
    if archive.is_dir():
        for p in sorted(archive.iterdir()):
            flux = p.name.removesuffix(MANIFEST_SUFFIX) in known
            if p.is_file() and flux and _mtime(p) < cutoff:
                p.unlink()
                report.removed.append(_rel(p, base_dir))
    log.info(report.summary())
    return report


def _mtime(p: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(p.stat().st_mtime, dt.UTC)


def _rel(p: Path, base: Path) -> str:
    try:
        return str(p.relative_to(base))
    except ValueError:
        return str(p)


def _purge_tree(root: Path, cutoff: dt.datetime, base: Path, report: PurgeReport) -> None:
    if not root.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        d = Path(dirpath)
        for name in filenames:
            p = d / name
            if _mtime(p) < cutoff:
                p.unlink()
                report.removed.append(_rel(p, base))
        if d != root and not any(d.iterdir()):
            d.rmdir()
