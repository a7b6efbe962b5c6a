"""Read the CDC's accusés de traitement, safely and streaming.

A receipt comes in one of two shapes (cdc-format.md §6): XSD errors (the whole file was
rejected) or per-passage results (``PassagesKO/passage`` and ``PassagesOK/idTechnique``).
Element names are matched case-insensitively and without namespace, ``idTraitement``
and ``idDemande`` alike. A receipt is untrusted input: a DOCTYPE (DTD, entity
declaration) or a processing instruction is refused by the parser itself, wherever it
stands and whatever the encoding (:func:`cpf_deposit.flux.reader.secure_iterparse`),
nothing is resolved or fetched, the size is capped, and a truncated file is an error,
never a partial result.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO
from urllib.parse import unquote

from cpf_deposit.errors import DataError

MAX_RECEIPT_BYTES = 256 * 1024 * 1024  # a 200 000-passage receipt is about 30 MB


class ReceiptError(DataError, ValueError):
    """The file is not a receipt this project can trust; nothing was read from it
    (terminal: reading it again gives the same answer)."""


class Reason(StrEnum):
    """What a per-passage line means, normalised from the CDC's message."""

    ACCEPTED = "accepted"
    ALREADY_IN_BASE = "already_in_base"  # "existe déjà en base": accepted earlier
    NO_MATCH_STAGE_1 = "no_match_stage_1"  # name + first name + sex + birth year
    NO_MATCH_STAGE_2 = "no_match_stage_2"  # ... plus day and month of birth
    NO_MATCH_STAGE_3 = "no_match_stage_3"  # ... plus birthplace and other data
    NO_MATCH_FIRST_NAMES_2_3 = "no_match_first_names_2_3"
    SEVERAL_HOLDERS = "several_holders"
    CERTIFICATION_KO = "certification_ko"
    DATES = "dates"
    UNKNOWN = "unknown"  # kept verbatim and counted, never dropped

    @property
    def accepted(self) -> bool:
        return self in (Reason.ACCEPTED, Reason.ALREADY_IN_BASE)


# Most specific first: stage 2's message starts with stage 1's.
_REASON_PATTERNS: tuple[tuple[str, Reason], ...] = (
    ("existe deja en base", Reason.ALREADY_IN_BASE),
    ("criteres obligatoires enrichis du jour et du mois", Reason.NO_MATCH_STAGE_2),
    ("criteres obligatoires", Reason.NO_MATCH_STAGE_1),
    ("criteres de reconciliation", Reason.NO_MATCH_STAGE_3),
    ("criteres des prenoms 2 et 3", Reason.NO_MATCH_FIRST_NAMES_2_3),
    ("aucun titulaire ne correspond a ces criteres", Reason.NO_MATCH_STAGE_1),
    ("plusieurs titulaires", Reason.SEVERAL_HOLDERS),
    ("statut de la certification", Reason.CERTIFICATION_KO),
    ("date de fin de validite est inferieure", Reason.DATES),
)


def _fold(text: str) -> str:
    """Lower case, accents removed, spaces collapsed: for matching CDC wording only."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.lower().replace("’", "'").split())


def classify(message: str | None) -> Reason:
    if message is None:
        return Reason.ACCEPTED
    folded = _fold(message)
    for needle, reason in _REASON_PATTERNS:
        if needle in folded:
            return reason
    return Reason.UNKNOWN


@dataclass(frozen=True)
class ReceiptHeader:
    file_name: str | None  # nomFichier: the deposited file's name
    id_flux: str | None
    processing_id: str | None  # idTraitement (idDemande in older receipts)
    kind: str  # "results" | "xsd_errors" | "empty"


@dataclass(frozen=True)
class PassageResult:
    technical_id: str
    reason: Reason
    message: str | None  # verbatim CDC message (None for PassagesOK)

    @property
    def accepted(self) -> bool:
        return self.reason.accepted


@dataclass(frozen=True)
class XsdError:
    type: str | None
    message: str
    line: int | None
    column: int | None


_RECEIPT_NAME = re.compile(
    r"^accus[eé][ _]+de[ _]+traitement[ _]+(?P<file>.+\.xml)[ _]+(?P<day>\d{8})\.xml$",
    re.IGNORECASE,
)


def deposited_file_from_receipt_name(name: str) -> tuple[str, str] | None:
    """``Accusé de traitement_<file>_<YYYYMMDD>.xml`` → (file, YYYYMMDD).

    Also the URL-encoded and ASCII-fied forms seen in the wild
    (``Accus%C3%A9%20de%20traitement_…``, ``Accuse_de_traitement_…``).
    """
    m = _RECEIPT_NAME.match(unicodedata.normalize("NFC", unquote(name)))
    if not m:
        return None
    return m.group("file"), m.group("day")


def _check_size(source: Path | IO[bytes], name: str, max_bytes: int) -> None:
    size = os.fstat(source.fileno()).st_size if _is_file(source) else source.stat().st_size
    if size > max_bytes:
        raise ReceiptError(
            f"{name}: {size:,} bytes, more than the {max_bytes:,} accepted for a receipt"
        )
    if size == 0:
        raise ReceiptError(f"{name}: empty file")


def _is_file(source) -> bool:
    return hasattr(source, "read")


def _local(tag) -> str:
    if not isinstance(tag, str):  # comments, processing instructions
        return ""
    return tag.rsplit("}", 1)[-1].lower()


def _release(el) -> None:
    """Free an element once read, and its finished siblings: memory stays flat."""
    el.clear()
    parent = el.getparent()
    if parent is not None:
        while el.getprevious() is not None:
            del parent[0]


def _events(source: Path | IO[bytes], name: str):
    """Start and end events; a DOCTYPE or processing instruction raises ReceiptError."""
    from cpf_deposit.flux.reader import DOCTYPE_REFUSED, UnsafeXmlError, secure_iterparse

    if _is_file(source):
        source.seek(0)  # every pass reads the same open file from its start
    else:
        source = str(source)
    try:
        yield from secure_iterparse(source, events=("start", "end"))
    except UnsafeXmlError as exc:
        what = (
            "a DTD or entity declaration is refused in a receipt"
            if str(exc) == DOCTYPE_REFUSED
            else "a processing instruction is refused in a receipt"
        )
        raise ReceiptError(f"{name}: {what}") from None


class Receipt:
    """One accusé de traitement: its header, then its results or errors, streamed."""

    def __init__(
        self,
        path: str | Path | IO[bytes],
        *,
        max_bytes: int = MAX_RECEIPT_BYTES,
        name: str | None = None,
    ):
        """``path``: a file name, or an open seekable binary file (then ``name`` names it
        in messages): the inbox hands over the descriptor it checked."""
        self._source = path if _is_file(path) else Path(path)
        self.path = None if _is_file(path) else Path(path)
        self.name = name or (self.path.name if self.path is not None else "receipt")
        self.max_bytes = max_bytes
        _check_size(self._source, self.name, max_bytes)
        self.header = self._read_header()

    def _syntax(self, exc) -> ReceiptError:
        return ReceiptError(
            f"{self.name}: not a well-formed receipt (truncated or damaged): {exc.msg}"
        )

    def _read_header(self) -> ReceiptHeader:
        from lxml import etree

        values: dict[str, str | None] = {}
        kind = "empty"
        depth = 0
        try:
            for event, el in _events(self._source, self.name):
                name = _local(el.tag)
                if event == "start":
                    depth += 1
                    if depth == 1 and name != "rapport":
                        raise ReceiptError(
                            f"{self.name}: root element <{name}> is not a CDC <rapport>"
                        )
                    if depth == 2 and name in ("passagesko", "passagesok"):
                        kind = "results"
                    elif depth == 2 and name == "erreurs":
                        kind = "xsd_errors"
                    continue
                depth -= 1
                if depth == 1 and name in ("nomfichier", "idflux", "idtraitement", "iddemande"):
                    values[name] = (el.text or "").strip() or None
                if depth >= 1:
                    _release(el)
        except etree.XMLSyntaxError as exc:
            raise self._syntax(exc) from None
        return ReceiptHeader(
            file_name=values.get("nomfichier"),
            id_flux=values.get("idflux"),
            processing_id=values.get("idtraitement") or values.get("iddemande"),
            kind=kind,
        )

    def results(self) -> Iterator[PassageResult]:
        """Every per-passage line, KO section then OK section, in file order."""
        from lxml import etree

        section = None
        technical_id = message = None
        try:
            for event, el in _events(self._source, self.name):
                name = _local(el.tag)
                if event == "start":
                    if name in ("passagesko", "passagesok"):
                        section = name
                    elif name == "passage":
                        technical_id = message = None
                    continue
                if section == "passagesko":
                    if name == "idtechnique":
                        technical_id = (el.text or "").strip()
                    elif name == "messageerreur":
                        message = (el.text or "").strip()
                    elif name == "passage":
                        if technical_id:
                            yield PassageResult(technical_id, classify(message or ""), message)
                        _release(el)
                    elif name == "passagesko":
                        section = None
                elif section == "passagesok":
                    if name == "idtechnique":
                        tid = (el.text or "").strip()
                        if tid:
                            yield PassageResult(tid, Reason.ACCEPTED, None)
                        _release(el)
                    elif name == "passagesok":
                        section = None
        except etree.XMLSyntaxError as exc:
            raise self._syntax(exc) from None

    def xsd_errors(self) -> list[XsdError]:
        """The file-level errors of an XSD-rejected deposit (the CDC lists at most ~100)."""
        from lxml import etree

        out: list[XsdError] = []
        try:
            for event, el in _events(self._source, self.name):
                if event != "end" or _local(el.tag) != "erreur":
                    continue
                fields = {_local(c.tag): (c.text or "").strip() for c in el}
                out.append(
                    XsdError(
                        fields.get("type") or None,
                        fields.get("message", ""),
                        _as_int(fields.get("ligne")),
                        _as_int(fields.get("colonne")),
                    )
                )
                _release(el)
        except etree.XMLSyntaxError as exc:
            raise self._syntax(exc) from None
        return out


def _as_int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None
