"""Read a flux file back into canonical passages, streaming and safely.

Used to prove the writer round-trips, by the CDC simulator and by the ledger when a
file must be re-read. The parser resolves no entity, loads no DTD and touches no
network; elements are cleared as soon as they are read, so memory stays flat.

A flux (and a CDC receipt, :mod:`cpf_deposit.receipts.parser`) holds neither a
DOCTYPE, nor an entity declaration, nor a processing instruction other than the XML
declaration: :func:`secure_iterparse` refuses them from what the parser itself
reports (the document's DOCTYPE once the root element starts, ``pi`` events), so
their position in the file and its encoding (UTF-16 included) do not matter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from cpf_deposit.errors import DataError
from cpf_deposit.flux.writer import NAMESPACE
from cpf_deposit.model import Passage

_NS = "{" + NAMESPACE + "}"
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


@dataclass
class FluxInfo:
    """Blocks 1 to 3 of a file, filled as the parser meets them."""

    id_flux: str | None = None
    horodatage: str | None = None
    emetteur_id: str | None = None
    certificateur_id: str | None = None
    contract_id: str | None = None


def _local(tag: str) -> str:
    return tag[len(_NS) :] if tag.startswith(_NS) else tag


def _text(el, name: str) -> str | None:
    child = el.find(_NS + name)
    if child is None or child.get(_XSI_NIL) in ("true", "1"):
        return None
    return child.text or ""


def _date(el, name: str) -> dt.date | None:
    v = _text(el, name)
    return None if v is None else dt.date.fromisoformat(v.strip())


def _int(el, name: str) -> int | None:
    v = _text(el, name)
    return None if v is None else int(v.strip())


def _bool(el, name: str) -> bool:
    return (_text(el, name) or "").strip() in ("true", "1")


def passage_from_element(el, certification: tuple[str, str, str | None]) -> Passage:
    """Build the canonical passage from a parsed ``passageCertification`` element."""
    ns = _NS
    digcomp = el.find(ns + "niveauNumeriqueEuropeen")
    results: tuple = ()
    score = None
    if digcomp is not None:
        score = _int(digcomp, "scoreGeneral")
        res = digcomp.find(ns + "resultats")
        if res is not None:
            results = tuple(
                (_int(r, "niveau"), _text(r, "domaineCompetenceId"), _text(r, "competenceId"))
                for r in res.iter(ns + "resultat")
            )
    insc = el.find(ns + "modalitesInscription")
    ident = el.find(ns + "identificationTitulaire")
    tit = ident.find(ns + "titulaire") if ident is not None else None
    dos = ident.find(ns + "dossierFormation") if ident is not None else None
    holder: dict = {}
    if tit is not None:
        place = tit.find(ns + "codeCommuneNaissance")
        insee = postal = None
        if place is not None:
            insee_el = place.find(ns + "codeInseeNaissance")
            postal_el = place.find(ns + "codePostalNaissance")
            if insee_el is not None:
                insee = _text(insee_el, "codeInsee")
            elif postal_el is not None:
                postal = _text(postal_el, "codePostal")
        holder = {
            "birth_name": _text(tit, "nomNaissance"),
            "usage_name": _text(tit, "nomUsage"),
            "first_name_1": _text(tit, "prenom1"),
            "first_name_2": _text(tit, "prenom2"),
            "first_name_3": _text(tit, "prenom3"),
            "birth_year": _int(tit, "anneeNaissance"),
            "birth_month": _int(tit, "moisNaissance"),
            "birth_day": _int(tit, "jourNaissance"),
            "sex": _text(tit, "sexe"),
            "birth_insee_code": insee,
            "birth_postal_code": postal,
            "birth_city_label": _text(tit, "libelleCommuneNaissance"),
            "birth_country_label": _text(tit, "libellePaysNaissance"),
            "comments_men": _text(tit, "commentairesMEN"),
        }
    elif dos is not None:
        holder = {
            "cpf_file_id": _text(dos, "idDossier"),
            "cpf_holder_name": _text(dos, "nomTitulaire"),
            "cpf_holder_first_name": _text(dos, "prenom1Titulaire"),
        }
    ctype, code, nature = certification
    return Passage(
        certification_type=ctype,
        certification_code=code,
        nature_deposant=nature,
        technical_id=_text(el, "idTechnique") or "",
        proof_url=_text(el, "urlPreuve"),
        option_label=_text(el, "libelleOption"),
        obtention=_text(el, "obtentionCertification") or "",
        is_final=_bool(el, "donneeCertifiee"),
        exam_start=_date(el, "dateDebutExamen"),
        exam_end=_date(el, "dateFinExamen"),
        exam_mode=_text(el, "modalitePassageExamen"),
        exam_postal_code=_text(el, "codePostalCentreExamen"),
        award_date=_date(el, "dateDebutValidite"),  # type: ignore[arg-type]
        valid_until=_date(el, "dateFinValidite"),
        language_level=_text(el, "niveauLangueEuropeen"),
        digcomp_score=score,
        digcomp_results=results,
        scoring=_text(el, "scoring"),
        mention=_text(el, "mentionValidee"),
        access_mode=_text(insc, "modaliteAcces") if insc is not None else None,
        vae_route=_text(insc, "voieAccessVAE") if insc is not None else None,
        registration_initiative=_text(insc, "initiativeInscription") if insc is not None else None,
        registration_date=_date(insc, "dateInscription") if insc is not None else None,
        verbatim=_text(el, "verbatim"),
        **holder,
    )


class UnsafeXmlError(DataError, ValueError):
    """The document holds a DOCTYPE (so possibly entity declarations or an external DTD)
    or a processing instruction: refused, whatever else it holds (terminal)."""


DOCTYPE_REFUSED = "a DOCTYPE (DTD or entity declaration) is refused"
PI_REFUSED = "a processing instruction (<?...?>) other than the XML declaration is refused"


def refuse_unsafe_tree(root) -> None:
    """:class:`UnsafeXmlError` when a parsed document has a DOCTYPE or a processing
    instruction anywhere (before, inside or after its root element)."""
    from itertools import chain

    from lxml import etree

    if root.getroottree().docinfo.doctype:
        raise UnsafeXmlError(DOCTYPE_REFUSED)
    around = chain(root.itersiblings(preceding=True), root.itersiblings())
    if any(isinstance(n, etree._ProcessingInstruction) for n in around):
        raise UnsafeXmlError(PI_REFUSED)
    if next(root.iter(etree.PI), None) is not None:
        raise UnsafeXmlError(PI_REFUSED)


class _Guarded:
    """An lxml iterparse that raises :class:`UnsafeXmlError` on a DOCTYPE or a processing
    instruction; ``pi`` events are the guard's own and never reach the caller."""

    def __init__(self, events, wanted: tuple[str, ...]):
        self._events = events
        self._wanted = wanted

    @property
    def root(self):
        return self._events.root

    def __iter__(self):
        checked = False
        wanted = self._wanted
        for event, el in self._events:
            if event == "pi":
                raise UnsafeXmlError(PI_REFUSED)
            if not checked:
                checked = True
                if el.getroottree().docinfo.doctype:
                    raise UnsafeXmlError(DOCTYPE_REFUSED)
            if event in wanted:
                yield event, el
        root = self._events.root
        if not checked and root is not None and root.getroottree().docinfo.doctype:
            raise UnsafeXmlError(DOCTYPE_REFUSED)


def secure_iterparse(source, *, events=("end",), tag=None, **kwargs):
    """lxml iterparse with everything that could reach outside the file switched off,
    refusing a DOCTYPE or a processing instruction (:class:`UnsafeXmlError`), wherever
    it stands. ``tag`` filters the caller's events as in lxml; iterate the returned
    object (its ``root`` is the parser's)."""
    from lxml import etree

    wanted = tuple(events)
    if tag is not None:
        tags = (tag,) if isinstance(tag, str) else tuple(tag)
        kwargs["tag"] = (*tags, etree.PI)
    parsed = etree.iterparse(
        source,
        events=(*wanted, "pi"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=False,
        **kwargs,
    )
    return _Guarded(parsed, wanted)


def iter_flux(path) -> Iterator[tuple[FluxInfo, Passage]]:
    """Yield ``(file info, passage)`` for every passage of a flux file (a path, or an open
    binary file), in file order. :class:`UnsafeXmlError` on a DOCTYPE or a processing
    instruction."""
    info = FluxInfo()
    cert: dict[str, str | None] = {"type": None, "code": None, "natureDeposant": None}
    depth_owner: list[str] = []
    source = path if hasattr(path, "read") else str(path)
    for event, el in secure_iterparse(source, events=("start", "end")):
        name = _local(el.tag)
        if event == "start":
            depth_owner.append(name)
            if name == "certification":
                cert = {"type": None, "code": None, "natureDeposant": None}
            continue
        depth_owner.pop()
        parent = depth_owner[-1] if depth_owner else None
        if name == "passageCertification":
            key = (cert["type"] or "", cert["code"] or "", cert["natureDeposant"])
            yield info, passage_from_element(el, key)
            el.clear(keep_tail=True)
            while el.getprevious() is not None:
                del el.getparent()[0]
        elif parent == "certification" and name in cert:
            cert[name] = el.text
        elif parent == "flux" and name == "idFlux":
            info.id_flux = el.text
        elif parent == "flux" and name == "horodatage":
            info.horodatage = el.text
        elif parent == "emetteur" and name == "idClient":
            info.emetteur_id = el.text
        elif parent == "certificateur" and name == "idClient":
            info.certificateur_id = el.text
        elif parent == "certificateur" and name == "idContrat":
            info.contract_id = el.text
