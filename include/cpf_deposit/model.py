"""The canonical passage: one holder x one certification award.

Every stage reads and writes this model: extraction produces it, the identity gate
checks it, the ledger hashes it, the writer serialises it and the flux reader parses
it back. ``FIELDS`` documents each attribute with the XSD element it becomes and the
facets the XSD puts on it; :func:`problems` refuses, field by field, any value the
XSD 1.1.2 could not hold, so a refused passage is named with its field and the rest
of a batch is still written. Nothing here alters a value.

Derived, never stored: ``presenceNiveauLangueEuro`` (a language level is set),
``presenceNiveauNumeriqueEuro`` (DigComp data is set) and ``codePaysNaissance`` (the
last three digits of a ``99xxx`` INSEE birthplace code). Deriving them makes the
co-constraints of the dictionary true by construction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """How the XSD treats an element when the value is unknown."""

    REQUIRED = "required"  # must carry a value
    NILLABLE = "nillable"  # always written; xsi:nil="true" when unknown
    OPTIONAL = "optional"  # omitted when unknown, never written empty
    INTERNAL = "internal"  # provenance, never written to the flux


class Block(StrEnum):
    CERTIFICATION = "4"
    PASSAGE = "5"
    DIGCOMP = "6"
    INSCRIPTION = "7"
    TITULAIRE = "8"
    DOSSIER = "9"
    SOURCE = "source"


OBTENTION = frozenset({"PAR_ADMISSION", "PAR_SCORING"})
NATURE_DEPOSANT = frozenset({"CERTIFICATEUR", "TIERS_CONFIANCE"})
MODALITE_PASSAGE = frozenset({"A_DISTANCE", "EN_PRESENTIEL", "MIXTE"})
NIVEAU_LANGUE = frozenset({"A1", "A2", "B1", "B2", "C1", "C2", "INSUFFISANT"})
MENTION = frozenset(
    {
        "SANS_MENTION",
        "MENTION_ASSEZ_BIEN",
        "MENTION_BIEN",
        "MENTION_TRES_BIEN",
        "MENTION_TRES_BIEN_AVEC_FELICITATIONS_DU_JURY",
    }
)
MODALITE_ACCES = frozenset(
    {
        "FORMATION_INITIALE_HORS_APPRENTISSAGE",
        "FORMATION_INITIALE_APPRENTISSAGE",
        "FORMATION_CONTINUE_HORS_CONTRAT_DE_PROFESSIONNALISATION",
        "FORMATION_CONTINUE_CONTRAT_DE_PROFESSIONNALISATION",
        "VAE",
        "EQUIVALENCE_DIPLOME_ETRANGER",
        "CANDIDAT_LIBRE",
    }
)
VOIE_VAE = frozenset({"CONGES_VAE", "VAE_CLASSIQUE"})
INITIATIVE = frozenset({"CERTIFIE", "OF", "POLE_EMPLOI", "EMPLOYEUR", "AUTRE"})
SEXE = frozenset({"M", "F"})


@dataclass(frozen=True, slots=True)
class Field:
    """One attribute of the passage and the XSD element it becomes."""

    name: str
    element: str
    ref: str  # id in the CDC data dictionary
    kind: Kind
    type: str  # text | date | bool | int | enum | digcomp
    block: Block
    min_len: int = 1
    max_len: int | None = None
    choices: frozenset[str] | None = None
    low: int | None = None
    high: int | None = None
    doc: str = ""


def _text(name, element, ref, kind, block, max_len, doc, min_len=1):
    return Field(name, element, ref, kind, "text", block, min_len, max_len, doc=doc)


def _enum(name, element, ref, kind, block, choices, doc):
    return Field(name, element, ref, kind, "enum", block, choices=choices, doc=doc)


def _date(name, element, ref, kind, block, doc):
    return Field(name, element, ref, kind, "date", block, doc=doc)


def _int(name, element, ref, kind, block, low, high, doc):
    return Field(name, element, ref, kind, "int", block, low=low, high=high, doc=doc)


REQ, NIL, OPT, INT = Kind.REQUIRED, Kind.NILLABLE, Kind.OPTIONAL, Kind.INTERNAL
B = Block

FIELDS: tuple[Field, ...] = (
    # Block 4: the certification the passage belongs to (grouped per file).
    _text("certification_type", "type", "4.1", REQ, B.CERTIFICATION, 255, "RNCP or RS."),
    _text(
        "certification_code",
        "code",
        "4.2",
        REQ,
        B.CERTIFICATION,
        100,
        "France compétences code with its prefix: RNCP34567, RS5875.",
    ),
    _enum(
        "nature_deposant",
        "natureDeposant",
        "4.3",
        OPT,
        B.CERTIFICATION,
        NATURE_DEPOSANT,
        "Who registered the certification with France compétences.",
    ),
    # Block 5: the award.
    _text(
        "technical_id",
        "idTechnique",
        "5.1",
        REQ,
        B.PASSAGE,
        255,
        "Stable id of the passage for the émetteur; never reused, never personal data.",
    ),
    _text("proof_url", "urlPreuve", "5.2", OPT, B.PASSAGE, 255, "Durable link to the proof."),
    _text("option_label", "libelleOption", "5.3", OPT, B.PASSAGE, 255, "Option or speciality."),
    _enum(
        "obtention",
        "obtentionCertification",
        "5.4",
        REQ,
        B.PASSAGE,
        OBTENTION,
        "PAR_ADMISSION for a jury decision (university diplomas), PAR_SCORING for a score.",
    ),
    Field(
        "is_final",
        "donneeCertifiee",
        "5.5",
        REQ,
        "bool",
        B.PASSAGE,
        doc="true for a final result, false while appeals are open.",
    ),
    _date("exam_start", "dateDebutExamen", "5.6", OPT, B.PASSAGE, "Jury or exam start date."),
    _date("exam_end", "dateFinExamen", "5.7", OPT, B.PASSAGE, "Exam end date."),
    _enum(
        "exam_mode",
        "modalitePassageExamen",
        "5.8",
        OPT,
        B.PASSAGE,
        MODALITE_PASSAGE,
        "A_DISTANCE, EN_PRESENTIEL or MIXTE.",
    ),
    _text(
        "exam_postal_code",
        "codePostalCentreExamen",
        "5.9",
        OPT,
        B.PASSAGE,
        9,
        "Postal code of the exam centre.",
    ),
    _date("award_date", "dateDebutValidite", "5.10", REQ, B.PASSAGE, "Award date (parchemin)."),
    _date("valid_until", "dateFinValidite", "5.11", NIL, B.PASSAGE, "End of validity, if any."),
    _enum(
        "language_level",
        "niveauLangueEuropeen",
        "5.13",
        OPT,
        B.PASSAGE,
        NIVEAU_LANGUE,
        "CEFR level; presenceNiveauLangueEuro (5.12) is true exactly when it is set.",
    ),
    _int(
        "digcomp_score",
        "scoreGeneral",
        "6.1",
        OPT,
        B.DIGCOMP,
        1,
        1000,
        "DigComp overall score; block 6 and presenceNiveauNumeriqueEuro (5.14) follow it.",
    ),
    Field(
        "digcomp_results",
        "resultats",
        "6.2-6.4",
        OPT,
        "digcomp",
        B.DIGCOMP,
        doc="Tuple of (niveau 1-8, domaineCompetenceId, competenceId), each part optional.",
    ),
    _text("scoring", "scoring", "5.15", NIL, B.PASSAGE, 255, "Score or marking basis."),
    _enum("mention", "mentionValidee", "5.16", NIL, B.PASSAGE, MENTION, "Honours, if any."),
    _enum(
        "access_mode",
        "modaliteAcces",
        "7.1",
        NIL,
        B.INSCRIPTION,
        MODALITE_ACCES,
        "Access route (initial, apprenticeship, continuing, VAE...).",
    ),
    _enum("vae_route", "voieAccessVAE", "7.2", OPT, B.INSCRIPTION, VOIE_VAE, "VAE route."),
    _enum(
        "registration_initiative",
        "initiativeInscription",
        "7.3",
        OPT,
        B.INSCRIPTION,
        INITIATIVE,
        "Who registered the candidate.",
    ),
    _date("registration_date", "dateInscription", "7.4", OPT, B.INSCRIPTION, "Registration."),
    _text("verbatim", "verbatim", "5.17", OPT, B.PASSAGE, 255, "Free additional information."),
    # Block 8: the holder by civil status (used for SNGI matching).
    _text("birth_name", "nomNaissance", "8.1", REQ, B.TITULAIRE, 60, "Birth name, as registered."),
    _text("usage_name", "nomUsage", "8.2", NIL, B.TITULAIRE, 60, "Usage or married name."),
    _text("first_name_1", "prenom1", "8.3", REQ, B.TITULAIRE, 60, "First civil-status name."),
    _text("first_name_2", "prenom2", "8.4", OPT, B.TITULAIRE, 60, "Second civil-status name."),
    _text("first_name_3", "prenom3", "8.5", OPT, B.TITULAIRE, 60, "Third civil-status name."),
    _int("birth_year", "anneeNaissance", "8.6", REQ, B.TITULAIRE, 1900, 2099, "Year of birth."),
    _int("birth_month", "moisNaissance", "8.7", NIL, B.TITULAIRE, 1, 12, "Month of birth."),
    _int("birth_day", "jourNaissance", "8.8", NIL, B.TITULAIRE, 1, 31, "Day of birth."),
    _enum("sex", "sexe", "8.9", REQ, B.TITULAIRE, SEXE, "Civil-status sex, M or F."),
    Field(
        "birth_insee_code",
        "codeInsee",
        "8.10",
        OPT,
        "text",
        B.TITULAIRE,
        5,
        5,
        doc="INSEE commune code (2A004 allowed) or 99xxx country code for the foreign-born; "
        "when unset the postal branch is written.",
    ),
    _text(
        "birth_postal_code",
        "codePostal",
        "8.11",
        OPT,
        B.TITULAIRE,
        9,
        "Postal code of the birthplace, only without an INSEE code; nil when neither is known.",
    ),
    _text(
        "birth_city_label",
        "libelleCommuneNaissance",
        "8.12",
        OPT,
        B.TITULAIRE,
        60,
        "Birth commune or city label.",
    ),
    _text(
        "birth_country_label",
        "libellePaysNaissance",
        "8.14",
        OPT,
        B.TITULAIRE,
        60,
        "Birth country label (codePaysNaissance, 8.13, is derived from the 99xxx code).",
    ),
    _text("comments_men", "commentairesMEN", "-", OPT, B.TITULAIRE, 250, "Reserved for the MEN."),
    # Block 9: the holder by CPF file, only when the certifier holds the file number.
    _text("cpf_file_id", "idDossier", "9.1", REQ, B.DOSSIER, 13, "CPF file number."),
    _text("cpf_holder_name", "nomTitulaire", "9.2", REQ, B.DOSSIER, 30, "Name in the CPF file."),
    _text(
        "cpf_holder_first_name",
        "prenom1Titulaire",
        "9.3",
        REQ,
        B.DOSSIER,
        20,
        "First name in the CPF file.",
    ),
    # Provenance, kept for the ledger and the worklists; never written to the flux.
    _text("source_system", "-", "-", INT, B.SOURCE, None, "APOGEE, GEODE, PEGASE or DEMO."),
    _text("source_record_key", "-", "-", INT, B.SOURCE, None, "Key of the award in the source."),
)

FIELD_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

DOSSIER_FIELDS = ("cpf_file_id", "cpf_holder_name", "cpf_holder_first_name")

DigCompResult = tuple[int | None, str | None, str | None]


@dataclass(slots=True)
class Passage:
    """One holder x certification award, as the CDC flux carries it (blocks 4 to 9).

    Treat it as immutable (derive a changed copy with ``dataclasses.replace``). It is
    not declared frozen because frozen dataclasses construct about 8 times slower, and
    a run builds one per holder.
    """

    certification_type: str
    certification_code: str
    technical_id: str
    award_date: dt.date
    obtention: str = "PAR_ADMISSION"
    is_final: bool = True
    nature_deposant: str | None = None
    proof_url: str | None = None
    option_label: str | None = None
    exam_start: dt.date | None = None
    exam_end: dt.date | None = None
    exam_mode: str | None = None
    exam_postal_code: str | None = None
    valid_until: dt.date | None = None
    language_level: str | None = None
    digcomp_score: int | None = None
    digcomp_results: tuple[DigCompResult, ...] = ()
    scoring: str | None = None
    mention: str | None = None
    access_mode: str | None = None
    vae_route: str | None = None
    registration_initiative: str | None = None
    registration_date: dt.date | None = None
    verbatim: str | None = None
    birth_name: str | None = None
    usage_name: str | None = None
    first_name_1: str | None = None
    first_name_2: str | None = None
    first_name_3: str | None = None
    birth_year: int | None = None
    birth_month: int | None = None
    birth_day: int | None = None
    sex: str | None = None
    birth_insee_code: str | None = None
    birth_postal_code: str | None = None
    birth_city_label: str | None = None
    birth_country_label: str | None = None
    comments_men: str | None = None
    cpf_file_id: str | None = None
    cpf_holder_name: str | None = None
    cpf_holder_first_name: str | None = None
    source_system: str | None = None
    source_record_key: str | None = None

    @property
    def by_cpf_file(self) -> bool:
        """Block 9 (CPF file number) rather than block 8 (civil status)."""
        return self.cpf_file_id is not None

    @property
    def has_digcomp(self) -> bool:
        return self.digcomp_score is not None or bool(self.digcomp_results)

    @property
    def birth_country_code(self) -> str | None:
        """codePaysNaissance (8.13): written exactly for a 99xxx INSEE code."""
        code = self.birth_insee_code
        return code[2:] if code is not None and code.startswith("99") else None

    @property
    def certification_key(self) -> tuple[str, str, str | None]:
        """The certification block a passage goes in."""
        return (self.certification_type, self.certification_code, self.nature_deposant)

    def to_record(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in FIELDS}


PASSAGE_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Passage))
assert set(PASSAGE_FIELD_NAMES) == set(FIELD_BY_NAME), "FIELDS and Passage disagree"


# --------------------------------------------------------------------------------------
# Refusing what the XSD cannot hold
# --------------------------------------------------------------------------------------

# Characters XML 1.0 forbids (controls, lone surrogates, U+FFFE/U+FFFF). TAB, LF and
# CR are legal in the XSD's strings and the CDC accepts them, so they are never refused:
# the writer escapes them as character references, which keeps each value intact (a
# parser would normalise a raw CR) and each passage on one line. The gate warns (R05B).
FORBIDDEN_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a passage cannot be written. Never carries the value (personal data)."""

    field: str
    element: str
    code: str  # missing | too_short | too_long | bad_length | forbidden_char | not_allowed
    #          | out_of_range | bad_type | conflict
    message: str

    def __str__(self) -> str:
        return f"{self.field} ({self.element}): {self.message}"


def _check_text(f: Field, value: object) -> Problem | None:
    if not isinstance(value, str):
        return Problem(f.name, f.element, "bad_type", f"expected text, got {type(value).__name__}")
    n = len(value)
    if f.min_len == f.max_len and n != f.max_len:
        return Problem(
            f.name, f.element, "bad_length", f"has {n} characters; exactly {f.max_len} expected"
        )
    if n < f.min_len:
        return Problem(f.name, f.element, "too_short", "is empty; omit it or give a value")
    if f.max_len is not None and n > f.max_len:
        return Problem(
            f.name,
            f.element,
            "too_long",
            f"has {n} characters; the XSD allows at most {f.max_len} (never truncated)",
        )
    m = FORBIDDEN_CHARS.search(value)
    if m:
        return Problem(
            f.name,
            f.element,
            "forbidden_char",
            f"holds the character U+{ord(m.group()):04X} at position {m.start() + 1}, "
            "which XML 1.0 or the flux cannot carry",
        )
    return None


def _check_value(f: Field, value: object) -> Problem | None:
    if f.type == "text":
        return _check_text(f, value)
    if f.type == "enum":
        if value not in f.choices:  # type: ignore[operator]
            allowed = ", ".join(sorted(f.choices))  # type: ignore[arg-type]
            return Problem(f.name, f.element, "not_allowed", f"is not one of: {allowed}")
        return None
    if f.type == "date":
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            return Problem(f.name, f.element, "bad_type", "expected a calendar date")
        if not 1900 <= value.year <= 2099:
            return Problem(f.name, f.element, "out_of_range", "year outside 1900-2099")
        return None
    if f.type == "bool":
        if not isinstance(value, bool):
            return Problem(f.name, f.element, "bad_type", "expected true or false")
        return None
    if f.type == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            return Problem(f.name, f.element, "bad_type", "expected a whole number")
        if not f.low <= value <= f.high:  # type: ignore[operator]
            return Problem(f.name, f.element, "out_of_range", f"is outside {f.low}-{f.high}")
        return None
    if f.type == "digcomp":
        return _check_digcomp(f, value)
    raise AssertionError(f.type)


def _check_digcomp(f: Field, value: object) -> Problem | None:
    if not isinstance(value, tuple):
        return Problem(f.name, f.element, "bad_type", "expected a tuple of results")
    for i, item in enumerate(value, 1):
        if not (isinstance(item, tuple) and len(item) == 3):
            return Problem(f.name, f.element, "bad_type", f"result {i} is not (niveau, dom, comp)")
        niveau, domain, competence = item
        if niveau is not None and (
            not isinstance(niveau, int) or isinstance(niveau, bool) or not 1 <= niveau <= 8
        ):
            return Problem(f.name, "niveau", "out_of_range", f"result {i}: niveau outside 1-8")
        for part, element in ((domain, "domaineCompetenceId"), (competence, "competenceId")):
            if part is not None and (not isinstance(part, str) or len(part) != 1):
                return Problem(f.name, element, "bad_length", f"result {i}: one character")
            if part is not None and FORBIDDEN_CHARS.search(part):
                return Problem(f.name, element, "forbidden_char", f"result {i}: bad character")
    return None


def problems(p: Passage) -> list[Problem]:
    """Every reason the XSD would refuse this passage, field by field (empty: writable)."""
    if _writable(p):
        return []
    return _all_problems(p)


def _all_problems(p: Passage) -> list[Problem]:
    """The precise, slower path: one Problem per faulty field."""
    found: list[Problem] = []
    by_file = p.cpf_file_id is not None
    for f in FIELDS:
        if f.kind is Kind.INTERNAL:
            continue
        value = getattr(p, f.name)
        if value is None or (f.type == "digcomp" and value == ()):
            if f.kind is Kind.REQUIRED and _in_branch(f, by_file):
                found.append(Problem(f.name, f.element, "missing", "is required"))
            continue
        problem = _check_value(f, value)
        if problem:
            found.append(problem)
    found.extend(_identity_conflicts(p, by_file))
    found.extend(_date_conflicts(p, {f.field for f in found}))
    return found


def _date_conflicts(p: Passage, faulty: set[str]) -> list[Problem]:
    """Date orders the XSD cannot see but the CDC rejects (written or not, never both)."""
    out = []
    pairs = (
        ("award_date", "valid_until", "dateFinValidite", "is before dateDebutValidite"),
        ("exam_start", "exam_end", "dateFinExamen", "is before dateDebutExamen"),
    )
    for start, end, element, message in pairs:
        a, b = getattr(p, start), getattr(p, end)
        if a is not None and b is not None and not faulty & {start, end} and b < a:
            out.append(Problem(end, element, "conflict", message))
    return out


def _in_branch(f: Field, by_file: bool) -> bool:
    """Block 8 is required for civil-status passages, block 9 for CPF-file ones."""
    if f.block is Block.TITULAIRE:
        return not by_file
    if f.block is Block.DOSSIER:
        return by_file
    return True


def _identity_conflicts(p: Passage, by_file: bool) -> list[Problem]:
    if by_file:
        stray = [
            f.name for f in FIELDS if f.block is Block.TITULAIRE and getattr(p, f.name) is not None
        ]
        if stray:
            return [
                Problem(
                    "cpf_file_id",
                    "identificationTitulaire",
                    "conflict",
                    "a passage identifies its holder by civil status or by CPF file, not both "
                    f"(also set: {', '.join(stray)})",
                )
            ]
        return []
    problems_: list[Problem] = []
    stray = [n for n in DOSSIER_FIELDS[1:] if getattr(p, n) is not None]
    if stray:
        problems_.append(
            Problem(
                stray[0],
                "dossierFormation",
                "conflict",
                "CPF file holder fields need cpf_file_id (block 9)",
            )
        )
    if p.birth_insee_code is not None and p.birth_postal_code is not None:
        problems_.append(
            Problem(
                "birth_postal_code",
                "codePostal",
                "conflict",
                "the INSEE and postal birthplace branches are exclusive; keep the INSEE code",
            )
        )
    return problems_


# --------------------------------------------------------------------------------------
# Fast path: at a million passages per run, checking field by field through the table
# costs more than writing the XML. The same table is compiled once into straight-line
# code that only answers "writable or not"; :func:`_all_problems` explains a "not".
# tests/test_model.py proves both paths agree.
# --------------------------------------------------------------------------------------


def _compile_writable():
    lines = ["def _writable(p):", "    by_file = p.cpf_file_id is not None", "    texts = []"]
    env: dict[str, Any] = {"_dt": dt, "_FORBIDDEN": FORBIDDEN_CHARS, "_Passage": Passage}
    for f in FIELDS:
        if f.kind is Kind.INTERNAL:
            continue
        v = f"p.{f.name}"
        required = f.kind is Kind.REQUIRED
        if f.block is Block.TITULAIRE and required:
            missing = "    if not by_file: return False"
        elif f.block is Block.DOSSIER and required:
            missing = "    if by_file: return False"
        else:
            missing = "    return False" if required else "    pass"
        if f.type == "digcomp":
            lines += [f"if {v} != ():", "    return False"]  # rare: take the precise path
            continue
        lines.append(f"if {v} is None:")
        lines.append(missing)
        lines.append("else:")
        if f.type == "text":
            hi = f.max_len if f.max_len is not None else 10**9
            lines += [
                f"    if type({v}) is not str or not {f.min_len} <= len({v}) <= {hi}: return False",
                f"    texts.append({v})",
            ]
        elif f.type == "enum":
            env[f"_C_{f.name}"] = f.choices
            lines.append(f"    if {v} not in _C_{f.name}: return False")
        elif f.type == "date":
            lines.append(
                f"    if type({v}) is not _dt.date or not 1900 <= {v}.year <= 2099: return False"
            )
        elif f.type == "bool":
            lines.append(f"    if type({v}) is not bool: return False")
        elif f.type == "int":
            lines.append(
                f"    if type({v}) is not int or not {f.low} <= {v} <= {f.high}: return False"
            )
    lines += [
        "if by_file and (p.birth_name is not None or p.first_name_1 is not None",
        "        or p.birth_year is not None or p.sex is not None): return False",
        "if not by_file and (p.cpf_holder_name is not None",
        "        or p.cpf_holder_first_name is not None): return False",
        "if by_file and any(getattr(p, n) is not None for n in _TIT_OPTIONAL): return False",
        "if p.birth_insee_code is not None and p.birth_postal_code is not None: return False",
        "if p.valid_until is not None and p.valid_until < p.award_date: return False",
        "if p.exam_start is not None and p.exam_end is not None and p.exam_end < p.exam_start:",
        "    return False",
        "return _FORBIDDEN.search(''.join(texts)) is None",
    ]
    env["_TIT_OPTIONAL"] = tuple(
        f.name for f in FIELDS if f.block is Block.TITULAIRE and f.kind is not Kind.REQUIRED
    )
    body = "\n".join(lines[:3] + ["    " + line for line in lines[3:]])
    exec(compile(body, "<cpf_deposit.model._writable>", "exec"), env)
    return env["_writable"]


_writable = _compile_writable()


def fields_markdown() -> str:
    """The field table as Markdown (docs/passage-model.md is generated from it)."""
    rows = [
        "| attribute | XSD element | dictionary | when unknown | type and facets | meaning |",
        "|---|---|---|---|---|---|",
    ]
    unknown = {
        Kind.REQUIRED: "refused (required)",
        Kind.NILLABLE: 'written `xsi:nil="true"`',
        Kind.OPTIONAL: "omitted",
        Kind.INTERNAL: "(not in the flux)",
    }
    for f in FIELDS:
        if f.type == "text" and f.max_len is not None:
            facets = (
                f"text, exactly {f.max_len}"
                if f.min_len == f.max_len
                else f"text, {f.min_len}-{f.max_len} characters"
            )
        elif f.type == "enum":
            facets = "one of " + ", ".join(f"`{c}`" for c in sorted(f.choices or ()))
        elif f.type == "int":
            facets = f"integer {f.low}-{f.high}"
        elif f.type == "date":
            facets = "date, 1900-2099"
        else:
            facets = f.type
        when = unknown[f.kind]
        if f.block in (Block.TITULAIRE, Block.DOSSIER) and f.kind is Kind.REQUIRED:
            when = f"refused (required in block {f.block.value})"
        element = "-" if f.element == "-" else f"`{f.element}`"
        rows.append(f"| `{f.name}` | {element} | {f.ref} | {when} | {facets} | {f.doc} |")
    return "\n".join(rows) + "\n"
