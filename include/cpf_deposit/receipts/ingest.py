"""Ingest the CDC's receipts from the inbox: apply them to the ledger, archive them.

Why this shape: a receipt is untrusted input that decides the fate of up to 200 000
passages. So each one is read completely (streamed, by :mod:`.parser`) *before* the
ledger is touched, then applied in one ledger transaction: a truncated or hostile
file changes nothing. After the commit the receipt moves to
``<paths.archive>/receipts/<deposited file>/`` and a line is appended to
``<paths.archive>/receipts/index.jsonl`` (content hash, file, counts): the index is
how a receipt dropped a second time is recognised (same sha256, archived copy still
there) and left without effect. Applying the same results twice is also harmless at
the ledger level (every transition names the state it expects).

Two kinds of files arrive:

* the accusé de traitement (``Accusé de traitement_<file>_<YYYYMMDD>.xml``, also
  URL-encoded or ASCII-fied), in both shapes: XSD errors (the whole file is
  FILE_REJECTED) or per-passage results (ACCEPTED, ACCEPTED when "existe déjà en base",
  REJECTED with the normalised reason and the verbatim message);
* the accusé de réception (``Accusé de réception_<file>…``), whose format is not
  public: archived byte for byte beside its file's receipts, never parsed.

A file that cannot be trusted or placed (hostile, oversized, truncated, for a file
the ledger does not know) is *refused*: it goes to ``<paths.inbox>/refused/`` with a
``.motif.txt`` file saying why, in French, and the ledger is not touched.

The ledger's reason column holds ``[<normalised reason>] <verbatim CDC message>``
(:func:`format_reason`, :func:`split_reason`): nothing of the CDC's wording is lost.
Logs carry file names, counts and idTechniques only, never personal data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import re
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import unquote

from cpf_deposit.errors import DataError
from cpf_deposit.files import (
    Folder,
    UnsafePathError,
    open_folder,
    open_regular,
)
from cpf_deposit.ledger.engine import Ledger, LedgerError
from cpf_deposit.ledger.schema import Status, ledger_sending
from cpf_deposit.ledger.status import (
    FileRecord,
    apply_file_rejection,
    apply_receipt_results,
    find_file,
    utcnow,
)
from cpf_deposit.receipts.parser import (
    MAX_RECEIPT_BYTES,
    Reason,
    Receipt,
    ReceiptError,
    XsdError,
    deposited_file_from_receipt_name,
)

log = logging.getLogger(__name__)

REFUSED_DIR = "refused"
RECEIPTS_DIR = "receipts"
INDEX_NAME = "index.jsonl"
AWARD_YEARS = "award-years.json"
REASON_SUFFIX = ".motif.txt"
XSD_REASON = "xsd_errors"

KIND_PROCESSING = "traitement"  # accusé de traitement
KIND_RECEPTION = "reception"  # accusé de réception

_RECEPTION_NAME = re.compile(
    r"^accus[eé][ _]+de[ _]+r[eé]ception[ _]+(?P<file>.+?\.xml)(?:[ _]+(?P<day>\d{8}))?"
    r"(?:\.[A-Za-z0-9]{1,8})?$",
    re.IGNORECASE,
)
_REASON_TEXT = re.compile(r"^\[(?P<code>[a-z0-9_]+)\] (?P<message>.*)$", re.DOTALL)


class ReceiptRefused(DataError, ValueError):
    """A file of the inbox cannot be applied; the message (French) says why (terminal:
    the file is set aside until someone fixes the cause)."""


# --------------------------------------------------------------------------------------
# Reasons as stored in the ledger
# --------------------------------------------------------------------------------------


def format_reason(reason: Reason | str, message: str | None) -> str:
    """``[no_match_stage_1] Aucun titulaire ne correspond …``: code, then the CDC's words."""
    return f"[{reason}] {message if message is not None else ''}"


def split_reason(text: str | None) -> tuple[str | None, str | None]:
    """Inverse of :func:`format_reason`: (code, verbatim message); (None, text) otherwise."""
    if text is None:
        return None, None
    m = _REASON_TEXT.match(text)
    if not m:
        return None, text
    return m["code"], m["message"]


# --------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------


def _plain_name(name: str) -> str:
    return unicodedata.normalize("NFC", unquote(name))


def reception_file_name(name: str) -> str | None:
    """``Accusé de réception_<file>[_<YYYYMMDD>][.ext]`` → the deposited file's name."""
    m = _RECEPTION_NAME.match(_plain_name(name))
    return m["file"] if m else None


def kind_of(name: str) -> str | None:
    """Which receipt a name announces: traitement, réception, or None."""
    if deposited_file_from_receipt_name(name) is not None:
        return KIND_PROCESSING
    if reception_file_name(name) is not None:
        return KIND_RECEPTION
    return None


# --------------------------------------------------------------------------------------
# Inbox: a local folder, or any fsspec URL through Airflow's ObjectStoragePath
# --------------------------------------------------------------------------------------


class Inbox(Protocol):
    location: str

    def names(self) -> list[str]: ...
    def size(self, name: str) -> int: ...
    def is_link(self, name: str) -> bool: ...
    def open(self, name: str, max_bytes: int) -> contextlib.AbstractContextManager[IO[bytes]]: ...
    def remove(self, name: str) -> None: ...
    def refuse(self, name: str, reason: str) -> str: ...


def _free_name(exists, name: str) -> str:
    if not exists(name):
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    for n in range(2, 10_000):
        candidate = f"{stem}-{n}{dot}{ext}"
        if not exists(candidate):
            return candidate
    raise ReceiptRefused(f"aucun nom libre pour {name}")


def _refusal_text(name: str, reason: str, at: dt.datetime) -> bytes:
    return (
        f"Fichier : {name}\nRefusé le : {at.isoformat(timespec='seconds')}\n"
        f"Motif : {reason}\n\nLe registre n'a pas été modifié. Corrigez la cause puis "
        "replacez le fichier dans le dossier des accusés.\n"
    ).encode()


_NOT_REGULAR = "lien symbolique ou fichier spécial : seul un fichier ordinaire est accepté"


class LocalInbox:
    """A folder; files are moved out only once archived (fsynced) or refused.

    Reached through :mod:`cpf_deposit.files`: the inbox itself and ``refused/`` must
    not be symbolic links (a refusal through a linked ``refused/`` would move files
    anywhere), and a receipt is read from the descriptor it was checked on.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.location = str(self.root)

    def _folder(self) -> Folder:
        return open_folder(self.root, create=False)

    def names(self) -> list[str]:
        try:
            with self._folder() as inbox:
                return inbox.names(links=True, hidden=False)
        except FileNotFoundError:
            return []

    def size(self, name: str) -> int:
        with self._folder() as inbox:
            st = inbox.lstat(name)
        if st is None:
            raise ReceiptRefused("fichier disparu du dossier des accusés")
        return st.st_size

    def is_link(self, name: str) -> bool:
        with self._folder() as inbox:
            return inbox.is_link(name)

    @contextlib.contextmanager
    def open(self, name: str, max_bytes: int) -> Iterator[IO[bytes]]:
        with self._folder() as inbox:
            try:
                fh = inbox.open_read(name)
            except UnsafePathError:
                raise ReceiptRefused(_NOT_REGULAR) from None
        with fh:
            yield fh

    def remove(self, name: str) -> None:
        with self._folder() as inbox:
            inbox.unlink(name)

    def refuse(self, name: str, reason: str) -> str:
        with self._folder() as inbox, inbox.sub(REFUSED_DIR) as refused:
            target = _free_name(refused.exists, name)
            inbox.move_to(name, refused, target)
            refused.write_bytes(target + REASON_SUFFIX, _refusal_text(name, reason, utcnow()))
        return str(self.root / REFUSED_DIR / target)


class ObjectStorageInbox:
    """An fsspec location (``s3://``, ``gcs://``…) via ObjectStoragePath.

    A receipt is copied into an anonymous private temporary file (size-capped while
    copying, gone when closed, whatever happens) before it is parsed: the parser
    needs a seekable local file. Object stores have no symbolic links.
    """

    def __init__(self, url: str, conn_id: str | None = None):
        from airflow.sdk import ObjectStoragePath

        self.root = ObjectStoragePath(url, conn_id=conn_id)
        self.location = url

    def names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_file() and not p.name.startswith(".")
        )

    def size(self, name: str) -> int:
        info = (self.root / name).stat()
        return int(info.get("size") or info.get("Size") or 0)

    def is_link(self, name: str) -> bool:
        return False

    @contextlib.contextmanager
    def open(self, name: str, max_bytes: int) -> Iterator[IO[bytes]]:
        with tempfile.TemporaryFile(prefix="cpf-receipt-") as local:
            copied = 0
            with (self.root / name).open("rb") as fin:
                while chunk := fin.read(1 << 20):
                    copied += len(chunk)
                    if copied > max_bytes:
                        raise ReceiptRefused(
                            f"plus de {max_bytes:,} octets : trop gros pour un accusé".replace(
                                ",", " "
                            )
                        )
                    local.write(chunk)
            local.flush()
            local.seek(0)
            yield local

    def remove(self, name: str) -> None:
        (self.root / name).unlink()

    def refuse(self, name: str, reason: str) -> str:
        folder = self.root / REFUSED_DIR
        folder.mkdir(parents=True, exist_ok=True)
        target = _free_name(lambda n: (folder / n).exists(), name)
        (self.root / name).rename(folder / target)
        with (folder / (target + REASON_SUFFIX)).open("wb") as fh:
            fh.write(_refusal_text(name, reason, utcnow()))
        return f"{self.location.rstrip('/')}/{REFUSED_DIR}/{target}"


class ExplicitFiles:
    """Files named on the command line: read and archived by copy, never moved or refused
    in place (the operator keeps them where they are)."""

    def __init__(self, paths: Iterable[Path]):
        self.paths = {p.name: Path(p) for p in paths}
        self.location = "(fichiers désignés)"

    def names(self) -> list[str]:
        return list(self.paths)

    def size(self, name: str) -> int:
        return self.paths[name].lstat().st_size

    def is_link(self, name: str) -> bool:
        return self.paths[name].is_symlink()

    @contextlib.contextmanager
    def open(self, name: str, max_bytes: int) -> Iterator[IO[bytes]]:
        try:
            fh = open_regular(self.paths[name])
        except UnsafePathError:
            raise ReceiptRefused(_NOT_REGULAR) from None
        with fh:
            yield fh

    def remove(self, name: str) -> None:
        """Left in place: the operator named it."""

    def refuse(self, name: str, reason: str) -> str:
        return str(self.paths[name])  # left in place: the report says why


def inbox_for(config, url: str | None = None, conn_id: str | None = None) -> Inbox:
    """The inbox: ``url`` if given (a local path or an fsspec URL), else ``paths.inbox``."""
    if url is None:
        return LocalInbox(Path(config.paths.inbox))
    if ("://" in url and not url.startswith("file:///")) or conn_id is not None:
        return ObjectStorageInbox(url, conn_id)
    return LocalInbox(Path(url.removeprefix("file://")))


def _sha256(fh: IO[bytes]) -> str:
    h = hashlib.sha256()
    fh.seek(0)
    while chunk := fh.read(1 << 20):
        h.update(chunk)
    fh.seek(0)
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# The archive and its index
# --------------------------------------------------------------------------------------


class ReceiptArchive:
    """``<paths.archive>/receipts/``: one folder per deposited file, and ``index.jsonl``.

    Every file goes through :mod:`cpf_deposit.files` (0600 files, 0700 folders, no
    link followed, copies complete or absent).
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.index_path = self.root / INDEX_NAME

    @classmethod
    def of(cls, config) -> ReceiptArchive:
        return cls(Path(config.paths.archive) / RECEIPTS_DIR)

    def _open(self, create: bool = True) -> Folder:
        return open_folder(self.root, create=create)

    def entries(self) -> list[dict]:
        try:
            with self._open(create=False) as root:
                if not root.is_file(INDEX_NAME):
                    return []
                text = root.read_text(INDEX_NAME)
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            line = line.strip()
            if line:
                with contextlib.suppress(json.JSONDecodeError):  # a torn last line
                    out.append(json.loads(line))
        return out

    def _archived(self, relative: str) -> bool:
        folder, _, name = relative.rpartition("/")
        try:
            with self._open(create=False) as root:
                if not folder:
                    return root.is_file(name)
                with root.sub(folder, create=False) as sub:
                    return sub.is_file(name)
        except (FileNotFoundError, UnsafePathError):
            return False

    def find(self, sha256: str) -> dict | None:
        """The index entry of an archived receipt with this content, if still archived."""
        for entry in self.entries():
            if entry.get("sha256") == sha256 and self._archived(entry["archived_as"]):
                return entry
        return None

    @staticmethod
    def folder_name(file_name: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", file_name).lstrip(".") or "_"

    def folder_for(self, file_name: str) -> Path:
        return self.root / self.folder_name(file_name)

    def store(self, fh: IO[bytes], file_name: str, name: str, sha256: str) -> str:
        """Copy a receipt (from its start) beside its file's receipts: the relative name."""
        safe = self.folder_name(file_name)
        base = name if "/" not in name and not name.startswith(".") else f"receipt-{sha256[:12]}"
        with self._open() as root, root.sub(safe) as folder:
            if folder.exists(base):
                stem, dot, ext = base.rpartition(".")
                base = f"{stem}.{sha256[:12]}.{ext}" if dot else f"{base}.{sha256[:12]}"
            fh.seek(0)
            folder.copy_in(fh, base)
        return f"{safe}/{base}"

    def append(self, entry: dict) -> None:
        with self._open() as root:
            root.append_line(
                INDEX_NAME, json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
            )

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One ingestion at a time (Airflow task and command line)."""
        with self._open() as root, root.lock(".lock"):
            yield


# --------------------------------------------------------------------------------------
# What ingesting one file did
# --------------------------------------------------------------------------------------

APPLIED, DUPLICATE, REFUSED, ARCHIVED = "applied", "duplicate", "refused", "archived"


@dataclass
class ReceiptResult:
    """Outcome of one inbox file (file names, counts and idTechniques: no personal data)."""

    name: str
    kind: str | None
    status: str = REFUSED  # applied | duplicate | refused | archived (accusé de réception)
    error: str | None = None  # why it was refused (French)
    sha256: str | None = None
    file_name: str | None = None  # the deposited file it belongs to
    id_flux: str | None = None
    processing_id: str | None = None
    shape: str | None = None  # results | xsd_errors | empty
    accepted: int = 0  # PassagesOK
    already_in_base: int = 0  # KO "existe déjà en base": accepted earlier
    rejected: Counter = field(default_factory=Counter)  # normalised reason -> count
    unknown_messages: Counter = field(default_factory=Counter)  # verbatim -> count
    xsd_errors: list[XsdError] = field(default_factory=list)
    file_rejected: int = 0  # passages put back by an XSD-error receipt
    unknown_ids: list[str] = field(default_factory=list)  # not passages of that file
    superseded: list[str] = field(default_factory=list)  # sent again in a newer file since
    recorded_before: int = 0  # results already in the ledger (a receipt seen before)
    missing: int = 0  # passages of the file the receipt does not mention
    archived_as: str | None = None
    refused_to: str | None = None
    duplicate_of: str | None = None

    @property
    def accepted_total(self) -> int:
        return self.accepted + self.already_in_base

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def processed(self) -> int:
        return self.accepted_total + self.rejected_total

    @property
    def rate(self) -> float | None:
        return self.accepted_total / self.processed if self.processed else None

    @property
    def problem(self) -> bool:
        """Refused, or naming idTechniques the file does not hold: exit 1."""
        return self.status == REFUSED or bool(self.unknown_ids)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["rejected"] = dict(self.rejected)
        d["unknown_messages"] = dict(self.unknown_messages)
        d["xsd_errors"] = [asdict(e) for e in self.xsd_errors]
        d["rate"] = self.rate
        return d


@dataclass
class IngestReport:
    results: list[ReceiptResult] = field(default_factory=list)

    @property
    def problem(self) -> bool:
        return any(r.problem for r in self.results)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def accepted(self) -> int:
        return sum(r.accepted_total for r in self.results if r.status == APPLIED)

    @property
    def processed(self) -> int:
        return sum(r.processed for r in self.results if r.status == APPLIED)

    @property
    def rate(self) -> float | None:
        return self.accepted / self.processed if self.processed else None


# --------------------------------------------------------------------------------------
# Ingestion
# --------------------------------------------------------------------------------------


def ingest_inbox(
    ledger: Ledger,
    config,
    inbox: Inbox | None = None,
    *,
    max_bytes: int = MAX_RECEIPT_BYTES,
    now: dt.datetime | None = None,
) -> IngestReport:
    """Every file of the inbox (default: ``paths.inbox``), one after the other."""
    inbox = inbox if inbox is not None else inbox_for(config)
    archive = ReceiptArchive.of(config)
    report = IngestReport()
    with archive.lock():
        for name in inbox.names():
            result = ingest_one(ledger, config, inbox, name, archive, max_bytes=max_bytes, now=now)
            report.results.append(result)
    return report


def ingest_files(ledger: Ledger, config, paths: Iterable[Path], **kwargs) -> IngestReport:
    """Files named explicitly: archived by copy, left where they are."""
    return ingest_inbox(ledger, config, ExplicitFiles(paths), **kwargs)


def ingest_one(
    ledger: Ledger,
    config,
    inbox: Inbox,
    name: str,
    archive: ReceiptArchive,
    *,
    max_bytes: int = MAX_RECEIPT_BYTES,
    now: dt.datetime | None = None,
) -> ReceiptResult:
    """One inbox file: applied and archived, recognised as a duplicate, or refused."""
    result = ReceiptResult(name, kind_of(name))
    try:
        _ingest(ledger, config, inbox, name, archive, result, max_bytes, now or utcnow())
    except (ReceiptRefused, ReceiptError, LedgerError) as exc:
        result.status = REFUSED
        result.error = _french(exc, name)
        result.refused_to = inbox.refuse(name, result.error)
        log.warning("accusé %s refusé : %s", name, result.error)
    return result


def _french(exc: Exception, name: str) -> str:
    """The parser and ledger speak English; the operator reads French."""
    text = str(exc).removeprefix(f"{name}: ")
    if isinstance(exc, ReceiptError):
        return f"accusé illisible ou non fiable : {text}"
    if isinstance(exc, LedgerError):
        return f"refusé par le registre : {text}"
    return text


def _ingest(ledger, config, inbox, name, archive, result, max_bytes, now) -> None:
    if inbox.is_link(name):
        raise ReceiptRefused("lien symbolique : seul un fichier ordinaire est accepté")
    size = inbox.size(name)
    if size > max_bytes:
        raise ReceiptRefused(
            f"{size:,} octets, plus que les {max_bytes:,} admis pour un accusé".replace(",", " ")
        )
    if size == 0:
        raise ReceiptRefused("fichier vide")
    # One open file from here on: what is hashed, parsed and archived is the same bytes.
    with inbox.open(name, max_bytes) as fh:
        result.sha256 = _sha256(fh)
        seen = archive.find(result.sha256)
        if seen is not None:
            result.status = DUPLICATE
            result.duplicate_of = seen["archived_as"]
            result.file_name = seen.get("file_name")
            result.id_flux = seen.get("id_flux")
            inbox.remove(name)  # the same bytes are archived already: nothing is lost
            log.info("accusé %s : déjà intégré sous %s", name, seen["archived_as"])
            return
        if result.kind == KIND_RECEPTION:
            _reception(ledger, inbox, name, fh, archive, result, now)
            return
        receipt = Receipt(fh, max_bytes=max_bytes, name=name)
        rec = _file_of(ledger, name, receipt)
        result.file_name, result.id_flux = rec.file_name, rec.id_flux
        result.processing_id = receipt.header.processing_id
        result.shape = receipt.header.kind
        if receipt.header.kind == "xsd_errors":
            _apply_xsd_errors(ledger, receipt, rec, result, now)
        else:
            _apply_results(ledger, receipt, rec, result, now)
        _keep_award_years(config, archive, rec)
        result.archived_as = archive.store(fh, rec.file_name, name, result.sha256)
    inbox.remove(name)
    result.status = APPLIED
    archive.append(_index_entry(result, now))
    log.info(
        "accusé %s appliqué à %s : %d accepté(s), %d rejeté(s), %d idTechnique(s) inconnu(s)",
        name,
        rec.file_name,
        result.accepted_total,
        result.rejected_total,
        len(result.unknown_ids),
    )


def _index_entry(result: ReceiptResult, now: dt.datetime) -> dict:
    return {
        "sha256": result.sha256,
        "name": result.name,
        "kind": result.kind or KIND_PROCESSING,
        "archived_as": result.archived_as,
        "file_name": result.file_name,
        "id_flux": result.id_flux,
        "processing_id": result.processing_id,
        "shape": result.shape,
        "ingested_at": now.isoformat(timespec="seconds"),
        "accepted": result.accepted,
        "already_in_base": result.already_in_base,
        "rejected": dict(result.rejected),
        "unknown_messages": dict(result.unknown_messages),
        "xsd_errors": len(result.xsd_errors),
        "unknown_ids": len(result.unknown_ids),
        "missing": result.missing,
    }


def _file_of(ledger: Ledger, name: str, receipt: Receipt) -> FileRecord:
    """The ledger file a receipt answers: by idFlux and nomFichier, which must agree."""
    header = receipt.header
    named = deposited_file_from_receipt_name(name)
    by_name = named[0] if named else None
    if header.file_name is None and header.id_flux is None:
        raise ReceiptRefused("l'accusé ne donne ni nomFichier ni idFlux")
    if by_name is not None and header.file_name is not None and by_name != header.file_name:
        raise ReceiptRefused(
            f"le nom de l'accusé désigne {by_name} mais son contenu (nomFichier) {header.file_name}"
        )
    with ledger.engine.connect() as conn:
        by_flux = find_file(conn, header.id_flux) if header.id_flux else None
        by_file = find_file(conn, header.file_name) if header.file_name else None
    if header.id_flux and by_flux is None:
        raise ReceiptRefused(f"idFlux {header.id_flux} inconnu du registre (fichier inconnu)")
    if header.file_name and by_file is None:
        raise ReceiptRefused(f"fichier {header.file_name} inconnu du registre")
    if by_flux and by_file and by_flux.id_flux != by_file.id_flux:
        raise ReceiptRefused(
            f"nomFichier {header.file_name} et idFlux {header.id_flux} désignent deux "
            "fichiers différents du registre"
        )
    rec = by_flux or by_file
    assert rec is not None
    return rec


def _apply_results(ledger, receipt: Receipt, rec: FileRecord, result, now) -> None:
    accepted: dict[str, str | None] = {}
    rejected: dict[str, str] = {}
    seen: dict[str, str] = {}  # idTechnique -> first outcome text, to catch contradictions
    for r in receipt.results():
        text = None if r.reason is Reason.ACCEPTED else format_reason(r.reason, r.message)
        key = text or "[accepted]"
        if r.technical_id in seen:
            if seen[r.technical_id] != key:
                raise ReceiptRefused(
                    f"l'idTechnique {r.technical_id} figure deux fois avec des résultats "
                    "différents : accusé incohérent"
                )
            continue
        seen[r.technical_id] = key
        if r.reason.accepted:
            accepted[r.technical_id] = text
        else:
            rejected[r.technical_id] = text  # type: ignore[assignment]
    del seen
    with ledger.begin() as conn:
        ok, ko = apply_receipt_results(conn, rec.id_flux, accepted, rejected, now)
        result.missing = _pending(conn, rec.id_flux)
    result.unknown_ids = sorted(ok.unknown + ko.unknown)
    result.superseded = sorted(ok.superseded + ko.superseded)
    result.recorded_before = ok.already + ko.already
    _count(result, accepted, rejected, set(result.unknown_ids))
    if result.unknown_ids:
        log.warning(
            "l'accusé de %s cite %d idTechnique(s) absent(s) de ce fichier : %s",
            rec.file_name,
            len(result.unknown_ids),
            ", ".join(result.unknown_ids[:20]),
        )


def _count(result, accepted: dict, rejected: dict, unknown: set[str]) -> None:
    """Counts from the ledger's side: an idTechnique the file does not hold is counted
    as unknown only, never as accepted or rejected (nor in the rate or the index)."""
    for tid, text in accepted.items():
        if tid in unknown:
            continue
        if text is None:
            result.accepted += 1
        else:
            result.already_in_base += 1
    for tid, text in rejected.items():
        if tid in unknown:
            continue
        code, message = split_reason(text)
        result.rejected[code] += 1
        if code == Reason.UNKNOWN.value:
            result.unknown_messages[message or ""] += 1


def xsd_reason(errors: list[XsdError], archived_name: str | None = None) -> str:
    """The ledger reason of an XSD-rejected file: the count and the first error, verbatim."""
    if not errors:
        return format_reason(XSD_REASON, "accusé d'erreurs XSD sans erreur détaillée")
    first = errors[0]
    where = []
    if first.line is not None:
        where.append(f"ligne {first.line}")
    if first.column is not None:
        where.append(f"colonne {first.column}")
    loc = f" ({', '.join(where)})" if where else ""
    more = f" ; {len(errors) - 1} autre(s), voir l'accusé archivé" if len(errors) > 1 else ""
    return format_reason(
        XSD_REASON, f"{len(errors)} erreur(s) XSD, dont{loc} : {first.message}{more}"
    )


def _apply_xsd_errors(ledger, receipt: Receipt, rec: FileRecord, result, now) -> None:
    result.xsd_errors = receipt.xsd_errors()
    with ledger.begin() as conn:
        out = apply_file_rejection(conn, rec.id_flux, xsd_reason(result.xsd_errors), now)
    result.file_rejected = out.applied
    result.recorded_before = out.already


def _pending(conn, id_flux: str) -> int:
    from sqlalchemy import func, select

    S = ledger_sending.c
    return conn.execute(
        select(func.count()).where(S.id_flux == id_flux, S.status == Status.PENDING)
    ).scalar_one()


def _reception(ledger, inbox, name, fh, archive, result, now) -> None:
    """An accusé de réception: archived as it is, beside its file's receipts."""
    file_name = reception_file_name(name)
    assert file_name is not None
    with ledger.engine.connect() as conn:
        rec = find_file(conn, file_name)
    if rec is None:
        raise ReceiptRefused(f"accusé de réception d'un fichier inconnu du registre : {file_name}")
    result.file_name, result.id_flux = rec.file_name, rec.id_flux
    result.archived_as = archive.store(fh, rec.file_name, name, result.sha256)
    inbox.remove(name)
    result.status = ARCHIVED
    archive.append(_index_entry(result, now))
    log.info("accusé de réception %s archivé avec %s", name, rec.file_name)


# --------------------------------------------------------------------------------------
# Academic year of each award, kept while the deposited file is still in the archive
# --------------------------------------------------------------------------------------


def academic_year(day: dt.date) -> str:
    """1 September to 31 August: 2023-07-01 is in 2022-2023."""
    start = day.year if day.month >= 9 else day.year - 1
    return f"{start}-{start + 1}"


def _keep_award_years(config, archive: ReceiptArchive, rec: FileRecord) -> None:
    """idTechnique → academic year of the award, read from the archived flux once.

    The flux (personal data) is purged after the retention period; this small file
    (idTechniques and years only) lets the reconciliation group by academic year later.
    Written atomically: a full disk leaves no file (the next receipt of that file
    writes it), never a truncated one that would hide the years for good.
    """
    from cpf_deposit.flux.reader import iter_flux

    try:
        with open_folder(config.paths.archive, create=False) as deposited:
            if not deposited.is_file(rec.file_name):
                return
            with archive._open() as root, root.sub(archive.folder_name(rec.file_name)) as out:
                if out.is_file(AWARD_YEARS):
                    return
                years: dict[str, str] = {}
                with deposited.open_read(rec.file_name) as flux:
                    for _info, p in iter_flux(flux):
                        if p.technical_id and p.award_date:
                            years[p.technical_id] = academic_year(p.award_date)
                out.write_bytes(AWARD_YEARS, json.dumps(years, separators=(",", ":")).encode())
    except FileNotFoundError:
        return
    except Exception as exc:  # the receipt is applied; the years are a convenience
        log.warning("années d'obtention de %s non lues : %s", rec.file_name, type(exc).__name__)


def award_years(config) -> dict[str, str]:
    """Every kept idTechnique → academic year (see :func:`_keep_award_years`)."""
    out: dict[str, str] = {}
    try:
        root = ReceiptArchive.of(config)._open(create=False)
    except (FileNotFoundError, UnsafePathError):
        return out
    with root:
        for name in root.folders():
            with (
                contextlib.suppress(ValueError, OSError, UnsafePathError),
                root.sub(name, create=False) as folder,
            ):
                if folder.is_file(AWARD_YEARS):
                    out.update(json.loads(folder.read_text(AWARD_YEARS)))
    return out
