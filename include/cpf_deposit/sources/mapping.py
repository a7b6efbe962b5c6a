"""Canonical source row to :class:`cpf_deposit.model.Passage`, with its reported issues.

Why here and once: the three source queries return the same columns
(:mod:`cpf_deposit.sources.canonical`), so the CDC conventions (certification
prefix, mention and access-route enumerations, INSEE birthplace) are applied in one
place. Values are never altered: what cannot be mapped is reported, with the record
key and the field, in French for the scolarité office, and without personal data.

A row becomes no passage (severity ``error``) when its certification or its award
date is unknown; other problems (``warning``) leave the field unknown (nil).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

from cpf_deposit.model import FIELDS, MENTION, MODALITE_ACCES, Passage
from cpf_deposit.sources.birthplace import BirthplaceResolver, normalise_label
from cpf_deposit.sources.canonical import COLUMN_NAMES
from cpf_deposit.sources.certmap import CertificationMap

ERROR, WARNING = "error", "warning"
FIELD_NAMES = tuple(f.name for f in FIELDS)
_USED = (
    "source_system", "source_record_key", "birth_name", "usage_name", "first_name_1",
    "first_name_2", "first_name_3", "sex", "birth_date", "birth_date_is_estimated",
    "born_in_france", "birth_department_code", "birth_commune_insee", "birth_city_label",
    "birth_country_code", "birth_country_label", "certification_type", "certification_code",
    "diploma_code", "diploma_version", "academic_year", "mention_code", "mention_label",
    "access_mode_code", "award_date",
)  # fmt: skip
_NO_AWARD = (
    "date d'obtention du diplôme absente (DAT_OBT_VDI) : passage non transmis, "
    "à compléter dans le logiciel de scolarité"
)
_ESTIMATED = "date de naissance estimée : seule l'année est transmise"

# Apogée's usual honours codes; local codes go in the source option ``mention_map``.
DEFAULT_MENTION_CODES = {
    "P": "SANS_MENTION",
    "PA": "SANS_MENTION",
    "SM": "SANS_MENTION",
    "AB": "MENTION_ASSEZ_BIEN",
    "B": "MENTION_BIEN",
    "TB": "MENTION_TRES_BIEN",
    "TBF": "MENTION_TRES_BIEN_AVEC_FELICITATIONS_DU_JURY",
    "TBJ": "MENTION_TRES_BIEN_AVEC_FELICITATIONS_DU_JURY",
}
# Then the label, normalised, first matching phrase wins (order matters).
_MENTION_LABELS = (
    ("FELICITATIONS", "MENTION_TRES_BIEN_AVEC_FELICITATIONS_DU_JURY"),
    ("TRES BIEN", "MENTION_TRES_BIEN"),
    ("ASSEZ BIEN", "MENTION_ASSEZ_BIEN"),
    ("BIEN", "MENTION_BIEN"),
    ("PASSABLE", "SANS_MENTION"),
    ("SANS MENTION", "SANS_MENTION"),
)


def technical_id_for(source_system: str, record_key: str) -> str:
    """Placeholder idTechnique: deterministic, and no personal data (a digest of the key).

    The ledger owns the final identifier; this single function is what it replaces.
    """
    digest = hashlib.sha256(f"{source_system}\x1f{record_key}".encode()).hexdigest()
    return f"{source_system}-{digest[:32]}"


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem found in one source row, or one diploma version (no personal value)."""

    severity: str  # error: no passage; warning: the field is left unknown
    source_record_key: str
    technical_id: str | None
    field: str  # Passage attribute, or the canonical column
    code: str
    message: str  # French, for the scolarité office


def _enum_map(custom: Mapping[str, str] | None, allowed: frozenset[str], what: str) -> dict:
    out = {}
    for code, value in (custom or {}).items():
        if value not in allowed:
            raise ValueError(f"{what}: {value!r} (for code {code!r}) is not one of the CDC values")
        out[str(code)] = value
    return out


def to_date(value: object) -> dt.date | None:
    """A date column as the drivers return it: date, datetime (Oracle) or ISO text (SQLite)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) >= 10 and (len(text) == 10 or text[10] in " T"):
            return dt.date.fromisoformat(text[:10])
    raise ValueError("not a date")


class RowMapper:
    """Maps canonical rows (tuples in the order of ``columns``) to passages."""

    def __init__(
        self,
        columns: Sequence[str],
        certification_map: CertificationMap | None,
        *,
        mention_map: Mapping[str, str] | None = None,
        access_map: Mapping[str, str] | None = None,
        birthplaces: BirthplaceResolver | None = None,
    ):
        missing = [c for c in COLUMN_NAMES if c not in columns]
        if missing:
            raise ValueError(f"the source query lacks the canonical columns: {', '.join(missing)}")
        self.ix = {name: columns.index(name) for name in COLUMN_NAMES}
        self.certification_map = certification_map
        self.mentions = {**DEFAULT_MENTION_CODES, **_enum_map(mention_map, MENTION, "mention_map")}
        self.access = {v: v for v in MODALITE_ACCES}
        self.access.update(_enum_map(access_map, MODALITE_ACCES, "access_mode_map"))
        self.birthplaces = birthplaces or BirthplaceResolver()
        self.unmapped: dict[tuple[str | None, str | None, int | None], int] = {}
        self._get = itemgetter(*(self.ix[c] for c in _USED))
        self._dates: dict[object, dt.date | None] = {}
        self._certs: dict[tuple, tuple[str, str] | None] = {}

    def map_row(self, row: Sequence[object]) -> tuple[Passage | None, list[Issue]]:
        """One canonical row to its passage (None when it cannot be sent) and its issues."""
        values, issues = self.map_values(row)
        if values is None:
            return None, issues
        kwargs = dict(zip(FIELD_NAMES, values, strict=True))
        kwargs["digcomp_results"] = ()
        return Passage(**kwargs), issues

    def map_values(self, row: Sequence[object]) -> tuple[tuple | None, list[Issue]]:
        """Same as :meth:`map_row`, the passage as a tuple in the order of ``model.FIELDS``.

        The bulk path: a million rows are written to Parquet column by column without
        building a million objects twice.
        """
        (
            system, key, birth_name, usage_name, first_1, first_2, first_3, sex, birth_raw,
            estimated, born, department, commune, city, country, country_label, ctype, ccode,
            diploma, version, year, mention_code, mention_label, access_code, award_raw,
        ) = self._get(row)  # fmt: skip
        if not system or not key:
            raise ValueError("a source row has no source_system or source_record_key")
        key = str(key)
        tid = technical_id_for(system, key)
        issues: list[Issue] = []

        if year is not None and not isinstance(year, int):
            year = int(year)
        if ctype is not None and ccode is not None:
            ctype = str(ctype).upper()
            ccode = str(ccode)
            cert = (ctype, ccode if ccode.upper().startswith(ctype) else f"{ctype}{ccode}")
        else:
            if version is not None and not isinstance(version, str):
                version = _text(version)
            cert = self._lookup(diploma, version, year)
            if cert is None:
                k = (diploma, version, year)
                self.unmapped[k] = self.unmapped.get(k, 0) + 1
        try:
            award = self._date(award_raw)
        except ValueError:
            award = None
            issues.append(
                Issue(
                    ERROR,
                    key,
                    tid,
                    "award_date",
                    "award_date_invalid",
                    "date d'obtention illisible",
                )
            )
        else:
            if award is None:
                issues.append(Issue(ERROR, key, tid, "award_date", "award_date_missing", _NO_AWARD))
        try:
            birth = self._date(birth_raw)
        except ValueError:
            birth = None
            issues.append(
                Issue(
                    WARNING,
                    key,
                    tid,
                    "birth_year",
                    "birth_date_invalid",
                    "date de naissance illisible",
                )
            )
        birth_year = month = day = None
        if birth is not None:
            birth_year = birth.year
            if estimated == "Y":
                issues.append(
                    Issue(WARNING, key, tid, "birth_day", "birth_date_estimated", _ESTIMATED)
                )
            else:
                month, day = birth.month, birth.day

        mention = None
        if mention_code is not None:
            mention_code = str(mention_code)
            mention = self.mentions.get(mention_code) or _mention_by_label(mention_label)
            if mention is None:
                issues.append(
                    Issue(
                        WARNING,
                        key,
                        tid,
                        "mention",
                        "mention_unmapped",
                        f"mention locale {mention_code} sans correspondance CDC : transmise "
                        "vide (à ajouter dans mention_map)",
                    )
                )
        access = None
        if access_code is not None:
            access = self.access.get(str(access_code))
            if access is None:
                issues.append(
                    Issue(
                        WARNING,
                        key,
                        tid,
                        "access_mode",
                        "access_mode_unmapped",
                        f"modalité d'accès locale {access_code} sans correspondance CDC : "
                        "transmise vide (à ajouter dans access_mode_map)",
                    )
                )
        place = self.birthplaces.resolve(
            born, _text(department), _text(commune), _text(city), _text(country),
            _text(country_label),
        )  # fmt: skip
        if place.issue is not None:
            issues.append(
                Issue(WARNING, key, tid, "birth_insee_code", place.issue, place.message or "")
            )

        if cert is None or award is None:
            return None, issues
        return (
            cert[0], cert[1], None, tid, None, None, "PAR_ADMISSION", True, None, None, None,
            None, award, None, None, None, None, None, mention, access, None, None, None, None,
            birth_name, usage_name, first_1, first_2, first_3, birth_year, month, day, sex,
            place.insee_code, None, place.city_label, place.country_label, None, None, None,
            None, system, key,
        ), issues  # fmt: skip

    def _date(self, value: object) -> dt.date | None:
        if value is None:
            return None
        try:
            return self._dates[value]
        except (KeyError, TypeError):
            parsed = to_date(value)
            if isinstance(value, str) and len(self._dates) < 500_000:
                self._dates[value] = parsed
            return parsed

    def _lookup(self, code, version, year) -> tuple[str, str] | None:
        k = (code, version, year)
        try:
            return self._certs[k]
        except KeyError:
            entry = None
            if self.certification_map is not None:
                entry = self.certification_map.lookup(_text(code), version, year)
            found = None if entry is None else (entry.certification_type, entry.certification_code)
            self._certs[k] = found
            return found

    def unmapped_issues(self) -> list[Issue]:
        """One error per diploma version and year that has no certification, with its count."""
        out = []
        for (code, version, year), count in sorted(
            self.unmapped.items(), key=lambda kv: tuple(str(x) for x in kv[0])
        ):
            label = f"{code}" + (f" version {version}" if version is not None else "")
            years = f"{year}-{year + 1}" if year is not None else "année inconnue"
            out.append(
                Issue(
                    ERROR,
                    f"{code}-{version}-{year}",
                    None,
                    "certification_code",
                    "diploma_unmapped",
                    f"diplôme {label} ({years}) sans code RNCP/RS dans la table de "
                    f"correspondance : {count} passage(s) non transmis",
                )
            )
        return out


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    return text if text.strip() else None


def _mention_by_label(label: object) -> str | None:
    if not isinstance(label, str):
        return None
    key = normalise_label(label)
    for phrase, value in _MENTION_LABELS:
        if phrase in key:
            return value
    return None
