"""Birthplace to INSEE code: commune code for France, ``99xxx`` for a country.

Why a resolver: Apogée often holds only a free-text city and a département, and the
CDC matches holders on the INSEE code. A label is matched after normalisation (case,
accents, Œ/Æ, punctuation, ST/STE) within the département; a label that fits several
communes (Paris without its arrondissement, two homonyms in a département) stays
unresolved and is reported, never guessed. Source country codes are 3 digits and
become ``99`` + code when the INSEE list knows that code.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache

from cpf_deposit.sources.reference import communes, countries, department_of

_INSEE = re.compile(r"(?:[0-9]{2}|2[AB])[0-9]{3}")
_COUNTRY = re.compile(r"[0-9]{3}")
_LIGATURES = str.maketrans({"Œ": "OE", "œ": "oe", "Æ": "AE", "æ": "ae", "ß": "ss"})
_NON_ALNUM = re.compile(r"[^A-Z0-9]+")
_TOKENS = {"ST": "SAINT", "STE": "SAINTE", "S": "SAINT"}
_ARRONDISSEMENT = re.compile(
    r"(PARIS|LYON|MARSEILLE) 0?([0-9]{1,2}) ?(?:E|EME|ER|ERE)?(?: ARRONDISSEMENT| ARR)?"
)
_ARR_BASE = {"PARIS": (75100, 20), "LYON": (69380, 9), "MARSEILLE": (13200, 16)}
FRANCE = "100"


def normalise_label(label: str) -> str:
    """Comparison key of a place label: upper-case ASCII words, ST/STE spelled out."""
    if label.isascii():  # no ligature, accent or combining mark: the same key, faster
        text = label.upper()
    else:
        text = unicodedata.normalize("NFKD", label.translate(_LIGATURES))
        text = "".join(c for c in text if not unicodedata.combining(c)).upper()
    words = _NON_ALNUM.sub(" ", text).split()
    return " ".join([_TOKENS.get(w, w) for w in words])


def insee_departments(source_code: str | None) -> tuple[str, ...]:
    """INSEE département(s) of a source code: 057 -> 57, 02A -> 2A, 971 -> 971, 020 -> 2A/2B."""
    if source_code is None:
        return ()
    code = source_code.strip().upper()
    if len(code) == 3 and code.startswith("0"):
        code = code[1:]
    if code == "20":  # Corsica before 1976
        return ("2A", "2B")
    return (code,)


@dataclass(frozen=True, slots=True)
class Birthplace:
    insee_code: str | None
    city_label: str | None
    country_label: str | None
    issue: str | None = None  # code of the problem, None when resolved
    message: str | None = None  # for the scolarité office, no personal value


class CommuneIndex:
    """Communes by normalised label, within a département and overall."""

    def __init__(self, rows: Iterable[tuple[str, str]]):
        self.names: dict[str, str] = {}
        self._by_dep: dict[tuple[str, str], set[str]] = {}
        for code, name in rows:
            if not code or not name or not _INSEE.fullmatch(code):
                continue
            self.names[code] = name
            key = normalise_label(name)
            keys = {key}
            if "(" in name:  # BORS (CANTON DE ...): the bare name is ambiguous on purpose
                keys.add(normalise_label(name.split("(")[0]))
            m = _ARRONDISSEMENT.fullmatch(key)
            if m:
                keys.add(m.group(1))
            for k in keys:
                if k:
                    self._by_dep.setdefault((department_of(code), k), set()).add(code)

    @classmethod
    def offline(cls) -> CommuneIndex:
        """The shipped reference (built once per process: read-only afterwards)."""
        return _offline_index()

    def __contains__(self, code: str) -> bool:
        return code in self.names

    def find(self, label: str, departments: tuple[str, ...]) -> set[str]:
        key = normalise_label(label)
        m = _ARRONDISSEMENT.fullmatch(key)
        if m:
            base, count = _ARR_BASE[m.group(1)]
            n = int(m.group(2))
            code = str(base + n)
            if 1 <= n <= count and code in self.names:
                return {code}
        found: set[str] = set()
        for dep in departments:
            found |= self._by_dep.get((dep, key), set())
        return found


@cache
def _offline_index() -> CommuneIndex:
    return CommuneIndex((c.code, c.name) for c in communes())


class BirthplaceResolver:
    """Cached resolution of the birthplace columns of a canonical row."""

    def __init__(self, index: CommuneIndex | None = None):
        self.index = index or CommuneIndex.offline()
        self.countries = countries()
        self.resolve = lru_cache(maxsize=50_000)(self._resolve)
        self._found: dict[tuple[str, str | None], set[str]] = {}  # label search, by département

    def _find(self, city: str, department: str | None) -> set[str]:
        """Communes matching ``city`` in the département (cached: the costly part)."""
        key = (city, department)
        found = self._found.get(key)
        if found is None:
            if len(self._found) >= 100_000:  # bounded memory: start again
                self._found.clear()
            found = self._found[key] = self.index.find(city, insee_departments(department))
        return found

    def _resolve(
        self,
        born_in_france: str | None,
        department: str | None,
        commune: str | None,
        city: str | None,
        country: str | None,
        country_label: str | None,
    ) -> Birthplace:
        if born_in_france == "N":
            return self._abroad(country, city, country_label)
        if born_in_france != "Y":
            return Birthplace(
                None,
                city,
                None,
                "birthplace_origin_unknown",
                "lieu de naissance : la source ne dit pas si la naissance a eu lieu en France "
                "ou à l'étranger (COD_TYP_DEP_PAY_NAI vide) ; lieu non transmis",
            )
        if commune is not None and commune.strip():
            code = commune.strip().upper()
            if code in self.index:
                return Birthplace(code, city or self.index.names[code], None)
            issue = "birth_commune_code_unknown"
            message = (
                "code INSEE de la commune de naissance inconnu du référentiel (code postal "
                "saisi à la place ?) ; recherche par le libellé"
            )
        else:
            issue = message = None
        if city is None or not city.strip():
            return Birthplace(
                None,
                None,
                None,
                issue or "birthplace_missing",
                message or "commune de naissance absente : lieu non transmis",
            )
        found = self._find(city, department)
        if len(found) == 1:
            return Birthplace(next(iter(found)), city, None, issue, message)
        if not found:
            dep = f" dans le département {department}" if department else ""
            return Birthplace(
                None,
                city,
                None,
                "birthplace_not_found",
                f"commune de naissance introuvable{dep} : libellé à corriger ou code INSEE "
                "à saisir",
            )
        return Birthplace(
            None,
            city,
            None,
            "birthplace_ambiguous",
            f"commune de naissance ambiguë ({len(found)} communes possibles, par exemple "
            "une ville à arrondissements sans son arrondissement) : code INSEE à saisir",
        )

    def _abroad(
        self, country: str | None, city: str | None, country_label: str | None
    ) -> Birthplace:
        if country is None or not _COUNTRY.fullmatch(country.strip()):
            return Birthplace(
                None,
                city,
                country_label,
                "birth_country_missing",
                "pays de naissance absent ou mal formé (3 chiffres attendus) : lieu non transmis",
            )
        code3 = country.strip()
        if code3 == FRANCE:
            return Birthplace(
                None,
                city,
                country_label,
                "birth_country_conflict",
                "naissance à l'étranger déclarée avec le pays France (100) : lieu non transmis",
            )
        insee = "99" + code3
        if insee not in self.countries:
            return Birthplace(
                None,
                city,
                country_label,
                "birth_country_unknown",
                f"code pays {code3} inconnu de la liste INSEE des pays : lieu non transmis",
            )
        return Birthplace(insee, city, country_label or self.countries[insee])
