"""Diploma version to RNCP/RS certification: a CSV file or a table of the source database.

Why a mapping: no source system exposes the France compétences code in a known column
(docs/sources.md), and national fiches are renumbered over time, so each entry may be
limited to a range of academic years. A diploma version without an entry is reported,
never dropped silently; overlapping entries are refused when the mapping is loaded.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cpf_deposit.errors import ConfigError

DEFAULT_TABLE = "cdc_vdi_certif_map"
TYPES = ("RNCP", "RS")

# Canonical header, then the Apogée names of docs/sources.md §4.1, both accepted.
ALIASES = {
    "diploma_code": ("diploma_code", "cod_dip"),
    "diploma_version": ("diploma_version", "cod_vrs_vdi"),
    "first_year": ("first_year", "daa_deb"),
    "last_year": ("last_year", "daa_fin"),
    "certification_type": ("certification_type", "certif_type"),
    "certification_code": ("certification_code", "certif_code"),
}
REQUIRED = ("diploma_code", "certification_type", "certification_code")
_YEAR = re.compile(r"[12][0-9]{3}")
_DIGITS = re.compile(r"[0-9]{1,10}")


class CertificationMapError(ConfigError, ValueError):
    """The mapping itself is malformed: names the line and the column (terminal: the
    institution fixes its CSV or table)."""


@dataclass(frozen=True, slots=True)
class Entry:
    first_year: int | None
    last_year: int | None
    certification_type: str
    certification_code: str  # with its prefix: RNCP34034, RS5875

    def covers(self, year: int | None) -> bool:
        if year is None:
            return self.first_year is None and self.last_year is None
        lo = self.first_year if self.first_year is not None else -1
        hi = self.last_year if self.last_year is not None else 9999
        return lo <= year <= hi


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _year(value: object, where: str, column: str) -> int | None:
    text = _text(value)
    if text is None:
        return None
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if not _YEAR.fullmatch(text):
        raise CertificationMapError(f"{where}, column {column}: expected a year like 2021")
    return int(text)


def _version(value: object) -> str | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _text(value)


class CertificationMap:
    """Lookup of (diploma code, version, academic year) to (type, prefixed code)."""

    def __init__(self, rows: Iterable[Mapping[str, object]], origin: str = "mapping"):
        self.origin = origin
        self._entries: dict[tuple[str, str | None], list[Entry]] = {}
        for number, raw in enumerate(rows, start=2):
            where = f"{origin}, line {number}"
            row = {k.lower().strip(): v for k, v in raw.items() if k is not None}
            values = {}
            for name, names in ALIASES.items():
                values[name] = next((row[n] for n in names if n in row), None)
            for name in REQUIRED:
                if _text(values[name]) is None:
                    raise CertificationMapError(f"{where}, column {name}: a value is required")
            ctype = _text(values["certification_type"]).upper()  # type: ignore[union-attr]
            if ctype not in TYPES:
                raise CertificationMapError(
                    f"{where}, column certification_type: expected RNCP or RS"
                )
            digits = _text(values["certification_code"])
            if digits.upper().startswith(ctype):  # type: ignore[union-attr]
                digits = digits[len(ctype) :]  # type: ignore[index]
            if not _DIGITS.fullmatch(digits):  # type: ignore[arg-type]
                raise CertificationMapError(
                    f"{where}, column certification_code: expected digits, "
                    f"optionally prefixed with {ctype}"
                )
            entry = Entry(
                _year(values["first_year"], where, "first_year"),
                _year(values["last_year"], where, "last_year"),
                ctype,
                f"{ctype}{digits}",
            )
            if (
                entry.first_year is not None
                and entry.last_year is not None
                and entry.first_year > entry.last_year
            ):
                raise CertificationMapError(f"{where}: first_year is after last_year")
            key = (_text(values["diploma_code"]), _version(values["diploma_version"]))
            for other in self._entries.get(key, []):  # type: ignore[arg-type]
                if _overlap(entry, other):
                    raise CertificationMapError(
                        f"{where}: the years of diploma {key[0]} version {key[1]} "
                        "overlap another line"
                    )
            self._entries.setdefault(key, []).append(entry)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def lookup(self, code: str | None, version: str | None, year: int | None) -> Entry | None:
        for entry in self._entries.get((code, version), ()):  # type: ignore[arg-type]
            if entry.covers(year):
                return entry
        return None

    @classmethod
    def from_csv(cls, path: str | Path) -> CertificationMap:
        path = Path(path)
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                return cls(list(csv.DictReader(fh)), origin=path.name)
        except FileNotFoundError:
            raise CertificationMapError(
                f"{path}: the certification mapping does not exist"
            ) from None

    @classmethod
    def from_cursor(cls, cursor, table: str = DEFAULT_TABLE) -> CertificationMap:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.$]*", table):
            raise CertificationMapError(f"{table!r} is not a table name")
        cursor.execute(
            f"SELECT cod_dip, cod_vrs_vdi, daa_deb, daa_fin, certif_type, certif_code FROM {table}"
        )
        names = [d[0].lower() for d in cursor.description]
        return cls([dict(zip(names, r, strict=True)) for r in cursor.fetchall()], origin=table)


def _overlap(a: Entry, b: Entry) -> bool:
    lo_a, hi_a = a.first_year or -1, a.last_year or 9999
    lo_b, hi_b = b.first_year or -1, b.last_year or 9999
    return lo_a <= hi_b and lo_b <= hi_a
