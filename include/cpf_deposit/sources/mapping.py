"""Canonical source row to :class:`cpf_deposit.model.Passage`, with its reported issues.

Why here and once: the three source queries return the same columns
(:mod:`cpf_deposit.sources.canonical`), so the CDC conventions (certification
prefix, mention and access-route enumerations, INSEE birthplace) are applied in one
place. Values are never altered: what cannot be mapped is reported, with the record
key and the field, in French for the scolarité office, and without personal data.

A row becomes no passage (severity ``error``) when its certification or its award
date is unknown; other problems (``warning``) leave the field unknown (nil).

Two paths, one set of rules: :meth:`RowMapper.map_values` maps one row (the
reference, and the API of the tests); :meth:`RowMapper.map_batch` maps a whole fetched
batch column by column, applying each rule once per *distinct* value (a batch of 20 000
rows holds a few dozen diploma versions, a few hundred dates, a few thousand
birthplaces) and building the Arrow columns of the passages directly. Both give the
same passages and the same issues in the same order (tests/sources/test_batch_mapping.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from cpf_deposit.ledger.ids import make_technical_id, technical_ids
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
# Passage attributes carried unchanged from the canonical column of the same name.
_PASSED = (
    "source_system", "birth_name", "usage_name", "first_name_1", "first_name_2", "first_name_3",
    "sex",
)  # fmt: skip
_NO_AWARD = (
    "date d'obtention du diplôme absente (DAT_OBT_VDI) : passage non transmis, "
    "à compléter dans le logiciel de scolarité"
)
_ESTIMATED = "date de naissance estimée : seule l'année est transmise"
_AWARD_INVALID = "date d'obtention illisible"
_BIRTH_INVALID = "date de naissance illisible"

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
        id_key: bytes,
    ):
        """``id_key``: the ledger's key, so each passage leaves extraction with the
        idTechnique the ledger and the CDC will know it by."""
        missing = [c for c in COLUMN_NAMES if c not in columns]
        if missing:
            raise ValueError(f"the source query lacks the canonical columns: {', '.join(missing)}")
        self.ix = {name: columns.index(name) for name in COLUMN_NAMES}
        self.certification_map = certification_map
        self.mentions = {**DEFAULT_MENTION_CODES, **_enum_map(mention_map, MENTION, "mention_map")}
        self.access = {v: v for v in MODALITE_ACCES}
        self.access.update(_enum_map(access_map, MODALITE_ACCES, "access_mode_map"))
        self.birthplaces = birthplaces or BirthplaceResolver()
        self.id_key = id_key
        self.unmapped: dict[tuple[str | None, str | None, int | None], int] = {}
        self._get = itemgetter(*(self.ix[c] for c in _USED))
        self._dates: dict[object, dt.date | None] = {}
        self._certs: dict[tuple, tuple[str, str] | None] = {}
        self._parsed: dict[object, tuple[dt.date | None, str | None]] = {}

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
        issues: list[Issue] = []

        cert, missing = self._certification(ctype, ccode, diploma, version, year)
        if missing is not None:
            self.unmapped[missing] = self.unmapped.get(missing, 0) + 1
        tid = make_technical_id(self.id_key, system, key, *cert) if cert else None
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
                    _AWARD_INVALID,
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
                    _BIRTH_INVALID,
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

        mention, message = self._mention(mention_code, mention_label)
        if message is not None:
            issues.append(Issue(WARNING, key, tid, "mention", "mention_unmapped", message))
        access, message = self._access(access_code)
        if message is not None:
            issues.append(Issue(WARNING, key, tid, "access_mode", "access_mode_unmapped", message))
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

    def map_batch(
        self, columns: Sequence[Sequence[object]], arrays: Mapping[str, Any] | None = None
    ) -> tuple[Any, list[Issue]]:
        """A whole batch at once: the passages as an Arrow table and the issues, row order.

        ``columns`` holds the batch column by column, in the order of the ``columns``
        given to the mapper. ``arrays`` may hold the Arrow arrays of the same batch by
        canonical name (as the canonical writer built them): the text columns a passage
        carries unchanged are then taken from them instead of being converted twice.
        Same passages (the table follows :func:`cpf_deposit.passage_io.arrow_schema`),
        same issues in the same order and same unmapped counts as :meth:`map_values`
        row after row; each rule runs once per distinct value of the batch.
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        def col(name: str) -> Any:
            return columns[self.ix[name]]

        system, raw_keys = _python(col("source_system")), _python(col("source_record_key"))
        if not all(system) or not all(raw_keys):
            raise ValueError("a source row has no source_system or source_record_key")
        keys = list(map(str, raw_keys))

        certs_u, cert_i = _factorize_rows(
            [col(c) for c in ("certification_type", "certification_code", "diploma_code",
                              "diploma_version", "academic_year")]
        )  # fmt: skip
        certs = [self._certification(*k) for k in certs_u]
        tids = technical_ids(self.id_key, system, keys, [certs[i][0] for i in cert_i.tolist()])
        counts = np.bincount(cert_i, minlength=len(certs_u))
        for (_, missing), count in zip(certs, counts.tolist(), strict=True):
            if missing is not None:
                self.unmapped[missing] = self.unmapped.get(missing, 0) + count
        awards_u, award_i = _factorize(col("award_date"))
        awards = [self._parse(v) for v in awards_u]
        births_u, birth_i = _factorize(col("birth_date"))
        births = [self._parse(v) for v in births_u]
        mentions_u, mention_i = _factorize_rows([col("mention_code"), col("mention_label")])
        mentions = [self._mention(code, label) for code, label in mentions_u]
        access_u, access_i = _factorize(col("access_mode_code"))
        accesses = [self._access(code) for code in access_u]
        resolve = self.birthplaces.resolve
        places_u, place_i = _factorize_rows(
            [col(c) for c in ("born_in_france", "birth_department_code", "birth_commune_insee",
                              "birth_city_label", "birth_country_code", "birth_country_label")],
            (None, _text, _text, _text, _text, _text),
        )  # fmt: skip
        places = [resolve(*place) for place in places_u]

        def per_row(values: list, index: np.ndarray, dtype=bool) -> np.ndarray:
            return np.asarray(values, dtype=dtype)[index] if values else np.zeros(0, dtype)

        birth_ok = per_row([b[0] is not None for b in births], birth_i)
        estimated_u, estimated_i = _factorize(col("birth_date_is_estimated"))
        estimated = per_row([e == "Y" for e in estimated_u], estimated_i)
        estimated &= birth_ok

        # Issues: per row in the order of map_values (award, birth, mention, access, place).
        found: list[tuple[np.ndarray, Callable[[int], tuple[str, str, str, str]]]] = []
        award_issue = [
            None if status is None
            else ("award_date", "award_date_invalid", _AWARD_INVALID) if status == "invalid"
            else ("award_date", "award_date_missing", _NO_AWARD)
            for _, status in awards
        ]  # fmt: skip
        found.append(_issue_rows(award_issue, award_i, ERROR))
        birth_invalid = per_row([status == "invalid" for _, status in births], birth_i)
        rows = np.flatnonzero(birth_invalid | estimated)
        birth_issues = (
            (WARNING, "birth_year", "birth_date_invalid", _BIRTH_INVALID),
            (WARNING, "birth_day", "birth_date_estimated", _ESTIMATED),
        )
        found.append((rows, lambda r: birth_issues[0 if birth_invalid[r] else 1]))
        found.append(
            _issue_rows(
                [None if m is None else ("mention", "mention_unmapped", m) for _, m in mentions],
                mention_i,
                WARNING,
            )
        )
        found.append(
            _issue_rows(
                [None if m is None else ("access_mode", "access_mode_unmapped", m)
                 for _, m in accesses],
                access_i,
                WARNING,
            )
        )  # fmt: skip
        found.append(
            _issue_rows(
                [None if p.issue is None else ("birth_insee_code", p.issue, p.message or "")
                 for p in places],
                place_i,
                WARNING,
            )
        )  # fmt: skip
        issues: list[Issue] = []
        if any(len(r) for r, _ in found):
            at = np.concatenate([r for r, _ in found])
            kind = np.concatenate([np.full(len(r), k) for k, (r, _) in enumerate(found)])
            for j in np.lexsort((kind, at)).tolist():
                r = int(at[j])
                severity, field, code, message = found[int(kind[j])][1](r)
                issues.append(Issue(severity, keys[r], tids[r], field, code, message))

        keep_mask = per_row([c[0] is not None for c in certs], cert_i)
        keep_mask &= per_row([a[0] is not None for a in awards], award_i)
        keep = pa.array(np.flatnonzero(keep_mask))
        m = len(keep)

        def distinct(values: list, index: np.ndarray, type_) -> pa.Array:
            return pa.array(values, type=type_).take(pa.array(index)).take(keep)

        def passed(name: str) -> pa.Array:
            if arrays is not None and name in arrays:
                return arrays[name].take(keep)
            values = col(name)
            if isinstance(values, pa.Array):
                return values.cast(pa.string()).take(keep)
            return pa.array(values, type=pa.string()).take(keep)

        string, int32 = pa.string(), pa.int32()
        estimated_kept = pa.array(estimated).take(keep)
        no_int = pa.scalar(None, int32)
        birth_dates = [b[0] for b in births]
        data = {
            "certification_type": distinct([c[0] and c[0][0] for c in certs], cert_i, string),
            "certification_code": distinct([c[0] and c[0][1] for c in certs], cert_i, string),
            "technical_id": pa.array(tids, type=string).take(keep),
            "obtention": pa.array(["PAR_ADMISSION"] * m, type=string),
            "is_final": pa.array([True] * m, type=pa.bool_()),
            "award_date": distinct([a[0] for a in awards], award_i, pa.date32()),
            "mention": distinct([v for v, _ in mentions], mention_i, string),
            "access_mode": distinct([v for v, _ in accesses], access_i, string),
            "birth_year": distinct([d and d.year for d in birth_dates], birth_i, int32),
            "birth_month": pc.if_else(
                estimated_kept,
                no_int,
                distinct([d and d.month for d in birth_dates], birth_i, int32),
            ),
            "birth_day": pc.if_else(
                estimated_kept, no_int, distinct([d and d.day for d in birth_dates], birth_i, int32)
            ),
            "birth_insee_code": distinct([p.insee_code for p in places], place_i, string),
            "birth_city_label": distinct([p.city_label for p in places], place_i, string),
            "birth_country_label": distinct([p.country_label for p in places], place_i, string),
            "source_record_key": (
                arrays["source_record_key"].take(keep)
                if arrays is not None and "source_record_key" in arrays
                else pa.array(keys, type=string).take(keep)
            ),
        }
        for name in _PASSED:
            data[name] = passed(name)
        schema = _passage_schema()
        table = pa.Table.from_arrays(
            [data[f.name] if f.name in data else pa.nulls(m, f.type) for f in schema],
            schema=schema,
        )
        return table, issues

    def _parse(self, value: object) -> tuple[dt.date | None, str | None]:
        """:func:`_parse_date`, cached for text across batches (dates repeat a lot)."""
        try:
            return self._parsed[value]
        except (KeyError, TypeError):
            parsed = _parse_date(value)
            if isinstance(value, str):
                if len(self._parsed) >= 200_000:  # bounded memory: start again
                    self._parsed.clear()
                self._parsed[value] = parsed
            return parsed

    def _certification(
        self, ctype: object, ccode: object, diploma: object, version: object, year: object
    ) -> tuple[tuple[str, str] | None, tuple | None]:
        """(type, prefixed code) of a row, and its unmapped key when the mapping has none.
        The source's own code column holds digits by contract (docs/sources.md, column
        22), its type beside it: the prefix is that type. A certification map's code is
        never completed (``sources.certmap`` refuses a bare number)."""
        if year is not None and not isinstance(year, int):
            year = int(year)  # type: ignore[call-overload]
        if ctype is not None and ccode is not None:
            ctype = str(ctype).upper()
            ccode = str(ccode)
            return (ctype, ccode if ccode.upper().startswith(ctype) else f"{ctype}{ccode}"), None
        if version is not None and not isinstance(version, str):
            version = _text(version)
        cert = self._lookup(diploma, version, year)
        return cert, ((diploma, version, year) if cert is None else None)

    def _mention(self, code: object, label: object) -> tuple[str | None, str | None]:
        """CDC honours of a source code (then label), and the issue message when unmapped."""
        if code is None:
            return None, None
        code = str(code)
        mention = self.mentions.get(code) or _mention_by_label(label)
        if mention is not None:
            return mention, None
        return None, (
            f"mention locale {code} sans correspondance CDC : transmise "
            "vide (à ajouter dans mention_map)"
        )

    def _access(self, code: object) -> tuple[str | None, str | None]:
        """CDC access route of a source code, and the issue message when unmapped."""
        if code is None:
            return None, None
        access = self.access.get(str(code))
        if access is not None:
            return access, None
        return None, (
            f"modalité d'accès locale {code} sans correspondance CDC : "
            "transmise vide (à ajouter dans access_mode_map)"
        )

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
        """One error per diploma version and year that has no certification, with its count.

        A diploma version refused by a bad line of the mapping gets that line's reason
        (``certification_map_line_invalid``) instead of ``diploma_unmapped``; a bad line
        that concerns no award read here is listed once as a warning, so the mapping is
        fixed before it matters.
        """
        out = []
        cmap = self.certification_map
        used: set[int] = set()
        for (code, version, year), count in sorted(
            self.unmapped.items(), key=lambda kv: tuple(str(x) for x in kv[0])
        ):
            label = f"{code}" + (f" version {version}" if version is not None else "")
            years = f"{year}-{year + 1}" if year is not None else "année inconnue"
            bad = cmap.refusal(_text(code), version, year) if cmap is not None else None
            if bad is not None:
                used.add(id(bad))
                out.append(
                    Issue(
                        ERROR,
                        f"{code}-{version}-{year}",
                        None,
                        "certification_code",
                        "certification_map_line_invalid",
                        f"diplôme {label} ({years}) : ligne refusée de la table de "
                        f"correspondance ({bad.reason}) : {count} passage(s) en quarantaine, "
                        "non transmis jusqu'à la correction de la ligne",
                    )
                )
                continue
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
        for bad in cmap.bad_lines if cmap is not None else ():
            if id(bad) not in used:
                out.append(
                    Issue(
                        WARNING,
                        "certification_map-" + "-".join(str(n) for n in bad.lines),
                        None,
                        "certification_code",
                        "certification_map_line_invalid",
                        f"ligne refusée de la table de correspondance ({bad.reason}) : "
                        "aucun passage lu ici n'en dépend, à corriger",
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


def _parse_date(value: object) -> tuple[dt.date | None, str | None]:
    """A date cell: (date, None), or (None, issue code) when missing or unreadable."""
    try:
        parsed = to_date(value)
    except ValueError:
        return None, "invalid"
    return parsed, None if parsed is not None else "missing"


def _python(values: Any) -> Sequence[object]:
    """A batch column as Python values (Arrow arrays are converted)."""
    return values.to_pylist() if hasattr(values, "to_pylist") else values


def _factorize(values: Any) -> tuple[list, Any]:
    """The distinct values (first seen first) and, per row, the position of its value.

    ``values`` is a sequence of Python values or an Arrow array (the rules then see the
    same Python values the driver would have returned: str, int, None).
    """
    import numpy as np

    if hasattr(values, "dictionary_encode"):
        encoded = values.dictionary_encode(null_encoding="encode")
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp)
        return encoded.dictionary.to_pylist(), codes
    index: dict[Hashable, int] = dict.fromkeys(values)
    for position, value in enumerate(index):
        index[value] = position
    codes = np.fromiter(map(index.__getitem__, values), dtype=np.intp, count=len(values))
    return list(index), codes


def _factorize_rows(
    columns: Sequence[Any], transforms: Sequence[Callable | None] | None = None
) -> tuple[list[tuple], Any]:
    """:func:`_factorize` of the rows of several columns: distinct tuples, first seen first.

    ``transforms`` (one per column, or None) are applied to the values first, once per
    distinct value; rows equal after them share a tuple.
    """
    import numpy as np

    transforms = transforms or [None] * len(columns)
    if not any(hasattr(c, "dictionary_encode") for c in columns):
        distinct, codes = _factorize(list(zip(*columns, strict=True)))
        if any(transforms):
            distinct = [
                tuple(v if f is None else f(v) for f, v in zip(transforms, row, strict=True))
                for row in distinct
            ]
        return distinct, codes
    parts = []
    for column, transform in zip(columns, transforms, strict=True):
        uniques, codes = _factorize(column)
        if transform is not None and uniques:
            changed = [transform(v) for v in uniques]
            index: dict[Hashable, int] = dict.fromkeys(changed)  # type: ignore[arg-type]
            for position, value in enumerate(index):
                index[value] = position
            codes = np.asarray([index[v] for v in changed], dtype=np.intp)[codes]
            uniques = list(index)
        parts.append((uniques, codes))
    n = len(parts[0][1])
    if n == 0:
        return [], np.zeros(0, np.intp)
    combined = np.zeros(n, np.int64)
    radix = 1
    for uniques, codes in parts:
        if radix * max(len(uniques), 1) >= 1 << 62:  # too many combinations: renumber
            _, combined = np.unique(combined, return_inverse=True)
            radix = int(combined.max()) + 1
        combined = combined * max(len(uniques), 1) + codes
        radix *= max(len(uniques), 1)
    groups, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # first seen first, as the Python path
    rank = np.empty(len(groups), np.intp)
    rank[order] = np.arange(len(groups))
    rows = first[order]
    distinct = list(
        zip(*[[uniques[k] for k in codes[rows].tolist()] for uniques, codes in parts], strict=True)
    )
    return distinct, rank[inverse.reshape(-1)]


def _issue_rows(
    templates: list[tuple[str, str, str] | None], index: Any, severity: str
) -> tuple[Any, Callable[[int], tuple[str, str, str, str]]]:
    """Rows having an issue (per distinct value: field, code, message) and its maker."""
    import numpy as np

    has = np.asarray([t is not None for t in templates], dtype=bool)
    rows = np.flatnonzero(has[index]) if len(templates) else np.zeros(0, np.intp)

    def make(row: int) -> tuple[str, str, str, str]:
        field, code, message = templates[index[row]]  # type: ignore[misc]
        return severity, field, code, message

    return rows, make


_SCHEMA: list = []


def _passage_schema():
    if not _SCHEMA:
        from cpf_deposit.passage_io import arrow_schema

        _SCHEMA.append(arrow_schema())
    return _SCHEMA[0]
