"""Validate a flux file in one streaming pass: XSD 1.1.2 plus the rules the XSD leaves out.

Why this shape. ``iterparse(schema=...)`` streams at flat memory but reports an XSD
failure only at the end, with line 0, and a tree validation of the whole file needs
gigabytes. Here the file is parsed once without a schema; each ``passageCertification``
is moved, as soon as it is complete, into a small skeleton document that is valid
apart from its passages, and the skeleton is validated by libxml2 every
``_BATCH`` passages. A passage's type does not depend on its context, so this accepts
and rejects exactly what a whole-document validation would, while memory holds one
batch. Moved nodes keep their source line, so every error has its real line; when a
batch fails, its passages are validated one by one to name the ``idTechnique`` of
each error. What is left of the tree once the passages are gone (the envelope:
blocks 1 to 4) is validated at the end. Measured on a 200 MB writer file (156 834
passages, 2 shared cores): about as much CPU as ``iterparse(schema=...)`` alone
(12.8 s against 11.5 s under load; XSD part alone 6.5-8 s against 9-11 s unloaded), at
a peak RSS of 43 MB, with every error located and the business rules checked.

libxml2 gives no column when it validates a tree, so the column is found by locating
the element's start tag on its line (read from the file only when there are issues).
The writer puts one passage per line, so line and column point at the element.

The business rules run on each batch as one compiled XPath that selects only the
offending passages (evaluated in C), so a valid file costs almost nothing in Python.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from cpf_deposit.errors import ConfigError
from cpf_deposit.flux.writer import NAMESPACE, XSI

_NS = "{" + NAMESPACE + "}"
_PASSAGE = "passageCertification"
_CONTAINER = "passageCertifications"
_BATCH = 200
_AWARD_START = "2021-07-01"

SEVERITY_ERROR = "error"
SEVERITY_WARNING = "warning"


@dataclass(frozen=True)
class FluxIssue:
    """One problem found in a flux file, located and explained for the operator."""

    severity: str  # "error" | "warning"
    rule: str  # "xsd", "well-formed" or a business rule id
    message: str  # raw technical message (libxml2's for xsd and well-formed)
    line: int | None
    column: int | None
    technical_id: str | None  # idTechnique of the enclosing passage
    explanation_fr: str
    explanation_en: str
    element: str | None = None  # local name of the element concerned

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "line ?"
        if self.column:
            where += f", column {self.column}"
        who = f" [{self.technical_id}]" if self.technical_id else ""
        return f"{self.severity} {self.rule} at {where}{who}: {self.explanation_en}"


@dataclass
class ValidationReport:
    """What :func:`validate_file` found in one file."""

    path: Path
    xsd: Path
    passages: int
    id_flux: str | None
    issues: list[FluxIssue] = field(default_factory=list)
    truncated: bool = False  # more issues existed than ``max_issues``

    @property
    def valid(self) -> bool:
        return not any(i.severity == SEVERITY_ERROR for i in self.issues)

    @property
    def errors(self) -> list[FluxIssue]:
        return [i for i in self.issues if i.severity == SEVERITY_ERROR]

    @property
    def warnings(self) -> list[FluxIssue]:
        return [i for i in self.issues if i.severity == SEVERITY_WARNING]

    def summary(self) -> str:
        verdict = "valid" if self.valid else "INVALID"
        more = " (list truncated)" if self.truncated else ""
        return (
            f"{self.path.name}: {verdict}, {self.passages} passages, "
            f"{len(self.errors)} errors, {len(self.warnings)} warnings{more}"
        )


# --------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------


def load_schema(xsd_path: Path | None = None):
    """The compiled XSD (default: the shipped 1.1.2 schema), compiled once per file."""
    from lxml import etree

    from cpf_deposit.config import shipped_xsd

    path = Path(xsd_path) if xsd_path is not None else shipped_xsd()
    try:
        resolved = path.resolve()
        return _compile(str(resolved), resolved.stat().st_mtime_ns)
    except (OSError, UnicodeError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise SchemaError(f"{path}: not a usable XSD ({reason})") from None


class SchemaError(ConfigError, ValueError):
    """The XSD given (``--xsd``, ``xsd_path``) cannot be read or compiled (terminal)."""


@functools.lru_cache(maxsize=8)
def _compile(path: str, _mtime_ns: int):
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(path, parser))


# --------------------------------------------------------------------------------------
# Plain-language explanations of libxml2 messages
# --------------------------------------------------------------------------------------

_ELEMENT_IN_MESSAGE = re.compile(r"Element '(?:\{[^}]*\})?(?:[\w.\-]+:)?([\w.\-]+)'")
_ENUM_SET = re.compile(r"element of the set \{(.*)\}\.?$")
_LENGTH = re.compile(r"allowed (?:minimum |maximum )?length of '(\d+)'")
_INCLUSIVE = re.compile(r"value allowed \('([^']*)'\)")
_EXPECTED = re.compile(r"Expected is(?: one of)? \((.*)\)")
_TYPE = re.compile(r"atomic type '([^']*)'")
_QNAME_LOCAL = re.compile(r"(?:\{[^}]*\})?([\w.\-]+)")


def element_of(message: str) -> str | None:
    """Local name of the element a libxml2 schema message is about."""
    m = _ELEMENT_IN_MESSAGE.search(message)
    return m.group(1) if m else None


def _names(listing: str) -> str:
    names = [_QNAME_LOCAL.fullmatch(x.strip()) for x in listing.split(",")]
    return ", ".join(m.group(1) for m in names if m) or listing.strip()


def explain(message: str, element: str | None) -> tuple[str, str]:
    """French and English explanations of one libxml2 message, for an operator.

    Only facts of the schema are added (allowed values, lengths, expected elements);
    the value that was refused is never repeated.
    """
    el = element or element_of(message) or "?"
    q = f"« {el} »"
    if "[facet 'enumeration']" in message:
        m = _ENUM_SET.search(message)
        allowed = ", ".join(v.strip().strip("'") for v in m.group(1).split(",")) if m else ""
        tail_fr = f" Valeurs permises : {allowed}." if allowed else ""
        tail_en = f" Allowed values: {allowed}." if allowed else ""
        return (
            f"L'élément {q} contient une valeur qui ne fait pas partie de la liste "
            f"autorisée par le XSD (majuscules et espaces comptent).{tail_fr}",
            f"Element '{el}' holds a value outside the list the XSD allows "
            f"(case and spaces count).{tail_en}",
        )
    if "[facet 'pattern']" in message:
        return (
            f"L'élément {q} n'a pas le format attendu (par exemple une date AAAA-MM-JJ, "
            "ou un horodatage AAAA-MM-JJTHH:MM:SS+HH:MM sans « Z » ni fraction).",
            f"Element '{el}' does not have the expected format (e.g. a date YYYY-MM-DD, or a "
            "timestamp YYYY-MM-DDTHH:MM:SS+HH:MM without 'Z' or fractions).",
        )
    for facet, fr, en in (
        ("length", "exactement", "exactly"),
        ("minLength", "au moins", "at least"),
        ("maxLength", "au plus", "at most"),
    ):
        if f"[facet '{facet}']" in message:
            m = _LENGTH.search(message)
            n = m.group(1) if m else "?"
            empty_fr = " Un élément facultatif sans valeur doit être omis." if n == "1" else ""
            empty_en = " An optional element without a value must be left out." if n == "1" else ""
            return (
                f"L'élément {q} doit contenir {fr} {n} caractère(s), espaces et retours à la "
                f"ligne compris.{empty_fr if facet == 'minLength' else ''}",
                f"Element '{el}' must hold {en} {n} character(s), spaces and line breaks "
                f"included.{empty_en if facet == 'minLength' else ''}",
            )
    if "[facet 'minInclusive']" in message or "[facet 'maxInclusive']" in message:
        m = _INCLUSIVE.search(message)
        bound = m.group(1) if m else "?"
        low = "minInclusive" in message
        return (
            f"La valeur de l'élément {q} est {'trop petite' if low else 'trop grande'} : "
            f"{'minimum' if low else 'maximum'} autorisé {bound}.",
            f"The value of element '{el}' is too {'small' if low else 'large'}: the "
            f"{'minimum' if low else 'maximum'} allowed is {bound}.",
        )
    if "Missing child element(s)" in message:
        m = _EXPECTED.search(message)
        expected = _names(m.group(1)) if m else "?"
        return (
            f"Il manque un élément obligatoire dans {q} : {expected}. Un élément "
            'obligatoire « nil » doit être écrit avec xsi:nil="true", pas omis.',
            f"A required element is missing inside '{el}': {expected}. A required nillable "
            'element must be written with xsi:nil="true", not left out.',
        )
    if "This element is not expected" in message:
        m = _EXPECTED.search(message)
        tail_fr = f" Attendu à cet endroit : {_names(m.group(1))}." if m else ""
        tail_en = f" Expected here: {_names(m.group(1))}." if m else ""
        return (
            f"L'élément {q} n'est pas permis à cet endroit (élément inconnu, en double, "
            f"ou exclu par un autre, comme titulaire et dossierFormation).{tail_fr}",
            f"Element '{el}' is not allowed here (unknown, repeated, or excluded by "
            f"another, like titulaire and dossierFormation).{tail_en}",
        )
    if "is not a valid value of the" in message:
        m = _TYPE.search(message)
        kind = (m.group(1) if m else "").rsplit(":", 1)[-1].rsplit("}", 1)[-1]
        hint_fr = {
            "boolean": " Écrire true ou false (en minuscules), ou 1 ou 0.",
            "int": " Écrire un nombre entier.",
            "date": " Écrire une date réelle AAAA-MM-JJ, sans fuseau horaire.",
            "Day": " Écrire une date réelle AAAA-MM-JJ, sans fuseau horaire.",
            "dateTime": " Écrire AAAA-MM-JJTHH:MM:SS+HH:MM.",
            "Timestamp": " Écrire AAAA-MM-JJTHH:MM:SS+HH:MM.",
        }.get(kind, "")
        hint_en = {
            "boolean": " Write true or false (lower case), or 1 or 0.",
            "int": " Write a whole number.",
            "date": " Write a real date YYYY-MM-DD, without a time zone.",
            "Day": " Write a real date YYYY-MM-DD, without a time zone.",
            "dateTime": " Write YYYY-MM-DDTHH:MM:SS+HH:MM.",
            "Timestamp": " Write YYYY-MM-DDTHH:MM:SS+HH:MM.",
        }.get(kind, "")
        return (
            f"La valeur de l'élément {q} n'est pas du type attendu.{hint_fr}",
            f"The value of element '{el}' is not of the expected type.{hint_en}",
        )
    if "not 'nillable'" in message:
        return (
            f"L'élément {q} ne peut pas être « nil » : l'omettre s'il est facultatif, "
            "sinon lui donner une valeur.",
            f"Element '{el}' cannot be nil: leave it out if it is optional, otherwise give "
            "it a value.",
        )
    if "cannot be 'nilled'" in message or "nilled" in message:
        return (
            f'L\'élément {q} est marqué xsi:nil="true" mais contient une valeur : '
            "choisir l'un ou l'autre.",
            f"Element '{el}' is marked xsi:nil=\"true\" but has content: use one or the other.",
        )
    if "No matching global declaration" in message:
        return (
            "L'élément racine n'est pas le « flux » attendu : vérifier l'espace de noms "
            f"({NAMESPACE}) et la version du XSD.",
            f"The root element is not the expected 'flux': check the namespace ({NAMESPACE}) "
            "and the XSD version.",
        )
    if "attribute" in message and "not allowed" in message:
        return (
            f"L'élément {q} porte un attribut que le XSD ne permet pas.",
            f"Element '{el}' carries an attribute the XSD does not allow.",
        )
    if "Character content other than whitespace" in message:
        return (
            f"L'élément {q} ne doit contenir que des éléments, pas de texte.",
            f"Element '{el}' must hold only elements, not text.",
        )
    return (
        f"L'élément {q} ne respecte pas le XSD du flux (voir le message technique).",
        f"Element '{el}' does not comply with the flux XSD (see the technical message).",
    )


def _explain_syntax(message: str) -> tuple[str, str]:
    low = message.lower()
    if "comment" in low:
        detail_fr = " Un commentaire ne doit pas contenir « -- »."
        detail_en = " A comment must not contain '--'."
    elif "premature end" in low or "extra content" in low or "end of data" in low:
        detail_fr = " Le fichier semble tronqué ou incomplet."
        detail_en = " The file looks truncated or incomplete."
    elif "mismatch" in low or "end tag" in low:
        detail_fr = " Une balise fermante manque ou ne correspond pas à la balise ouvrante."
        detail_en = " A closing tag is missing or does not match its opening tag."
    elif "encoding" in low or "utf-8" in low or "char" in low:
        detail_fr = " Le fichier contient un caractère interdit ou n'est pas en UTF-8."
        detail_en = " The file holds a forbidden character or is not UTF-8."
    else:
        detail_fr = detail_en = ""
    return (
        "Le fichier n'est pas un XML bien formé : le CDC le rejettera en entier." + detail_fr,
        "The file is not well-formed XML: the CDC will reject all of it." + detail_en,
    )


# --------------------------------------------------------------------------------------
# Business rules the XSD leaves out
# --------------------------------------------------------------------------------------

_RULE_TEXT: dict[str, tuple[str, str]] = {
    "duplicate-id": (
        "Cet idTechnique est déjà utilisé par un passage précédent du fichier : le CDC "
        "rejettera le second.",
        "This idTechnique is already used by an earlier passage of the file: the CDC will "
        "reject the second one.",
    ),
    "validity-dates": (
        "dateFinValidite est antérieure à dateDebutValidite : le CDC rejettera le passage.",
        "dateFinValidite is before dateDebutValidite: the CDC will reject the passage.",
    ),
    "exam-dates": (
        "dateFinExamen est antérieure à dateDebutExamen : le CDC rejettera le passage.",
        "dateFinExamen is before dateDebutExamen: the CDC will reject the passage.",
    ),
    "language-level": (
        "niveauLangueEuropeen doit être présent si et seulement si "
        "presenceNiveauLangueEuro vaut true.",
        "niveauLangueEuropeen must be present exactly when presenceNiveauLangueEuro is true.",
    ),
    "digcomp-block": (
        "Le bloc niveauNumeriqueEuropeen (bloc 6) doit être présent si et seulement si "
        "presenceNiveauNumeriqueEuro vaut true.",
        "The niveauNumeriqueEuropeen block (block 6) must be present exactly when "
        "presenceNiveauNumeriqueEuro is true.",
    ),
    "country-code": (
        "codePaysNaissance doit être présent si et seulement si le codeInsee commence par "
        "99 (naissance à l'étranger), et valoir ses 3 derniers chiffres.",
        "codePaysNaissance must be present exactly when codeInsee starts with 99 (born "
        "abroad), and equal its last 3 digits.",
    ),
    "award-before-2021-07": (
        "dateDebutValidite est antérieure au 1er juillet 2021 : l'obligation de dépôt ne "
        "couvre que les certifications délivrées depuis cette date.",
        "dateDebutValidite is before 1 July 2021: the deposit duty only covers "
        "certifications awarded since that date.",
    ),
}


def _true(text: str | None) -> bool:
    return (text or "").strip() in ("true", "1")


def _day_key(text: str | None) -> str | None:
    """A comparable key for a date the XSD would accept; None when it is not one."""
    t = (text or "").strip()
    if len(t) == 10 and t[4] == "-" and t[7] == "-" and t.replace("-", "").isdigit():
        return t
    return None


# Supersets, in XPath, of what _passage_rules flags: they pick the passages worth a
# look in C, so a valid batch costs a few microseconds per passage. The date queries
# only run when a batch holds the dates they compare (cheap text() lists first).
_P = "cpf:passageCertification"
_DAY = "number(translate(cpf:{},'-',''))"
_QUERIES = {
    "validity_ends": f"{_P}/cpf:dateFinValidite/text()",
    "validity": f"{_P}[cpf:dateFinValidite/text() and "
    f"{_DAY.format('dateFinValidite')} < {_DAY.format('dateDebutValidite')}]",
    "exam_ends": f"{_P}/cpf:dateFinExamen/text()",
    "exam": f"{_P}[cpf:dateFinExamen and cpf:dateDebutExamen and "
    f"{_DAY.format('dateFinExamen')} < {_DAY.format('dateDebutExamen')}]",
    "starts": f"{_P}/cpf:dateDebutValidite/text()",
    "award": f"{_P}[{_DAY.format('dateDebutValidite')} < {_AWARD_START.replace('-', '')}]",
    "flags": " | ".join(
        f"{_P}[cpf:{data}][not(cpf:{flag}='true')] | {_P}[not(cpf:{data})][not(cpf:{flag}='false')]"
        for flag, data in (
            ("presenceNiveauLangueEuro", "niveauLangueEuropeen"),
            ("presenceNiveauNumeriqueEuro", "niveauNumeriqueEuropeen"),
        )
    ),
    "country": f"{_P}[cpf:identificationTitulaire/cpf:titulaire["
    "boolean(cpf:codePaysNaissance) != starts-with(cpf:codeCommuneNaissance/"
    "cpf:codeInseeNaissance/cpf:codeInsee, '99') or (cpf:codePaysNaissance and not("
    "cpf:codePaysNaissance = substring(cpf:codeCommuneNaissance/cpf:codeInseeNaissance/"
    "cpf:codeInsee, 3)))]]",
}


# --------------------------------------------------------------------------------------
# The streaming pass
# --------------------------------------------------------------------------------------

_SKELETON = (
    f'<cpf:flux xmlns:cpf="{NAMESPACE}" xmlns:xsi="{XSI}">'
    "<cpf:idFlux>skeleton</cpf:idFlux><cpf:horodatage>2021-07-01T00:00:00+02:00</cpf:horodatage>"
    "<cpf:emetteur><cpf:idClient>00AAA000</cpf:idClient><cpf:certificateurs><cpf:certificateur>"
    "<cpf:idClient>00AAA000</cpf:idClient><cpf:idContrat>skeleton</cpf:idContrat>"
    "<cpf:certifications><cpf:certification><cpf:type>RNCP</cpf:type><cpf:code>RNCP0</cpf:code>"
    "<cpf:passageCertifications/></cpf:certification></cpf:certifications>"
    "</cpf:certificateur></cpf:certificateurs></cpf:emetteur></cpf:flux>"
)


_UNSAFE = (
    "Le fichier contient un DOCTYPE (DTD, déclaration d'entité) ou une instruction de "
    "traitement (<?...?>) : un flux ne doit contenir ni l'un ni l'autre, la Caisse des "
    "Dépôts le refuserait. Régénérez le fichier sans eux.",
    "The file holds a DOCTYPE (DTD, entity declaration) or a processing instruction "
    "(<?...?>): a flux must hold neither, the CDC would refuse it. Produce the file "
    "again without them.",
)


class _Stop(Exception):
    """Enough issues collected: stop reading the file."""


@dataclass
class _Pending:
    """An issue waiting for its column (read from the file at the end)."""

    severity: str
    rule: str
    message: str
    line: int | None
    column: int | None
    technical_id: str | None
    element: str | None
    explanation: tuple[str, str]


class _Run:
    """State of one validation: the skeleton, the seen ids and the issues so far."""

    def __init__(self, schema, max_issues: int):
        from lxml import etree

        self.etree = etree
        self.schema = schema
        self.max_issues = max_issues
        self.issues: list[_Pending] = []
        self.truncated = False
        self.has_error = False
        self.passages = 0
        self.seen_ids: set[str] = set()
        self.skeleton = etree.fromstring(_SKELETON)
        for el in self.skeleton.iter():
            el.sourceline = 0  # errors on line 0 are the skeleton's, never the file's
        self.holder = self.skeleton.find(f".//{_NS}{_CONTAINER}")
        ns = {"cpf": NAMESPACE}
        self.q = {
            k: etree.XPath(v, namespaces=ns, smart_strings=False) for k, v in _QUERIES.items()
        }
        self.id_texts = etree.XPath(
            "cpf:passageCertification/cpf:idTechnique/text()", namespaces=ns, smart_strings=False
        )
        self.id_elements = etree.XPath("cpf:passageCertification/cpf:idTechnique", namespaces=ns)

    # -- issue collection --------------------------------------------------------------

    def add(self, issue: _Pending) -> None:
        is_error = issue.severity == SEVERITY_ERROR
        if len(self.issues) < self.max_issues or (is_error and not self.has_error):
            self.issues.append(issue)
        else:
            self.truncated = True
        self.has_error = self.has_error or is_error
        if self.truncated and self.has_error:
            raise _Stop

    def add_log(self, entry, technical_id: str | None) -> None:
        message = entry.message
        element = element_of(message)
        self.add(
            _Pending(
                SEVERITY_ERROR,
                "xsd",
                message,
                entry.line or None,
                entry.column or None,
                technical_id,
                element,
                explain(message, element),
            )
        )

    def add_rule(self, rule: str, el, technical_id: str | None, severity=SEVERITY_ERROR):
        name = el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else None
        fr, en = _RULE_TEXT[rule]
        self.add(_Pending(severity, rule, en, el.sourceline, None, technical_id, name, (fr, en)))

    # -- passages ------------------------------------------------------------------------

    def take(self, el) -> None:
        """Move a complete passage into the skeleton; validate every ``_BATCH``."""
        self.holder.append(el)
        if len(self.holder) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        holder = self.holder
        if not len(holder):
            return
        try:
            self._check_ids()
            for passage in self._suspects():
                self._passage_rules(passage)
            if not self._validates(self.skeleton):
                self._diagnose()
        finally:
            del holder[:]

    def _validates(self, doc) -> bool:
        try:
            return self.schema.validate(doc)
        except self.etree.XMLSchemaValidateError:  # diagnosed passage by passage
            return False

    def _internal(self, exc, line: int | None, technical_id: str | None) -> None:
        """libxml2 gave up (e.g. on an unexpanded entity reference): still an error."""
        self.add(
            _Pending(
                SEVERITY_ERROR,
                "xsd",
                str(exc),
                line,
                None,
                technical_id,
                _PASSAGE if line else None,
                (
                    "Le validateur XSD n'a pas pu lire ce contenu (référence d'entité ou "
                    "DOCTYPE ?) : un flux ne doit contenir ni DOCTYPE ni entité.",
                    "The XSD validator could not read this content (an entity reference or "
                    "a DOCTYPE?): a flux must hold neither a DOCTYPE nor entities.",
                ),
            )
        )

    def _suspects(self):
        """Passages of the batch that may break a business rule (usually none)."""
        q, holder = self.q, self.holder
        found = q["flags"](holder) + q["country"](holder)
        if q["validity_ends"](holder):
            found += q["validity"](holder)
        if q["exam_ends"](holder):
            found += q["exam"](holder)
        starts = q["starts"](holder)
        if starts and min(starts) < _AWARD_START:
            found += q["award"](holder)
        return list({id(p): p for p in found}.values())

    def _check_ids(self) -> None:
        seen = self.seen_ids
        ids = self.id_texts(self.holder)
        batch = set(ids)
        if len(batch) == len(ids) and seen.isdisjoint(batch):
            seen |= batch
            return
        # Some id repeats (rare): find which, in file order.
        for el in self.id_elements(self.holder):
            tid = el.text
            if tid is None:
                continue
            if tid in seen:
                self.add_rule("duplicate-id", el, tid)
            seen.add(tid)

    def _diagnose(self) -> None:
        """Validate the failed batch passage by passage to name each error's passage."""
        passages = list(self.holder)
        del self.holder[:]
        for p in passages:
            self.holder.append(p)
            tid = p.findtext(_NS + "idTechnique")
            try:
                if not self.schema.validate(self.skeleton):
                    for entry in self.schema.error_log:
                        if entry.line:
                            self.add_log(entry, tid)
            except self.etree.XMLSchemaValidateError as exc:
                self._internal(exc, p.sourceline, tid)
            del self.holder[:]

    def _passage_rules(self, p) -> None:
        find = p.find
        tid = p.findtext(_NS + "idTechnique")
        start, end = find(_NS + "dateDebutValidite"), find(_NS + "dateFinValidite")
        if start is not None:
            s = _day_key(start.text)
            e = _day_key(end.text) if end is not None else None
            if s and e and e < s:
                self.add_rule("validity-dates", end, tid)
            if s and s < _AWARD_START:
                self.add_rule("award-before-2021-07", start, tid, SEVERITY_WARNING)
        xs, xe = find(_NS + "dateDebutExamen"), find(_NS + "dateFinExamen")
        if xs is not None and xe is not None:
            s, e = _day_key(xs.text), _day_key(xe.text)
            if s and e and e < s:
                self.add_rule("exam-dates", xe, tid)
        for flag, data, rule in (
            ("presenceNiveauLangueEuro", "niveauLangueEuropeen", "language-level"),
            ("presenceNiveauNumeriqueEuro", "niveauNumeriqueEuropeen", "digcomp-block"),
        ):
            flag_el, data_el = find(_NS + flag), find(_NS + data)
            if (data_el is not None) != _true(flag_el.text if flag_el is not None else None):
                target = data_el if data_el is not None else flag_el
                self.add_rule(rule, target if target is not None else p, tid)
        tit = p.find(f"{_NS}identificationTitulaire/{_NS}titulaire")
        if tit is not None:
            insee = tit.find(f"{_NS}codeCommuneNaissance/{_NS}codeInseeNaissance/{_NS}codeInsee")
            pays = tit.find(_NS + "codePaysNaissance")
            code = (insee.text or "") if insee is not None else ""
            if code.startswith("99"):
                if pays is None or pays.text != code[2:]:
                    self.add_rule("country-code", pays if pays is not None else insee, tid)
            elif pays is not None:
                self.add_rule("country-code", pays, tid)

    # -- envelope --------------------------------------------------------------------------

    def envelope(self, root, filled_lines: set[int]) -> None:
        """Validate blocks 1-4 once the passages are gone.

        A container emptied by the pass reports "Missing child element(s)"; that message
        is dropped for containers that did hold passages.
        """
        try:
            if self.schema.validate(root.getroottree()):
                return
        except self.etree.XMLSchemaValidateError as exc:
            self._internal(exc, None, None)
            return
        for entry in self.schema.error_log:
            if (
                entry.line in filled_lines
                and element_of(entry.message) == _CONTAINER
                and "Missing child element(s)" in entry.message
            ):
                continue
            self.add_log(entry, None)


def validate_file(
    path: str | Path, xsd_path: Path | None = None, *, max_issues: int = 1000
) -> ValidationReport:
    """Validate one flux file against the XSD and the business rules, streaming.

    Never raises on a bad file: a file that is not well-formed XML gives a
    "well-formed" error. At most ``max_issues`` issues are listed (``truncated`` then
    says so); reading stops early once the list is full and holds an error.
    """
    from lxml import etree

    from cpf_deposit.config import shipped_xsd
    from cpf_deposit.flux.reader import UnsafeXmlError, secure_iterparse

    path = Path(path)
    xsd = Path(xsd_path) if xsd_path is not None else shipped_xsd()
    run = _Run(load_schema(xsd), max(1, max_issues))
    filled: list = []  # containers emptied by the pass (a few: one per certification)
    stray = 0
    root = None
    ok_parent = None
    events = secure_iterparse(str(path), events=("end",), tag="{*}" + _PASSAGE)
    try:
        try:
            for _, el in events:
                run.passages += 1
                if root is None:
                    root = el.getroottree().getroot()
                parent = el.getparent()
                if parent is None:  # a passage as the root: the envelope reports it
                    continue
                if parent is not ok_parent:
                    grand = parent.getparent()
                    if root.tag != _NS + "flux":
                        # Wrong root or namespace: one envelope error says it all.
                        parent.remove(el)
                        continue
                    if (
                        el.tag == _NS + _PASSAGE
                        and parent.tag == _NS + _CONTAINER
                        and grand is not None
                        and grand.tag == _NS + "certification"
                    ):
                        ok_parent = parent
                        filled.append(parent)
                    else:
                        # Misplaced: left in the envelope, whose validation reports it;
                        # beyond max_issues they are dropped to keep memory flat.
                        stray += 1
                        if stray > run.max_issues:
                            run.truncated = True
                            parent.remove(el)
                        continue
                run.take(el)
            run.flush()
        except etree.XMLSyntaxError as exc:
            run.flush()
            tid = _open_passage_id(root)
            line, column = exc.position if exc.position else (None, None)
            run.add(
                _Pending(
                    SEVERITY_ERROR,
                    "well-formed",
                    exc.msg or str(exc),
                    line or None,
                    column or None,
                    tid,
                    None,
                    _explain_syntax(exc.msg or str(exc)),
                )
            )
        except UnsafeXmlError as exc:
            # Refused by the parser whatever its position or encoding: nothing else is
            # worth reading in a file the CDC would not take.
            run.add(
                _Pending(SEVERITY_ERROR, "unsafe-markup", str(exc), None, None, None, None, _UNSAFE)
            )
        else:
            root = events.root if root is None else root
            if root is not None:
                # Lines read now, once emptied, as libxml2 will compute them.
                run.envelope(root, {c.sourceline for c in filled})
    except _Stop:
        run.truncated = True
    id_flux = None
    if root is not None and isinstance(root.tag, str):
        id_flux = root.findtext(_NS + "idFlux")
    issues = _finish(path, run.issues)
    return ValidationReport(path, xsd, run.passages, id_flux, issues, run.truncated)


def _open_passage_id(root) -> str | None:
    """idTechnique of the passage being read when the parser gave up, if any."""
    if root is None:
        return None
    last = None
    for last in root.iter("{*}" + _PASSAGE):  # noqa: B007 - only the last one matters
        pass
    if last is None:
        return None
    return last.findtext("{*}idTechnique")


# --------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------


def _finish(path: Path, pending: list[_Pending]) -> list[FluxIssue]:
    """Sort the issues by position and give each a column, reading the file once."""
    pending.sort(key=lambda p: (p.line or 0, p.column or 0))
    wanted = sorted({p.line for p in pending if p.line and not p.column and p.element})
    lines = _read_lines(path, wanted) if wanted else {}
    out = []
    for p in pending:
        column = p.column
        if column is None and p.line in lines and p.element:
            column = _tag_column(lines[p.line], p.element)
        fr, en = p.explanation
        out.append(
            FluxIssue(
                p.severity, p.rule, p.message, p.line, column, p.technical_id, fr, en, p.element
            )
        )
    return out


def _read_lines(path: Path, wanted: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    targets = iter(wanted)
    target = next(targets, None)
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if target is None:
                break
            if number == target:
                out[number] = raw.decode("utf-8", errors="replace")
                target = next(targets, None)
    return out


def _tag_column(line: str, local: str) -> int | None:
    """1-based column of the first start tag ``<[prefix:]local`` on the line."""
    m = re.search(r"<(?:[\w.\-]+:)?" + re.escape(local) + r"(?=[\s/>])", line)
    return m.start() + 1 if m else None


__all__ = [
    "FluxIssue",
    "ValidationReport",
    "element_of",
    "explain",
    "load_schema",
    "validate_file",
]
