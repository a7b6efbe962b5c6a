"""Stream canonical passages into CDC flux files (XSD 1.1.2), split by size and count.

Memory stays flat: each passage is checked (:func:`cpf_deposit.model.problems`),
serialised on its own line and written; nothing is held but the current line. A
passage the XSD could not hold is refused with its reasons and the rest is written.
Files are written under a temporary name, flushed to disk and renamed when complete,
so a crash never leaves a partial flux; they are created with mode 0600 (personal
data). With the same passages, ``id_flux`` values and ``moment``, the bytes are the
same.

Why not lxml's ``xmlfile`` for the passages: nested ``xf.element()`` contexts cost
about 100 µs per passage here (100 s per million holders). Every value is checked
against the XSD facets and XML 1.0 before it is written, and markup comes from fixed
templates, so escaping ``& < >`` is all that is left to do; the result is validated
by libxml2 against the XSD afterwards anyway (:mod:`cpf_deposit.flux.validator`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from cpf_deposit.model import Passage, Problem, problems
from cpf_deposit.progress import Progress

log = logging.getLogger(__name__)

NAMESPACE = "urn:cdc:cpf:pc5:schema:1.0.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
FILE_MODE = 0o600
PROGRESS_EVERY = 4096  # passages between two looks at the clock (the loop stays tight)


@dataclass(frozen=True)
class Header:
    """Blocks 2 and 3: who sends and for which certifier (one certifier per file)."""

    emetteur_id: str
    certificateur_id: str
    contract_id: str
    uai: str

    @classmethod
    def from_config(cls, config) -> Header:
        return cls(
            config.cdc.emetteur_id,
            config.cdc.certificateur_id,
            config.cdc.contract_id,
            config.uai,
        )


@dataclass(frozen=True)
class Refusal:
    """A passage the writer did not write, and why (no personal values)."""

    technical_id: str | None
    source_record_key: str | None
    problems: tuple[Problem, ...]

    def __str__(self) -> str:
        who = self.technical_id or self.source_record_key or "(no id)"
        return f"passage {who}: " + "; ".join(str(p) for p in self.problems)


@dataclass
class WrittenFile:
    path: Path
    id_flux: str
    horodatage: str
    passages: int = 0
    size: int = 0
    sha256: str = ""
    certifications: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "file": self.path.name,
            "id_flux": self.id_flux,
            "horodatage": self.horodatage,
            "passages": self.passages,
            "certifications": dict(self.certifications),
            "size": self.size,
            "sha256": self.sha256,
        }


@dataclass
class FluxBatch:
    files: list[WrittenFile] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    @property
    def passages(self) -> int:
        return sum(f.passages for f in self.files)


def format_horodatage(moment: dt.datetime, tz: ZoneInfo) -> str:
    """``YYYY-MM-DDTHH:MM:SS+HH:MM`` in ``tz``: 24-hour clock, real offset, no fraction, no Z."""
    if moment.tzinfo is None:
        raise ValueError("horodatage needs an aware datetime")
    local = moment.astimezone(tz).replace(microsecond=0)
    offset = local.strftime("%z")  # +0200
    return local.strftime("%Y-%m-%dT%H:%M:%S") + offset[:3] + ":" + offset[3:5]


def flux_file_name(uai: str, bcr: str, local_moment: dt.datetime) -> str:
    """``CPF_<UAI>_<BCR>_<YYYYMMDDHHMMSS>.xml`` (the convention of Apogée's treatment)."""
    return f"CPF_{uai}_{bcr}_{local_moment.strftime('%Y%m%d%H%M%S')}.xml"


# --------------------------------------------------------------------------------------
# Serialisation of one passage (one line)
# --------------------------------------------------------------------------------------


_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)


def _esc(s: str) -> str:
    """Element text: markup escaped; TAB, LF and CR as character references, so a
    parser reads the value back exactly and a passage stays on one line."""
    if "&" in s or "<" in s or ">" in s or "\t" in s or "\n" in s or "\r" in s:
        return s.translate(_ESCAPES)
    return s


def _opt(out: list[str], element: str, value: str | None) -> None:
    if value is not None:
        out.append(f"<cpf:{element}>{_esc(value)}</cpf:{element}>")


def _nil(out: list[str], element: str, value: str | None) -> None:
    if value is None:
        out.append(f'<cpf:{element} xsi:nil="true"/>')
    else:
        out.append(f"<cpf:{element}>{_esc(value)}</cpf:{element}>")


def _date(d: dt.date | None) -> str | None:
    return None if d is None else d.isoformat()


def _int(i: int | None) -> str | None:
    return None if i is None else str(i)


def render_passage(p: Passage) -> str:
    """The ``passageCertification`` element of a checked passage, on one line."""
    out: list[str] = ["<cpf:passageCertification>"]
    a = out.append
    a(f"<cpf:idTechnique>{_esc(p.technical_id)}</cpf:idTechnique>")
    _opt(out, "urlPreuve", p.proof_url)
    _opt(out, "libelleOption", p.option_label)
    a(f"<cpf:obtentionCertification>{p.obtention}</cpf:obtentionCertification>")
    a(f"<cpf:donneeCertifiee>{'true' if p.is_final else 'false'}</cpf:donneeCertifiee>")
    _opt(out, "dateDebutExamen", _date(p.exam_start))
    _opt(out, "dateFinExamen", _date(p.exam_end))
    _opt(out, "modalitePassageExamen", p.exam_mode)
    _opt(out, "codePostalCentreExamen", p.exam_postal_code)
    a(f"<cpf:dateDebutValidite>{p.award_date.isoformat()}</cpf:dateDebutValidite>")
    _nil(out, "dateFinValidite", _date(p.valid_until))
    if p.language_level is None:
        a("<cpf:presenceNiveauLangueEuro>false</cpf:presenceNiveauLangueEuro>")
    else:
        a("<cpf:presenceNiveauLangueEuro>true</cpf:presenceNiveauLangueEuro>")
        a(f"<cpf:niveauLangueEuropeen>{p.language_level}</cpf:niveauLangueEuropeen>")
    if p.digcomp_score is None and not p.digcomp_results:
        a("<cpf:presenceNiveauNumeriqueEuro>false</cpf:presenceNiveauNumeriqueEuro>")
    else:
        a("<cpf:presenceNiveauNumeriqueEuro>true</cpf:presenceNiveauNumeriqueEuro>")
        _render_digcomp(out, p)
    _nil(out, "scoring", p.scoring)
    _nil(out, "mentionValidee", p.mention)
    a("<cpf:modalitesInscription>")
    _nil(out, "modaliteAcces", p.access_mode)
    _opt(out, "voieAccessVAE", p.vae_route)
    _opt(out, "initiativeInscription", p.registration_initiative)
    _opt(out, "dateInscription", _date(p.registration_date))
    a("</cpf:modalitesInscription><cpf:identificationTitulaire>")
    if p.cpf_file_id is not None:
        a("<cpf:dossierFormation>")
        a(f"<cpf:idDossier>{_esc(p.cpf_file_id)}</cpf:idDossier>")
        a(f"<cpf:nomTitulaire>{_esc(p.cpf_holder_name)}</cpf:nomTitulaire>")  # type: ignore[arg-type]
        a(f"<cpf:prenom1Titulaire>{_esc(p.cpf_holder_first_name)}</cpf:prenom1Titulaire>")  # type: ignore[arg-type]
        a("</cpf:dossierFormation>")
    else:
        _render_titulaire(out, p)
    a("</cpf:identificationTitulaire>")
    _opt(out, "verbatim", p.verbatim)
    a("</cpf:passageCertification>\n")
    return "".join(out)


def _render_digcomp(out: list[str], p: Passage) -> None:
    out.append("<cpf:niveauNumeriqueEuropeen>")
    _opt(out, "scoreGeneral", _int(p.digcomp_score))
    if p.digcomp_results:
        out.append("<cpf:resultats>")
        for niveau, domain, competence in p.digcomp_results:
            out.append("<cpf:resultat>")
            _opt(out, "niveau", _int(niveau))
            _opt(out, "domaineCompetenceId", domain)
            _opt(out, "competenceId", competence)
            out.append("</cpf:resultat>")
        out.append("</cpf:resultats>")
    out.append("</cpf:niveauNumeriqueEuropeen>")


def _render_titulaire(out: list[str], p: Passage) -> None:
    a = out.append
    a(f"<cpf:titulaire><cpf:nomNaissance>{_esc(p.birth_name)}</cpf:nomNaissance>")  # type: ignore[arg-type]
    _nil(out, "nomUsage", p.usage_name)
    a(f"<cpf:prenom1>{_esc(p.first_name_1)}</cpf:prenom1>")  # type: ignore[arg-type]
    _opt(out, "prenom2", p.first_name_2)
    _opt(out, "prenom3", p.first_name_3)
    a(f"<cpf:anneeNaissance>{p.birth_year}</cpf:anneeNaissance>")
    _nil(out, "moisNaissance", _int(p.birth_month))
    _nil(out, "jourNaissance", _int(p.birth_day))
    a(f"<cpf:sexe>{p.sex}</cpf:sexe><cpf:codeCommuneNaissance>")
    if p.birth_insee_code is not None:
        a(
            "<cpf:codeInseeNaissance><cpf:codeInsee>"
            f"{_esc(p.birth_insee_code)}</cpf:codeInsee></cpf:codeInseeNaissance>"
        )
    else:
        a("<cpf:codePostalNaissance>")
        _nil(out, "codePostal", p.birth_postal_code)
        a("</cpf:codePostalNaissance>")
    a("</cpf:codeCommuneNaissance>")
    _opt(out, "libelleCommuneNaissance", p.birth_city_label)
    _opt(out, "codePaysNaissance", p.birth_country_code)
    _opt(out, "libellePaysNaissance", p.birth_country_label)
    _opt(out, "commentairesMEN", p.comments_men)
    a("</cpf:titulaire>")


def _render_header(header: Header, id_flux: str, horodatage: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<cpf:flux xmlns:cpf="{NAMESPACE}" xmlns:xsi="{XSI}">\n'
        f"<cpf:idFlux>{_esc(id_flux)}</cpf:idFlux>\n"
        f"<cpf:horodatage>{horodatage}</cpf:horodatage>\n"
        f"<cpf:emetteur><cpf:idClient>{_esc(header.emetteur_id)}</cpf:idClient>\n"
        "<cpf:certificateurs><cpf:certificateur>"
        f"<cpf:idClient>{_esc(header.certificateur_id)}</cpf:idClient>"
        f"<cpf:idContrat>{_esc(header.contract_id)}</cpf:idContrat>\n"
        "<cpf:certifications>\n"
    )


def _render_certification_open(key: tuple[str, str, str | None]) -> str:
    ctype, code, nature = key
    nature_xml = "" if nature is None else f"<cpf:natureDeposant>{nature}</cpf:natureDeposant>"
    return (
        f"<cpf:certification><cpf:type>{_esc(ctype)}</cpf:type>"
        f"<cpf:code>{_esc(code)}</cpf:code>{nature_xml}\n<cpf:passageCertifications>\n"
    )


_CERTIFICATION_CLOSE = "</cpf:passageCertifications></cpf:certification>\n"
_FOOTER = (
    "</cpf:certifications>\n</cpf:certificateur></cpf:certificateurs>\n</cpf:emetteur>\n"
    "</cpf:flux>\n"
)
_CLOSE_BYTES = len((_CERTIFICATION_CLOSE + _FOOTER).encode())


# --------------------------------------------------------------------------------------
# The streaming, splitting writer
# --------------------------------------------------------------------------------------


class _OpenFile:
    """One flux file being written under a temporary name."""

    def __init__(self, final: Path, header_xml: str, written: WrittenFile):
        self.final = final
        self.tmp = final.with_name(f".{final.name}.part")
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        self.fh = os.fdopen(fd, "wb", buffering=1 << 20)
        self.hash = hashlib.sha256()
        self.written = written
        self.cert_key: tuple[str, str, str | None] | None = None
        self.ids: set[str] = set()  # idTechnique must be unique in a file
        self.write(header_xml.encode())

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.hash.update(data)
        self.written.size += len(data)

    def close(self) -> WrittenFile:
        if self.cert_key is not None:
            self.write(_CERTIFICATION_CLOSE.encode())
        self.write(_FOOTER.encode())
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.final)
        self.written.sha256 = self.hash.hexdigest()
        return self.written

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def _duplicate(p: Passage) -> Refusal:
    problem = Problem(
        "technical_id", "idTechnique", "conflict", "already used by another passage of the file"
    )
    return Refusal(p.technical_id, p.source_record_key, (problem,))


def write_flux(
    passages: Iterable[Passage],
    header: Header,
    out_dir: Path,
    *,
    tz: ZoneInfo,
    moment: dt.datetime | None = None,
    max_bytes: int = 200_000_000,
    max_passages: int = 200_000,
    id_flux_factory: Callable[[], str] | None = None,
    reserve_name: Callable[[str], bool] | None = None,
    on_passage: Callable[[Passage, WrittenFile], None] | None = None,
    on_file: Callable[[WrittenFile], None] | None = None,
) -> FluxBatch:
    """Write every writable passage into as many valid files as the limits require.

    Passages are grouped into certification blocks in input order: sort them by
    certification first (extraction does) to get one block per certification.
    ``on_passage`` sees each written passage with its file (for the ledger);
    ``on_file`` sees each file once it is complete (e.g. to validate it meanwhile).
    ``reserve_name`` claims a file name atomically (False: taken elsewhere), for writers
    running side by side, such as the chunks of one run built in parallel tasks.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    start = (moment or dt.datetime.now(dt.UTC)).astimezone(tz).replace(microsecond=0)
    new_id = id_flux_factory or (lambda: str(uuid.uuid4()))
    batch = FluxBatch()
    used_names: set[str] = set()
    current: _OpenFile | None = None

    def open_next() -> _OpenFile:
        local = start + dt.timedelta(seconds=len(batch.files))
        name = flux_file_name(header.uai, header.certificateur_id, local)
        # Unique even for two files written in the same second: take the next free second.
        while (
            name in used_names
            or (out_dir / name).exists()
            or (reserve_name is not None and not reserve_name(name))
        ):
            local += dt.timedelta(seconds=1)
            name = flux_file_name(header.uai, header.certificateur_id, local)
        used_names.add(name)
        id_flux = new_id()
        horodatage = format_horodatage(local, tz)
        wf = WrittenFile(out_dir / name, id_flux, horodatage)
        return _OpenFile(out_dir / name, _render_header(header, id_flux, horodatage), wf)

    def finish(f: _OpenFile) -> None:
        done = f.close()
        batch.files.append(done)
        if on_file:
            on_file(done)

    uncounted = 0  # passages not yet told to the progress line
    with Progress(log, "écriture du flux", unit="passages") as progress:
        try:
            for passage in passages:
                uncounted += 1
                if uncounted >= PROGRESS_EVERY:
                    progress.advance(uncounted)
                    uncounted = 0
                found = problems(passage)
                if found:
                    batch.refused.append(
                        Refusal(passage.technical_id, passage.source_record_key, tuple(found))
                    )
                    continue
                if current is not None and passage.technical_id in current.ids:
                    batch.refused.append(_duplicate(passage))
                    continue
                line = render_passage(passage).encode()
                key = passage.certification_key
                opening = (
                    b""
                    if current is not None and current.cert_key == key
                    else (_render_certification_open(key).encode())
                )
                if current is not None:
                    closing = len(_CERTIFICATION_CLOSE) if opening and current.cert_key else 0
                    projected = current.written.size + closing + len(opening) + len(line)
                    full = current.written.passages >= max_passages
                    if full or projected + _CLOSE_BYTES > max_bytes:
                        finish(current)
                        current = None
                if current is None:
                    current = open_next()
                    opening = _render_certification_open(key).encode()
                    if current.written.size + len(opening) + len(line) + _CLOSE_BYTES > max_bytes:
                        current.abort()
                        raise ValueError(f"max_bytes={max_bytes} cannot hold even one passage")
                elif opening:
                    current.write(_CERTIFICATION_CLOSE.encode())
                if opening:
                    current.write(opening)
                    current.cert_key = key
                current.ids.add(passage.technical_id)
                current.write(line)
                wf = current.written
                wf.passages += 1
                code = key[1]
                wf.certifications[code] = wf.certifications.get(code, 0) + 1
                if on_passage:
                    on_passage(passage, wf)
            if current is not None:
                finish(current)
                current = None
        except BaseException:
            if current is not None:
                current.abort()
            raise
        finally:
            progress.advance(uncounted)
    return batch
