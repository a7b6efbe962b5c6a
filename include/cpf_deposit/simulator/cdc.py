"""Play the Caisse des Dépôts for demos and tests: XSD check, SNGI funnel, receipts.

FOR DEMOS AND TESTS ONLY. It mimics what the CDC documents (guide de lecture de
l'accusé de traitement V3): an XSD-rejected file gets an error receipt; otherwise each
passage goes through the identification funnel against a civil-status register:

1. birth name + first name + sex + birth year ("critères obligatoires");
2. if several persons remain: day and month of birth;
3. if still several: birthplace code and the other first names;
4. still several: "Plusieurs titulaires ont été identifiés".

Accents are ignored and punctuation is significant (``loose=True`` plays the announced
change: punctuation of the birth name ignored). An idTechnique the simulated CDC has
already accepted for the same émetteur answers "existe déjà en base". The receipt is
shaped exactly like a real one and dropped into the inbox under the real naming.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cpf_deposit.model import Passage

MSG_STAGE_1 = "Aucun titulaire ne correspond aux critères obligatoires"
MSG_STAGE_2 = (
    "Aucun titulaire ne correspond aux critères obligatoires enrichis du jour et du mois "
    "de naissance"
)
MSG_STAGE_3 = "Aucun titulaire ne correspond aux critères de reconciliation"
MSG_SEVERAL = "Plusieurs titulaires ont été identifiés"


def msg_exists(bcr: str, tid: str) -> str:
    return (
        f"Le passage certification avec le bcr émetteur {bcr} et l'id technique partenaire "
        f"{tid} existe déjà en base"
    )


def msg_certification_ko(bcr: str, tid: str) -> str:
    return (
        f"Le statut de la certification avec le bcr émetteur {bcr}, l'id technique partenaire "
        f"{tid} et l'index 0 est KO"
    )


def msg_dates(bcr: str, tid: str) -> str:
    return (
        "La date de fin de validité est inférieure à date de début de validité pour le "
        f"passage certification avec le bcr émetteur {bcr} et l'id technique partenaire {tid}"
    )


_CERT_CODE = re.compile(r"(RNCP|RS)[0-9]+")


@dataclass(frozen=True, slots=True)
class Person:
    """What the funnel compares after stage 1 (the register holds no more)."""

    month: int | None
    day: int | None
    birthplace: str | None
    first_name_2: str | None
    first_name_3: str | None


@dataclass
class CivilRegister:
    """An in-memory index of a civil-status register, keyed on stage 1 of the funnel."""

    loose: bool = False
    index: dict[tuple, list[Person]] = field(default_factory=lambda: defaultdict(list))
    size: int = 0

    def _name(self, value: str | None) -> str | None:
        from cpf_deposit.quality.names import cdc_key, loose_key

        return loose_key(value) if self.loose else cdc_key(value)

    def add(self, birth_name, first_name, sex, year, month, day, birthplace, fn2=None, fn3=None):
        from cpf_deposit.quality.names import cdc_key

        key = (self._name(birth_name), cdc_key(first_name), sex, year)
        self.index[key].append(Person(month, day, birthplace, cdc_key(fn2), cdc_key(fn3)))
        self.size += 1

    @classmethod
    def from_sqlite(cls, path: str | Path, *, loose: bool = False) -> CivilRegister:
        """Load the demo register (table ``sngi_person``) written by ``demo-data``."""
        reg = cls(loose=loose)
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
        try:
            cur = conn.execute(
                "SELECT nom_naissance, prenom1, sexe, annee, mois, jour, code_lieu_naissance, "
                "prenom2, prenom3 FROM sngi_person"
            )
            while rows := cur.fetchmany(50_000):
                for row in rows:
                    reg.add(*row)
        finally:
            conn.close()
        return reg

    def identify(self, p: Passage) -> str | None:
        """None when exactly one holder is found, else the CDC's message."""
        from cpf_deposit.quality.names import cdc_key

        key = (self._name(p.birth_name), cdc_key(p.first_name_1), p.sex, p.birth_year)
        candidates = self.index.get(key, [])
        if not candidates:
            return MSG_STAGE_1
        if len(candidates) == 1:
            return None
        if p.birth_month is not None and p.birth_day is not None:
            candidates = [
                c for c in candidates if c.month == p.birth_month and c.day == p.birth_day
            ]
            if not candidates:
                return MSG_STAGE_2
            if len(candidates) == 1:
                return None
        narrowed = candidates
        if p.birth_insee_code is not None:
            narrowed = [c for c in narrowed if c.birthplace == p.birth_insee_code]
        for attr, value in (("first_name_2", p.first_name_2), ("first_name_3", p.first_name_3)):
            if value is not None:
                narrowed = [c for c in narrowed if getattr(c, attr) == cdc_key(value)]
        if not narrowed:
            return MSG_STAGE_3
        return None if len(narrowed) == 1 else MSG_SEVERAL


class CdcState:
    """What the simulated CDC has stored: accepted idTechniques per émetteur BCR."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path)
        self.conn.executescript(
            "CREATE TABLE IF NOT EXISTS accepted (emetteur TEXT NOT NULL, "
            "technical_id TEXT NOT NULL, PRIMARY KEY (emetteur, technical_id));"
            "CREATE TABLE IF NOT EXISTS processing (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "file_name TEXT NOT NULL, at TEXT NOT NULL);"
        )

    def known(self, emetteur: str, tid: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM accepted WHERE emetteur = ? AND technical_id = ?", (emetteur, tid)
        ).fetchone()
        return row is not None

    def accept(self, emetteur: str, ids: Iterable[str]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO accepted VALUES (?, ?)", ((emetteur, t) for t in ids)
        )

    def next_processing_id(self, file_name: str, now: dt.datetime) -> int:
        cur = self.conn.execute(
            "INSERT INTO processing (file_name, at) VALUES (?, ?)", (file_name, now.isoformat())
        )
        return 67000 + int(cur.lastrowid)

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


@dataclass
class Outcome:
    flux: Path
    receipt: Path
    accepted: int = 0
    rejected: int = 0
    xsd_errors: int = 0


def receipt_name(flux_name: str, day: dt.date) -> str:
    return f"Accusé de traitement_{flux_name}_{day.strftime('%Y%m%d')}.xml"


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _write_receipt(path: Path, body: list[str]) -> None:
    """Real receipts: XML declaration standalone="no", unqualified ``rapport``, 4 spaces."""
    text = (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        '<rapport xmlns:ns2="urn:cdc:cpf:pc5:rapport:schema">\n' + "".join(body) + "</rapport>"
    )
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def simulate(
    flux: Path,
    register: CivilRegister,
    inbox: Path,
    state: CdcState,
    *,
    xsd_path: Path | None = None,
    now: dt.datetime | None = None,
) -> Outcome:
    """Process one deposited flux file and write its accusé de traitement into ``inbox``."""
    from cpf_deposit.flux.reader import iter_flux
    from cpf_deposit.flux.validator import validate_file

    now = now or dt.datetime.now(dt.UTC)
    inbox.mkdir(parents=True, exist_ok=True)
    out = inbox / receipt_name(flux.name, now.date())
    processing = state.next_processing_id(flux.name, now)
    report = validate_file(flux, xsd_path)
    if not report.valid:
        errors = report.errors[:100]  # the CDC reports the first 100 errors
        body = [f"    <nomFichier>{_esc(flux.name)}</nomFichier>\n"]
        body.append(f"    <idDemande>{processing}</idDemande>\n    <erreurs>\n")
        for e in errors:
            body.append(
                "        <erreur>\n            <type>XSD</type>\n"
                f"            <message>{_esc(e.message)}</message>\n"
                f"            <ligne>{e.line or 0}</ligne>\n"
                f"            <colonne>{e.column or 0}</colonne>\n        </erreur>\n"
            )
        body.append("    </erreurs>\n")
        _write_receipt(out, body)
        state.commit()
        return Outcome(flux, out, xsd_errors=len(errors))

    ko: list[tuple[str, str]] = []
    ok: list[str] = []
    id_flux = emetteur = None
    for info, p in iter_flux(flux):
        id_flux, emetteur = info.id_flux, info.emetteur_id or ""
        tid = p.technical_id
        message = _judge(p, register, state, emetteur)
        if message is None:
            ok.append(tid)
        else:
            ko.append((tid, message))
    state.accept(emetteur or "", ok)
    body = [
        f"    <nomFichier>{_esc(flux.name)}</nomFichier>\n",
        f"    <idFlux>{_esc(id_flux or '')}</idFlux>\n",
        f"    <idTraitement>{processing}</idTraitement>\n",
    ]
    if ko:
        body.append("    <PassagesKO>\n")
        for tid, message in ko:
            body.append(
                "        <passage>\n"
                f"            <idTechnique>{_esc(tid)}</idTechnique>\n"
                f"            <messageErreur>{_esc(message)}</messageErreur>\n"
                "        </passage>\n"
            )
        body.append("    </PassagesKO>\n")
    if ok:
        body.append("    <PassagesOK>\n")
        body.extend(f"        <idTechnique>{_esc(t)}</idTechnique>\n" for t in ok)
        body.append("    </PassagesOK>\n")
    _write_receipt(out, body)
    state.commit()
    accepted_again = sum(1 for _, m in ko if "existe déjà en base" in m)
    return Outcome(flux, out, accepted=len(ok) + accepted_again, rejected=len(ko) - accepted_again)


def _judge(p: Passage, register: CivilRegister, state: CdcState, emetteur: str) -> str | None:
    tid = p.technical_id
    if state.known(emetteur, tid):
        return msg_exists(emetteur, tid)
    code_ok = _CERT_CODE.fullmatch(p.certification_code or "")
    if not code_ok or not (p.certification_code or "").startswith(p.certification_type or "?"):
        return msg_certification_ko(emetteur, tid)
    if p.valid_until is not None and p.valid_until < p.award_date:
        return msg_dates(emetteur, tid)
    if p.by_cpf_file:
        return None  # the simulator holds no CPF files: a file reference is taken as found
    return register.identify(p)
